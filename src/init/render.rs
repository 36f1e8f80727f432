//! What was found, as a commented `sockpit.toml` and a report of where each value came from.

use std::fmt::Write as _;
use std::path::Path;

use super::{Found, Route};
use crate::origin::OriginPattern;

/// How to render.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The project's root (named in the header).
    pub project: &'a Path,
    /// Sockpit's port; the project's server gets the next one.
    pub port: u16,
    /// Whether a secret written in the project's files may be copied into the config.
    pub include_secret: bool,
    /// Where the config will live, when not beside `manage.py` (a desktop profile): the
    /// command's `cwd` is then the project's absolute path instead of `"."`.
    pub elsewhere: bool,
}

/// The proposal.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The config text.
    pub toml: String,
    /// What was read from where: `(topic, what)` lines for the user.
    pub report: Vec<(&'static str, String)>,
    /// What was guessed rather than read.
    pub guesses: Vec<String>,
    /// Whether `toml` holds a secret's value.
    pub holds_secret: bool,
    /// Whether the project's own ASGI app serves its WebSockets (else Sockpit's endpoints).
    pub relays: bool,
}

/// Pages on this machine.
const LOCAL_ORIGINS: [&str; 3] = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/// The algorithms `[auth] algorithm` takes.
const ALGORITHMS: [&str; 5] = ["HS256", "HS384", "HS512", "RS256", "ES256"];

