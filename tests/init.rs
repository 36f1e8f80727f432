//! `sockpit init` against a copy of the real Django fixture (tests/fixtures/django),
//! read with the real Django, Channels and SimpleJWT from target/django-venv (built by
//! scripts/django-venv.sh), and with a Python that has no Django (text fallback).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Result, ensure};

use common::temp_dir;

const BIN: &str = env!("CARGO_BIN_EXE_sockpit");
/// The fixture's SECRET_KEY default (settings.py falls back to it without the variable).
const FIXTURE_SECRET: &str = "fixture-secret-not-for-production-0123456789abcdef";

fn venv_python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/django-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/django-venv.sh",
        p.display()
    );
    p
}

/// A fresh copy of the fixture project (no database, no caches).
fn project(tag: &str) -> PathBuf {
    let dir = temp_dir(&format!("init-{tag}")).join("project");
    copy_tree(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django"),
        &dir,
    );
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name.to_string_lossy().ends_with(".sqlite3") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// `sockpit init ARGS` with a clean environment for the fixture's variables.
fn init(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("init")
        .args(args)
        .env_remove("DJANGO_SECRET_KEY")
        .env_remove("CHANNELS_REDIS_URL")
        .env_remove("DJANGO_SETTINGS_MODULE")
        .env_remove("VIRTUAL_ENV");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(config: &Path) -> Result<String> {
    let out = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "check"])
        .env("SOCKPIT_DATA_DIR", config.parent().unwrap())
        .env_remove("SOCKPIT_JWT_SECRET")
        .output()?;
    let (stdout, stderr) = text(&out);
    ensure!(out.status.success(), "sockpit check refused it: {stderr}");
    Ok(stdout)
}

