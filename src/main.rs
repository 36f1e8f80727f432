//! The `sockpit` command: `serve`, `token`, `check`, `doctor`, `init`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value};
use sockpit::config::{AuthMode, Config};
use sockpit::{Paths, Supervisor, auth, datadir};

/// `println!` that ignores a closed stdout: `sockpit serve | head -1` must not take the
/// server down with it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "sockpit",
    version,
    about = "A local realtime (WebSocket) server for web development"
)]
struct Cli {
    /// Config file (default: sockpit.toml in the working dir if present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until Ctrl-C or SIGTERM.
    Serve {
        /// Port (overrides config and SOCKPIT_PORT).
        #[arg(long)]
        port: Option<u16>,
        /// Address to bind (overrides config and SOCKPIT_BIND).
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
    },
    /// Print a dev token valid for the configured auth.
    Token {
        /// The user id claim.
        #[arg(long)]
        user_id: String,
        /// Lifetime: 30s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = auth::parse_ttl)]
        ttl: std::time::Duration,
        /// Extra claim KEY=VALUE (VALUE as JSON if it parses, else a string); repeatable.
        #[arg(long = "claim", value_name = "KEY=VALUE")]
        claims: Vec<String>,
    },
    /// Validate the config and exit.
    Check,
    /// Diagnose: is Sockpit answering, do the endpoints accept a minted token, what does
    /// a token say, is an Origin allowed. Exits 1 when a check fails.
    Doctor {
        /// Where Sockpit should answer (ws://host:port/…); default: the config's address.
        #[arg(long)]
        url: Option<String>,
        /// A token to decode and explain against the config.
        #[arg(long)]
        token: Option<String>,
        /// An Origin to check against allowed_origins.
        #[arg(long)]
        origin: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a Django project (settings, SimpleJWT, websocket routes, channel layer, hosts)
    /// and print the sockpit.toml that serves it, or write it with --write.
    Init {
        /// The project's root, where manage.py is.
        #[arg(default_value = ".")]
        project_dir: PathBuf,
        /// The project's interpreter (default: a venv beside manage.py or one level up,
        /// the active venv, else python3).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Write PROJECT_DIR/sockpit.toml (never over an existing file).
        #[arg(long)]
        write: bool,
        /// Print the signing key too, when the settings hold it as text.
        #[arg(long)]
        show_secret: bool,
        /// Sockpit's port; the project's server gets the next one.
        #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u16).range(1..65535))]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockpit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Init {
        project_dir,
        python,
        write,
        show_secret,
        port,
    } = cli.command
    {
        return init(&project_dir, python.as_deref(), write, show_secret, port);
    }
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Check => {
            let source = cli
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| {
                    if std::path::Path::new(sockpit::config::DEFAULT_FILE).exists() {
                        sockpit::config::DEFAULT_FILE.into()
                    } else {
                        "built-in defaults".into()
                    }
                });
            println!(
                "{source}: ok ({} endpoint{}, port {})",
                config.endpoints.len(),
                if config.endpoints.len() == 1 { "" } else { "s" },
                config.server.port
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            user_id,
            ttl,
            claims,
        } => {
            let verifier = auth::Verifier::for_config(&config, &Paths::from_env()?)?;
            let mut extra = Map::new();
            for c in claims {
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("--claim {c:?}: expected KEY=VALUE"))?;
                let v = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v));
                extra.insert(k.to_string(), v);
            }
            println!("{}", verifier.mint(&user_id, ttl, &extra)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor {
            url,
            token,
            origin,
            json,
        } => {
            let verifier = auth::Verifier::for_config(&config, &Paths::from_env()?)?;
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let report = rt.block_on(async {
                let addr = match &url {
                    Some(u) => Some(resolve_url(u).await?),
                    None => None,
                };
                let opts = sockpit::doctor::Options {
                    addr,
                    token,
                    origin,
                };
                anyhow::Ok(sockpit::doctor::run(&config, &verifier, &opts).await)
            })?;
            if json {
                say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", sockpit::doctor::render(&report));
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Init { .. } => unreachable!("handled before the config is loaded"),
        Command::Serve { port, bind } => {
            if let Some(p) = port {
                config.server.port = p;
            }
            if let Some(b) = bind {
                config.server.bind = b;
            }
            init_tracing();
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let config_file = cli
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(sockpit::config::DEFAULT_FILE));
            rt.block_on(serve(config, config_file))
        }
    }
}