/// Renders `found` as a config that `Config::from_toml` accepts (the caller checks).
pub fn render(found: &Found, opts: &Options) -> Rendered {
    let mut r = Rendered {
        toml: String::new(),
        report: Vec::new(),
        guesses: found.notes.clone(),
        holds_secret: false,
        relays: false,
    };
    let python = found.python.display().to_string();
    let read_with = match (&found.django_version, &found.why_text) {
        (Some(v), _) => format!("{python} (Python {}, Django {v})", found.python_version),
        (None, why) => format!(
            "{python}: Django not importable ({}), so the files were read as text",
            why.as_deref().unwrap_or("?")
        ),
    };
    r.report.push(("read with", read_with));
    r.report.push((
        "settings",
        format!(
            "{} (from {}){}",
            found.settings_module,
            found.settings_source,
            found
                .settings_file
                .as_ref()
                .map(|f| format!(", {f}"))
                .unwrap_or_default()
        ),
    ));

    // Callers give a port below 65535 (the CLI refuses others).
    let upstream_port = opts.port.saturating_add(1);
    let asgi = found
        .asgi_application
        .as_deref()
        .and_then(|a| a.rsplit_once('.'))
        .map(|(m, attr)| format!("{m}:{attr}"));
    let py = shell_word(&python);
    let (server, asgi_command) = match (&asgi, &found.servers.daphne, &found.servers.uvicorn) {
        (Some(app), Some(v), _) => (
            format!("daphne {v}"),
            Some(format!(
                "{py} -m daphne -b 127.0.0.1 -p {upstream_port} {app}"
            )),
        ),
        (Some(app), None, Some(v)) => (
            format!("uvicorn {v}"),
            Some(format!(
                "{py} -m uvicorn {app} --host 127.0.0.1 --port {upstream_port}"
            )),
        ),
        (Some(_), None, None) if found.installed_apps.iter().any(|a| a == "daphne") => (
            "daphne's runserver (\"daphne\" in INSTALLED_APPS)".into(),
            Some(format!(
                "{py} manage.py runserver 127.0.0.1:{upstream_port}"
            )),
        ),
        (None, _, _) => ("no ASGI_APPLICATION in the settings".into(), None),
        _ => ("no ASGI server installed (daphne, uvicorn)".into(), None),
    };
    let runserver = format!("{py} manage.py runserver 127.0.0.1:{upstream_port}");
    r.relays = asgi_command.is_some() && !found.routes.is_empty();
    let routes_from = found.routes_source.as_deref().unwrap_or("nowhere");
    // Why the project's own app does not take the sockets, when it does not.
    let why_not = match (&asgi_command, found.routes.is_empty()) {
        (None, _) => one_line(&server),
        (Some(_), true) => format!("no websocket routes in {}", one_line(routes_from)),
        (Some(_), false) => String::new(),
    };
    r.report.push(("server", server));
    r.guesses.push(format!(
        "the project's server listens on 127.0.0.1:{upstream_port} (Sockpit's port + 1)"
    ));

    if found.routes.is_empty() {
        r.report
            .push(("websockets", format!("no routes ({routes_from})")));
    }
    for route in &found.routes {
        r.report.push((
            "websockets",
            format!("{} → {} ({routes_from})", route.path, route.consumer),
        ));
    }

    let origins = origins(found, &mut r);
    let (auth, secret_line) = auth(found, opts, &mut r);
    let endpoints = endpoints(&found.routes, found.jwt.is_some(), &mut r);
    let bridge = bridge(found, opts.include_secret, &mut r);
    let env = format!(
        "{{ DJANGO_SETTINGS_MODULE = {}, PYTHONUNBUFFERED = \"1\" }}",
        quote(&found.settings_module)
    );
    let cwd = if opts.elsewhere {
        quote(&opts.project.display().to_string())
    } else {
        "\".\"".to_string()
    };

    let t = &mut r.toml;
    let _ = writeln!(
        t,
        "# sockpit.toml for {}, proposed by `sockpit init` (Sockpit {}).",
        one_line(&opts.project.display().to_string()),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(t, "# Read with {}.", one_line(&r.report[0].1));
    let _ = writeln!(
        t,
        "# `sockpit check` validates this file; `sockpit serve` runs it.\n#"
    );
    if r.relays {
        let _ = writeln!(
            t,
            "# The way chosen changes nothing in the project: Sockpit starts the project's own\n\
             # ASGI app on 127.0.0.1:{upstream_port}, serves the site on :{} as daphne would, and relays\n\
             # every WebSocket to the project's consumers, logging each handshake and message.\n\
             # The other way (Sockpit's own endpoints, fed by group_send through the bridge) is\n\
             # written out as comments at the end.\n",
            opts.port
        );
        let _ = writeln!(
            t,
            "# No Sockpit endpoints: every WebSocket goes to the project's routes.\nendpoint = []\n"
        );
    } else {
        let _ = writeln!(
            t,
            "# The project's own app does not take WebSockets ({why_not}), so Sockpit's\n\
             # endpoints do and runserver keeps serving the pages; group_send reaches the\n\
             # endpoints' channels through the bridge (see [bridge]).\n"
        );
    }
    let _ = writeln!(t, "[server]\nport = {}", opts.port);
    let _ = writeln!(t, "{origins}");
    let _ = writeln!(t, "[auth]\n{auth}{secret_line}");
    let _ = writeln!(
        t,
        "[proxy]\nupstream = \"http://127.0.0.1:{upstream_port}\""
    );
    if let (true, Some(cmd)) = (r.relays, &asgi_command) {
        let _ = writeln!(t, "websockets = true\ncommand = {}", quote(cmd));
    } else {
        let _ = writeln!(t, "command = {}", quote(&runserver));
    }
    let _ = writeln!(t, "cwd = {cwd}\nenv = {env}\n");
    if r.relays {
        let _ = writeln!(
            t,
            "# ── The other way: Sockpit's endpoints, fed by the project's group_send ──\n\
             # Remove `endpoint = []` at the top and replace [proxy] with what follows; runserver\n\
             # keeps serving the pages and Sockpit answers the WebSockets itself.\n#\n\
             # [proxy]\n\
             # upstream = \"http://127.0.0.1:{upstream_port}\"\n\
             # command = {}\n\
             # cwd = {cwd}\n\
             # env = {env}\n#",
            quote(&runserver)
        );
        // Prose stays one comment deep; config lines are commented out.
        for line in format!("{bridge}\n{endpoints}").lines() {
            let _ = match line.starts_with('#') || line.is_empty() {
                true => writeln!(t, "{line}"),
                false => writeln!(t, "# {line}"),
            };
        }
    } else {
        let _ = write!(t, "{bridge}\n{endpoints}");
    }
    // Comment lines of an empty text end as "# "; keep them tidy.
    r.toml = r.toml.replace("# \n", "#\n");
    let end = r.toml.trim_end_matches(['#', '\n', ' ']).len();
    r.toml.truncate(end);
    r.toml.push('\n');
    r
}

/// `allowed_origins` from ALLOWED_HOSTS and the CORS/CSRF origins.
fn origins(found: &Found, r: &mut Rendered) -> String {
    let mut list: Vec<String> = Vec::new();
    let mut from = Vec::new();
    let hosts: Vec<String> = if found.allowed_hosts.is_empty() && found.debug {
        from.push("ALLOWED_HOSTS empty with DEBUG (Django allows localhost)".to_string());
        vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()]
    } else {
        from.push(format!("ALLOWED_HOSTS {:?}", found.allowed_hosts));
        found.allowed_hosts.clone()
    };
    for host in &hosts {
        if host == "*" {
            // Any web page the user opens could then open sockets here: stay local, as
            // Sockpit does by default, and say so.
            list.extend(LOCAL_ORIGINS.map(String::from));
            r.guesses.push(
                "ALLOWED_HOSTS has \"*\": Sockpit still allows only local pages; add the origins you use".into(),
            );
        } else if let Some(domain) = host.strip_prefix('.') {
            list.push(format!("http://{domain}:*"));
            r.guesses.push(format!(
                "ALLOWED_HOSTS {host}: Sockpit matches whole host names; add the subdomains you use"
            ));
        } else {
            list.push(format!("http://{host}:*"));
        }
    }
    if !found.cors_origins.is_empty() {
        from.push("CORS/CSRF trusted origins".into());
    }
    list.extend(found.cors_origins.iter().cloned());
    if found.cors_allow_all {
        r.guesses.push(
            "CORS_ALLOW_ALL_ORIGINS is on: Sockpit does not follow it for WebSockets; add the origins you use".into(),
        );
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|o| {
        let ok = OriginPattern::parse(o).is_ok();
        if !ok {
            r.guesses.push(format!(
                "{o:?} is not an origin Sockpit can match; left out"
            ));
        }
        ok && seen.insert(o.clone())
    });
    if list.is_empty() {
        list.extend(LOCAL_ORIGINS.map(String::from));
        r.guesses
            .push("no usable host in the settings; allowed local pages only".into());
    }
    let text = list.iter().map(|o| quote(o)).collect::<Vec<_>>().join(", ");
    r.report
        .push(("origins", format!("{} → {text}", from.join(", "))));
    format!("# From {}.\nallowed_origins = [{text}]\n", from.join(", "))
}