#[test]
fn write_proposes_the_projects_own_consumers_behind_sockpit_and_check_accepts_it() -> Result<()> {
    let dir = project("write");
    let python = venv_python();
    let out = init(
        &[
            dir.to_str().unwrap(),
            "--python",
            python.to_str().unwrap(),
            "--write",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let file = dir.join("sockpit.toml");
    let toml = std::fs::read_to_string(&file)?;
    assert!(check(&file)?.contains("ok (0 endpoints, port 8000)"));

    // The chosen way: daphne runs the project's ASGI app; Sockpit relays its sockets.
    assert!(toml.contains("\nendpoint = []\n"), "{toml}");
    assert!(toml.contains("websockets = true"), "{toml}");
    let daphne = format!(
        "command = \"{} -m daphne -b 127.0.0.1 -p 8001 core.asgi:application\"",
        python.display()
    );
    assert!(toml.contains(&daphne), "{toml}");
    assert!(
        toml.contains("upstream = \"http://127.0.0.1:8001\""),
        "{toml}"
    );
    assert!(
        toml.contains("DJANGO_SETTINGS_MODULE = \"core.settings\""),
        "{toml}"
    );
    assert!(
        toml.contains(
            "allowed_origins = [\"http://localhost:*\", \"http://127.0.0.1:*\", \"http://[::1]:*\"]"
        ),
        "{toml}"
    );
    assert!(
        toml.contains("user_claim = \"user_id\"\ntoken_type = \"access\""),
        "{toml}"
    );
    // The other way, as comments: runserver, and the route as an endpoint on the group
    // the consumer joins.
    assert!(toml.contains("# command = \""), "{toml}");
    assert!(
        toml.contains("manage.py runserver 127.0.0.1:8001\""),
        "{toml}"
    );
    assert!(
        toml.contains("# path = \"/ws/dashboard/\"   # dashboard.consumers.DashboardConsumer\n# channel = \"dashboard\""),
        "{toml}"
    );

    // The settings fall back to a literal key: the file has it (owner-only), the
    // terminal never does.
    assert!(
        toml.contains(&format!("secret = \"{FIXTURE_SECRET}\"")),
        "{toml}"
    );
    assert!(
        toml.contains("use secret_env = \"DJANGO_SECRET_KEY\" instead"),
        "{toml}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file)?.permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(!stdout.contains(FIXTURE_SECRET) && !stderr.contains(FIXTURE_SECRET));
    // The report says what came from where.
    for said in [
        "Django 5.2.19",
        "core.settings (from manage.py), core/settings.py",
        "daphne 4.2.3",
        "/ws/dashboard/ → dashboard.consumers.DashboardConsumer (core.asgi.application)",
        "SECRET_KEY (core/settings.py:8)",
        "guessed     the project's server listens on 127.0.0.1:8001",
        "wrote ",
    ] {
        assert!(stderr.contains(said), "{said:?} not in {stderr}");
    }
    // Read-only: nothing but sockpit.toml appeared in the project.
    let mut made: Vec<String> = walk(&dir)
        .into_iter()
        .filter(|p| {
            !walk(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django"))
                .iter()
                .any(|q| q == p)
        })
        .collect();
    made.sort();
    assert_eq!(made, ["sockpit.toml"]);

    // Run again: the file stays as it is.
    std::fs::write(&file, "# mine\n")?;
    let again = init(
        &[
            dir.to_str().unwrap(),
            "--python",
            python.to_str().unwrap(),
            "--write",
        ],
        &[],
    );
    assert!(!again.status.success());
    assert!(
        text(&again)
            .1
            .contains("sockpit.toml exists; it was left as it is")
    );
    assert_eq!(std::fs::read_to_string(&file)?, "# mine\n");
    Ok(())
}

/// Files under `dir`, relative, `__pycache__` aside.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_name() == "__pycache__" {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn printing_shows_no_secret_unless_asked_and_follows_the_environment() -> Result<()> {
    let dir = project("print");
    let python = venv_python();
    let py = python.to_str().unwrap();
    let d = dir.to_str().unwrap();

    let out = init(&[d, "--python", py], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(FIXTURE_SECRET) && !stderr.contains(FIXTURE_SECRET));
    assert!(
        stdout.contains("# secret = \"…\"   (not printed"),
        "{stdout}"
    );
    assert!(!dir.join("sockpit.toml").exists(), "printing wrote a file");
    let printed = dir.join("printed.toml");
    std::fs::write(&printed, &stdout)?;
    check(&printed)?;

    let shown = init(&[d, "--python", py, "--show-secret"], &[]);
    assert!(
        text(&shown)
            .0
            .contains(&format!("secret = \"{FIXTURE_SECRET}\""))
    );

    // The key from the environment: Sockpit reads the same variable, never the value.
    let from_env = "a-key-from-the-environment-that-must-not-be-shown";
    let out = init(
        &[d, "--python", py, "--show-secret"],
        &[
            ("DJANGO_SECRET_KEY", from_env),
            ("CHANNELS_REDIS_URL", "redis://:hunter2@127.0.0.1:6390/2"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("\nsecret_env = \"DJANGO_SECRET_KEY\"\n"),
        "{stdout}"
    );
    assert!(!stdout.contains(from_env) && !stderr.contains(from_env));
    assert!(stderr.contains("from the environment variable DJANGO_SECRET_KEY"));
    // channels_redis's pub/sub layer → the bridge, in the other way's comments; asked to
    // show secrets, the Redis password is shown too.
    assert!(
        stdout.contains("# [bridge]\n# channels_redis = \"redis://:hunter2@127.0.0.1:6390/2\"\n# prefix = \"asgi\""),
        "{stdout}"
    );
    assert!(stderr.contains("RedisPubSubChannelLayer at redis://:…@127.0.0.1:6390/2"));
    // …and not without --show-secret.
    let hidden = init(
        &[d, "--python", py],
        &[("CHANNELS_REDIS_URL", "redis://:hunter2@127.0.0.1:6390/2")],
    );
    let (stdout, stderr) = text(&hidden);
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn routes_with_converters_become_params_and_a_hostile_key_stays_one_toml_string() -> Result<()> {
    let dir = project("routes");
    edit(
        &dir.join("dashboard/routing.py"),
        "from django.urls import path",
        "from django.urls import path, re_path",
    );
    edit(
        &dir.join("dashboard/routing.py"),
        "path(\"ws/dashboard/\", consumers.DashboardConsumer.as_asgi()),",
        "path(\"ws/dashboard/\", consumers.DashboardConsumer.as_asgi()),\n    \
         path(\"ws/chat/<str:room>/<int:page>/\", consumers.DashboardConsumer.as_asgi()),\n    \
         re_path(r\"^ws/rooms/(?P<room_name>\\w+)/$\", consumers.DashboardConsumer.as_asgi()),\n    \
         path(\"ws/files/<path:rest>\", consumers.DashboardConsumer.as_asgi()),",
    );
    // A key made to break out of a TOML string and a comment.
    let hostile = "k\"\n[server]\nport = 1 # \\ \u{0}end";
    edit(
        &dir.join("core/settings.py"),
        "\"fixture-secret-not-for-production-0123456789abcdef\"",
        &format!("{hostile:?}").replace("\\u{0}", "\\x00"),
    );
    // A dev setting that would let any web page open sockets: Sockpit stays local.
    edit(
        &dir.join("core/settings.py"),
        "ALLOWED_HOSTS = [\"localhost\", \"127.0.0.1\", \"[::1]\"]",
        "ALLOWED_HOSTS = [\"*\", \".example.com\"]\nCORS_ALLOW_ALL_ORIGINS = True",
    );
    let python = venv_python();
    let out = init(
        &[
            dir.to_str().unwrap(),
            "--python",
            python.to_str().unwrap(),
            "--write",
            "--port",
            "9100",
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let file = dir.join("sockpit.toml");
    let toml = std::fs::read_to_string(&file)?;
    assert!(check(&file)?.contains("port 9100"));
    let config = sockpit::Config::from_file(&file)?;
    assert_eq!(config.auth.secret, hostile);
    assert_eq!(config.server.port, 9100);
    assert_eq!(config.proxy.upstream.unwrap().port(), 9101);
    let origins: Vec<String> = config
        .server
        .allowed_origins
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(
        origins,
        [
            "http://localhost:*",
            "http://127.0.0.1:*",
            "http://[::1]:*",
            "http://example.com:*"
        ]
    );
    assert!(
        stderr.contains("ALLOWED_HOSTS has \"*\": Sockpit still allows only local pages"),
        "{stderr}"
    );
    assert!(stderr.contains("CORS_ALLOW_ALL_ORIGINS is on"), "{stderr}");
    assert!(
        toml.contains("# path = \"/ws/chat/{room}/{page}/\""),
        "{toml}"
    );
    assert!(
        toml.contains("# path = \"/ws/rooms/{room_name}/\""),
        "{toml}"
    );
    // <path:…> matches slashes, which a Sockpit segment does not: left as a comment.
    assert!(
        toml.contains("# /ws/files/{rest} (dashboard.consumers.DashboardConsumer) is a regex or <path:…> route"),
        "{toml}"
    );
    assert!(!toml.contains("path = \"/ws/files/"), "{toml}");
    assert!(
        stderr.contains("/ws/files/{rest}: not a plain path"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn without_django_the_files_are_read_as_text_and_it_says_so() -> Result<()> {
    let bare = Command::new("python3")
        .args(["-c", "import django"])
        .output()?;
    ensure!(
        !bare.status.success(),
        "python3 has Django here: the fallback is not exercised"
    );
    let dir = project("text");
    let out = init(
        &[dir.to_str().unwrap(), "--python", "python3", "--write"],
        &[],
    );
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Django not importable (ModuleNotFoundError: No module named 'django'), so the files were read as text"), "{stderr}");
    let toml = std::fs::read_to_string(dir.join("sockpit.toml"))?;
    check(&dir.join("sockpit.toml"))?;
    // No ASGI server in that Python: Sockpit's endpoints take the routes.
    assert!(
        toml.contains("\n[[endpoint]]\npath = \"/ws/dashboard/\""),
        "{toml}"
    );
    assert!(
        toml.contains("manage.py runserver 127.0.0.1:8001\""),
        "{toml}"
    );
    assert!(!toml.contains("websockets = true"), "{toml}");
    assert!(
        toml.contains(&format!("secret = \"{FIXTURE_SECRET}\"")),
        "{toml}"
    );
    assert!(
        stderr.contains("routing.py files, read as text"),
        "{stderr}"
    );
    Ok(())
}

/// Each bad project: a non-zero exit, a message naming what is wrong, nothing written.
#[test]
fn bad_projects_get_a_clear_message_and_nothing_is_written() -> Result<()> {
    let python = venv_python();
    let py = python.to_str().unwrap();

    let empty = temp_dir("init-empty");
    let out = init(&[empty.to_str().unwrap(), "--python", py, "--write"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("no manage.py here"),
        "{}",
        text(&out).1
    );
    assert!(std::fs::read_dir(&empty)?.next().is_none());

    // A port with no next one for the project's server.
    for port in ["0", "65535", "x"] {
        let out = init(&[empty.to_str().unwrap(), "--port", port, "--write"], &[]);
        assert!(!out.status.success());
        assert!(text(&out).1.contains("--port"), "{}", text(&out).1);
    }

    let out = init(&["/nonexistent/project", "--write"], &[]);
    assert!(
        text(&out)
            .1
            .contains("/nonexistent/project: no such directory")
    );

    let dir = project("nopython");
    let out = init(
        &[
            dir.to_str().unwrap(),
            "--python",
            "/no/such/python",
            "--write",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("cannot run /no/such/python"),
        "{}",
        text(&out).1
    );

    // Settings that raise on import: the exception and where.
    let dir = project("raises");
    let settings = dir.join("core/settings.py");
    let lines = std::fs::read_to_string(&settings)?.lines().count();
    std::fs::write(
        &settings,
        std::fs::read_to_string(&settings)? + "raise RuntimeError(\"settings exploded\")\n",
    )?;
    let out = init(&[dir.to_str().unwrap(), "--python", py, "--write"], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "importing the settings core.settings raised RuntimeError: settings exploded (core/settings.py:{})",
            lines + 1
        )),
        "{stderr}"
    );
    assert!(!dir.join("sockpit.toml").exists());

    // SECRET_KEY from a variable that is not set, with Django and as text.
    let dir = project("noenv");
    edit(
        &dir.join("core/settings.py"),
        "SECRET_KEY = os.environ.get(\n    \"DJANGO_SECRET_KEY\", \"fixture-secret-not-for-production-0123456789abcdef\"\n)",
        "SECRET_KEY = os.environ[\"SOCKPIT_TEST_UNSET_KEY\"]",
    );
    for python in [py, "python3"] {
        let out = init(&[dir.to_str().unwrap(), "--python", python, "--write"], &[]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{python}");
        assert!(
            stderr.contains("SECRET_KEY is read from the environment variable SOCKPIT_TEST_UNSET_KEY (core/settings.py:8), which is not set here"),
            "{python}: {stderr}"
        );
        assert!(!dir.join("sockpit.toml").exists());
    }

    // Settings that print on import, even JSON-looking lines, do not confuse the answer.
    let dir = project("noisy");
    std::fs::write(
        dir.join("core/settings.py"),
        "print('{\"error\": \"settings\", \"message\": \"forged\"}')\n".to_string()
            + &std::fs::read_to_string(dir.join("core/settings.py"))?,
    )?;
    let out = init(&[dir.to_str().unwrap(), "--python", py], &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    Ok(())
}
