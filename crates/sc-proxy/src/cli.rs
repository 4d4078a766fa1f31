//! The proxy as a program: the command line, logging (with the audit file), the runtime, the
//! signals and the exit code. Every proxy binary is [`main`] called with its [`Registry`]; the
//! stock one passes [`builtins`](crate::builtins), a binary of your own registers more first:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut registry = sc_proxy::builtins();
//!     // my_provider::register(&mut registry);
//!     sc_proxy::main(registry)
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use sc_backend_api::Registry;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::config::{ConfigError, ProxyConfig};
use crate::serve::{Proxy, ServeError};

/// Libraries' own chatter stays out of the debug log: HTTP/2 frames, and every DNS message of the
/// DNS provider's resolver (the provider logs what it found and what failed). Audit events are
/// always on.
const LIBRARY_LEVELS: &str = "audit=info,h2=warn,hyper=warn,tower=warn,hickory_net=warn,hickory_resolver=warn,hickory_proto=warn";

/// The program name used when the command line gives none.
const DEFAULT_PROGRAM: &str = "spark-connect-proxy";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// The command line of a proxy binary.
///
/// Build one with [`Args::default`] and set its fields, or let [`main`] parse the process's.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    version,
    about = "One Spark Connect endpoint in front of many Spark Connect servers.",
    long_about = None
)]
#[non_exhaustive]
pub struct Args {
    /// YAML configuration file (the Go spark-connect-proxy's format is accepted).
    #[arg(long, short = 'c', env = "SC_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Log level (trace, debug, info, warn, error); overrides `log_level` in the file.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Runs a proxy binary to the end: parses the process's command line (`--config-file`/`-c` or
/// `SC_CONFIG_FILE`, `--log-level`, `--log-format`; `--help` and `--version` answer and exit),
/// then [`run`]s the proxy with the provider types and policies of `registry`.
///
/// The exit code: success after a clean shutdown (SIGINT or SIGTERM), 2 for a bad command line
/// or configuration (the message, naming the flag or key, on stderr), 1 for any other failure
/// (a port in use, unreadable TLS files, ...), its message on stderr too.
pub fn main(registry: Registry) -> ExitCode {
    let program = program_name();
    let matches = Args::command()
        .name(program.clone())
        .bin_name(program.clone())
        .get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    match run(args, registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs the proxy until SIGINT or SIGTERM: reads and validates the configuration (built with
/// `registry`), sets up logging (stderr, and security events to `audit.file`), binds both ports
/// and serves on a single-threaded main runtime (the gRPC port has worker threads of its own,
/// `server.worker_threads`). SIGHUP and `POST /control/reload` re-read the configuration file,
/// built with the same registry.
///
/// Logging is set up once per process: if a global `tracing` subscriber already exists (a test
/// that runs the proxy twice, say), it stays, and the audit file is not written.
pub fn run(args: Args, registry: Registry) -> Result<(), ServeError> {
    let validated = ProxyConfig::load(args.config_file.as_deref())?.validate(&registry)?;
    init_logging(&args, &validated.config)?;
    // The main thread runs the control plane, the acceptor and background work; gRPC calls are
    // served on `server.worker_threads` threads of their own (`workers`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Server(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        Proxy::bind(validated)
            .await?
            .with_config_file(args.config_file, registry)
            .serve(shutdown_signal())
            .await
    })
}

/// The name the program was started as, for usage and error messages.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| DEFAULT_PROGRAM.to_owned())
}

/// Logs to stderr at `--log-level` (else the file's `log_level`), and security events (target
/// `audit`) also, one JSON object per line, to `audit.file`.
fn init_logging(args: &Args, config: &ProxyConfig) -> Result<(), ServeError> {
    let level = args
        .log_level
        .clone()
        .unwrap_or_else(|| config.log_level.as_str().to_owned());
    let filter = EnvFilter::try_new(format!("{level},{LIBRARY_LEVELS}")).map_err(|_| {
        ConfigError::Invalid(format!(
            "--log-level '{level}' is not a valid level (trace, debug, info, warn, error)"
        ))
    })?;
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let console = match args.log_format {
        LogFormat::Json => console.json().with_filter(filter).boxed(),
        LogFormat::Text => console.with_filter(filter).boxed(),
    };
    let audit = match &config.audit.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    ServeError::Logging(format!(
                        "audit.file {} cannot be opened for appending: {e}",
                        path.display()
                    ))
                })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(Targets::new().with_target("audit", tracing::Level::INFO)),
            )
        }
        None => None,
    };
    if tracing_subscriber::registry()
        .with(console)
        .with(audit)
        .try_init()
        .is_err()
    {
        tracing::warn!(
            "a tracing subscriber was already set up in this process; it stays (no audit file)"
        );
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn args(config_file: &Path, log_level: Option<&str>) -> Args {
        Args {
            config_file: Some(config_file.to_owned()),
            log_level: log_level.map(str::to_owned),
            ..Args::default()
        }
    }

    #[test]
    fn the_command_line_has_the_stock_flags() {
        let a = Args::try_parse_from(["p", "-c", "x.yaml", "--log-format", "json"]).unwrap();
        assert_eq!(a.config_file.as_deref(), Some(Path::new("x.yaml")));
        assert_eq!(a.log_format, LogFormat::Json);
        let a =
            Args::try_parse_from(["p", "--config-file", "y.yaml", "--log-level", "debug"]).unwrap();
        assert_eq!(a.log_level.as_deref(), Some("debug"));
        assert_eq!(a.log_format, LogFormat::Text);
        assert!(Args::try_parse_from(["p", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn configuration_errors_are_exit_code_2_and_other_failures_1() {
        let dir = tempfile::tempdir().unwrap();
        let e = run(args(&dir.path().join("none.yaml"), None), crate::builtins()).unwrap_err();
        assert!(matches!(e, ServeError::Config(_)), "{e}");
        assert_eq!(e.exit_code(), 2);

        let path = dir.path().join("proxy.yaml");
        std::fs::write(&path, "backend_provider:\n  type: NOPE\n").unwrap();
        let e = run(args(&path, None), crate::builtins()).unwrap_err();
        assert!(e.to_string().contains("LAUNCH, PREDEFINED"), "{e}");
        assert_eq!(e.exit_code(), 2);

        std::fs::write(&path, "store:\n  type: memory\n").unwrap();
        let e = run(args(&path, Some("debug=loud")), crate::builtins()).unwrap_err();
        assert!(e.to_string().contains("--log-level 'debug=loud'"), "{e}");
        assert_eq!(e.exit_code(), 2);

        let audit = dir.path().join("missing-dir").join("audit.jsonl");
        std::fs::write(
            &path,
            format!(
                "store:\n  type: memory\naudit:\n  file: {}\n",
                audit.display()
            ),
        )
        .unwrap();
        let e = run(args(&path, None), crate::builtins()).unwrap_err();
        assert!(matches!(e, ServeError::Logging(_)), "{e}");
        assert!(e.to_string().contains("audit.file"), "{e}");
        assert_eq!(e.exit_code(), 1);
    }
}