/// `[auth]` keys, and the secret's line(s) apart.
fn auth(found: &Found, opts: &Options, r: &mut Rendered) -> (String, String) {
    let Some(jwt) = &found.jwt else {
        r.report.push((
            "tokens",
            "no SimpleJWT: Sockpit signs its test tokens with its own secret".into(),
        ));
        return (
            "# No SimpleJWT in the project: Sockpit's own endpoints check tokens signed with\n\
             # the secret it generates in its data dir (`sockpit token` mints them).\n"
                .into(),
            String::new(),
        );
    };
    let mut t = String::new();
    let alg = jwt.algorithm.to_ascii_uppercase();
    let token_type = match &jwt.token_type_claim {
        None => String::new(),
        Some(claim) if claim != "token_type" => {
            r.guesses.push(format!(
                "TOKEN_TYPE_CLAIM is {claim:?}: Sockpit checks the \"token_type\" claim, so the check is off"
            ));
            String::new()
        }
        Some(_) if jwt.token_classes.iter().any(|c| c == "SlidingToken") => "sliding".into(),
        Some(_) => "access".into(),
    };
    r.report.push((
        "tokens",
        format!(
            "SimpleJWT {alg}, user id claim {:?}, token type {:?}",
            jwt.user_id_claim, token_type
        ),
    ));
    let _ = writeln!(
        t,
        "# SimpleJWT's settings: Sockpit's endpoints accept the project's tokens, and the tokens\n\
         # Sockpit mints (test client, `sockpit token`) are ones the project accepts."
    );
    if ALGORITHMS.contains(&alg.as_str()) && alg.starts_with("HS") {
        let _ = writeln!(t, "algorithm = {}", quote(&alg));
    } else {
        let _ = writeln!(
            t,
            "# ALGORITHM is {alg}: save SIMPLE_JWT's VERIFYING_KEY as a PEM file, then\n\
             # algorithm = {}\n# public_key_file = \"jwt-public.pem\"",
            quote(&alg)
        );
        r.guesses.push(format!(
            "SimpleJWT signs with {alg}: Sockpit needs its public key in a file (see [auth])"
        ));
    }
    let _ = writeln!(t, "user_claim = {}", quote(&jwt.user_id_claim));
    let _ = writeln!(t, "token_type = {}", quote(&token_type));
    if jwt.leeway > 0 {
        let _ = writeln!(t, "leeway_s = {}", jwt.leeway.min(86_400));
    }
    match &jwt.audience {
        Some(serde_json::Value::String(a)) => {
            let _ = writeln!(t, "audience = {}", quote(a));
        }
        Some(serde_json::Value::Null) | None => {}
        Some(other) => r
            .guesses
            .push(format!("AUDIENCE {other} is not one string; not set")),
    }
    if let Some(issuer) = &jwt.issuer {
        let _ = writeln!(t, "issuer = {}", quote(issuer));
    }
    if !alg.starts_with("HS") {
        return (t, String::new());
    }
    (t, secret(found, opts, r))
}