/// `sockpit init`: the proposal on stdout (or written), the report on stderr.
fn init(
    project: &std::path::Path,
    python: Option<&std::path::Path>,
    write: bool,
    show_secret: bool,
    port: u16,
) -> Result<ExitCode> {
    use sockpit::init;
    let init::Proposal {
        project, rendered, ..
    } = init::propose(
        project,
        &init::ProposeOptions {
            python,
            port,
            include_secret: write || show_secret,
            elsewhere: false,
        },
    )?;
    let target = project.join(sockpit::config::DEFAULT_FILE);
    if write {
        init::write_new(&target, &rendered.toml, rendered.holds_secret)?;
    }
    let mut err = String::new();
    for (topic, what) in &rendered.report {
        err += &format!("  {topic:<11} {what}\n");
    }
    for guess in &rendered.guesses {
        err += &format!("  {:<11} {guess}\n", "guessed");
    }
    eprint!("sockpit init: {}\n{err}", project.display());
    if write {
        eprintln!(
            "wrote {} ({}); run `sockpit serve` there",
            target.display(),
            if rendered.relays {
                "the project's own consumers behind Sockpit"
            } else {
                "Sockpit's endpoints"
            }
        );
    } else {
        print!("{}", rendered.toml);
        eprintln!("(printed only: --write saves it as {})", target.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `ws://localhost:8000/ws/x/` → the socket address it names.
async fn resolve_url(url: &str) -> Result<std::net::SocketAddr> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("--url {url}: cannot resolve {authority}"))?
        // `localhost` may name both; a server on the default bind listens on IPv4.
        .min_by_key(|a| a.is_ipv6())
        .with_context(|| format!("--url {url}: no address for {authority}"))
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SOCKPIT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Serves until a signal; a config saved through Settings restarts the server with it
/// (on failure, the previous config comes back). The banner is printed at every start.
async fn serve(config: Config, config_file: PathBuf) -> Result<ExitCode> {
    let paths = Paths::from_env()?.with_config_file(Some(config_file));
    let supervisor = Supervisor::new(config, paths);
    supervisor.start().await?;
    let stop = async {
        sockpit::server::shutdown_signal().await;
        eprintln!("stopping: closing clients with 1001");
    };
    supervisor
        .run_announcing(stop, |h| banner(h, &supervisor.paths()))
        .await?;
    Ok(ExitCode::SUCCESS)
}

/// What `serve` prints: where everything is.
fn banner(handle: &sockpit::ServerHandle, paths: &Paths) {
    let addr = handle.local_addr();
    let urls = handle.urls();
    say!("Sockpit {} listening on {addr}", env!("CARGO_PKG_VERSION"));
    for e in &handle.config().endpoints {
        let auth = match e.auth {
            AuthMode::Jwt => "jwt",
            AuthMode::None => "none",
        };
        let channels: Vec<String> = e.channels.iter().map(|c| c.to_string()).collect();
        say!(
            "  WebSocket  {}  (auth {auth}, on_message {}{})",
            urls.ws(e.path.as_str()),
            format!("{:?}", e.on_message).to_lowercase(),
            if channels.is_empty() {
                String::new()
            } else {
                format!(", channel {}", channels.join(", "))
            }
        );
    }
    let proxy = &handle.config().proxy;
    if let Some(up) = &proxy.upstream {
        say!(
            "  Proxy      every other request → {up}{}",
            if proxy.websockets {
                " (WebSockets too)"
            } else {
                ""
            }
        );
        if let Some(cmd) = &proxy.command {
            say!("  Runs       {cmd}");
        }
    }
    say!("  Publish    POST {}", urls.publish());
    if handle.config().api.key.is_empty() {
        say!(
            "  API key    kept in {}",
            paths.data_dir.join(datadir::API_KEY_FILE).display()
        );
    } else {
        say!("  API key    set in config or SOCKPIT_API_KEY");
    }
    say!("  UI login   {}", urls.login(handle.api_key()));
    say!("  Log file   {}", paths.log_file(handle.config()).display());
    if addr.ip().is_unspecified() {
        say!(
            "warning: bound to {} — reachable from your network; use 127.0.0.1 unless you mean it",
            addr.ip()
        );
    }
}