/// The signing key: `secret_env` when it comes from the environment, the value only when
/// it is written in the project's files and the caller allows it.
fn secret(found: &Found, opts: &Options, r: &mut Rendered) -> String {
    let s = &found.secret;
    let at = s
        .r#where
        .as_deref()
        .map(|w| format!(" ({})", one_line(w)))
        .unwrap_or_default();
    let name = one_line(&s.name);
    match (&s.env, s.env_set, &s.value) {
        (Some(var), true, _) => {
            r.report.push((
                "secret",
                format!("{}{at} from the environment variable {var}", name),
            ));
            format!(
                "# {}{at} is read from the environment: Sockpit reads the same variable.\nsecret_env = {}\n",
                name,
                quote(var)
            )
        }
        (env, _, Some(value)) => {
            let fallback = env
                .as_ref()
                .map(|var| {
                    let var = one_line(var);
                    format!(
                        "\n# {var} is not set here, so the project signs with the default written in its\n\
                         # settings; once you set {var}, use secret_env = {} instead.",
                        quote(&var)
                    )
                })
                .unwrap_or_default();
            let line = if opts.include_secret {
                r.holds_secret = true;
                format!("secret = {}", quote(value))
            } else {
                "# secret = \"…\"   (not printed: `sockpit init --write` writes it, --show-secret prints it)"
                    .to_string()
            };
            r.report.push((
                "secret",
                format!(
                    "{}{at}, written in the settings{}",
                    name,
                    if opts.include_secret {
                        ""
                    } else {
                        " (not printed)"
                    }
                ),
            ));
            format!(
                "# {}{at} is written in the project's settings.{fallback}\n{line}\n",
                name
            )
        }
        (_, _, None) => {
            r.guesses.push(format!(
                "{} could not be read{at}: set SOCKPIT_JWT_SECRET to it",
                name
            ));
            r.report
                .push(("secret", format!("{}{at}: not readable as text", name)));
            format!(
                "# {}{at} could not be read as text: set SOCKPIT_JWT_SECRET to it, or write\n# secret = \"…\"\n",
                name
            )
        }
    }
}

/// `[[endpoint]]` entries for the routes (the other way, or the chosen one).
fn endpoints(routes: &[Route], jwt: bool, r: &mut Rendered) -> String {
    let mut t = String::new();
    for route in routes {
        let mut path = route.path.clone();
        if route.params.iter().any(|p| p == "user") {
            path = path.replace("{user}", "{user_}");
            r.guesses.push(format!(
                "{}: {{user}} is the token's user id in Sockpit, so the parameter is {{user_}}",
                route.path
            ));
        }
        if !route.exact || crate::pattern::PathPattern::parse(&path).is_err() {
            let _ = writeln!(
                t,
                "# {} ({}) is a regex or <path:…> route; Sockpit's paths match whole\n\
                 # segments ({{name}} is one), so add it by hand.\n",
                one_line(&route.path),
                one_line(&route.consumer)
            );
            r.guesses.push(format!(
                "{}: not a plain path (regex or <path:…>), left to you",
                one_line(&route.path)
            ));
            continue;
        }
        let channel = match route.groups.as_slice() {
            [one] => one.clone(),
            _ => {
                let guess = channel_guess(&path);
                r.guesses.push(format!(
                    "{path}: channel {guess:?} guessed; make it the group the consumer joins"
                ));
                guess
            }
        };
        let _ = writeln!(
            t,
            "[[endpoint]]\npath = {}   # {}\nchannel = {}\nauth = {}\non_message = \"drop\"\n",
            quote(&path),
            one_line(&route.consumer),
            quote(&channel),
            if jwt { "\"jwt\"" } else { "\"none\"" }
        );
    }
    t
}

/// `/ws/chat/{room}/` → `chat.{room}`.
fn channel_guess(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "ws")
        .collect();
    if parts.is_empty() {
        "default".into()
    } else {
        parts.join(".")
    }
}

/// `[bridge]` from CHANNEL_LAYERS, as far as the bridge can follow it.
fn bridge(found: &Found, include_secret: bool, r: &mut Rendered) -> String {
    let Some(layer) = &found.channel_layer else {
        r.report.push(("layer", "no CHANNEL_LAYERS".into()));
        return "# No CHANNEL_LAYERS: group_send has nowhere to go; a channels_redis layer\n\
                # lets the bridge deliver it.\n"
            .into();
    };
    r.report.push((
        "layer",
        format!(
            "{}{}",
            layer.backend,
            layer
                .redis
                .as_deref()
                .map(|u| format!(" at {}", redact(u)))
                .unwrap_or_default()
        ),
    ));
    let Some(url) = layer
        .redis
        .as_deref()
        .filter(|_| layer.backend.starts_with("channels_redis."))
    else {
        return format!(
            "# CHANNEL_LAYERS[\"default\"] is {}:\n\
             # group_send from another process (a view under runserver, Celery) reaches\n\
             # Sockpit only through a channels_redis layer.\n",
            one_line(&layer.backend)
        );
    };
    let intro = format!(
        "# CHANNEL_LAYERS[\"default\"] is {}:\n\
         # group_send reaches the endpoints' channels of the same name.\n",
        one_line(&layer.backend)
    );
    if !include_secret && redact(url) != url {
        return format!(
            "{intro}# Its URL holds a password (not printed: `sockpit init --write` writes it):\n\
             # [bridge]\n# channels_redis = {}\n# prefix = {}\n",
            quote(&redact(url)),
            quote(&layer.prefix)
        );
    }
    format!(
        "{intro}[bridge]\nchannels_redis = {}\nprefix = {}\n",
        quote(url),
        quote(&layer.prefix)
    )
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Text for a comment: one line, no control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A word for `sh -c`, quoted when it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_when_they_must_be() {
        assert_eq!(shell_word("/srv/venv/bin/python"), "/srv/venv/bin/python");
        assert_eq!(shell_word("/my apps/python"), "'/my apps/python'");
        assert_eq!(shell_word("/it's/python"), r"'/it'\''s/python'");
        assert_eq!(shell_word("$(rm -rf ~)"), "'$(rm -rf ~)'");
    }

    #[test]
    fn a_redis_password_is_not_reported() {
        assert_eq!(
            redact("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:…@127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn channels_are_guessed_from_the_path() {
        assert_eq!(channel_guess("/ws/chat/{room}/"), "chat.{room}");
        assert_eq!(channel_guess("/ws/"), "default");
    }
}
