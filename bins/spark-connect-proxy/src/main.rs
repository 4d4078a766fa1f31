//! `spark-connect-proxy`: parses flags, sets up logging, and runs [`sc_proxy`].

/// mimalloc: the forwarding path allocates and frees many short-lived buffers on several
/// threads; glibc's allocator spent about 7% of streaming CPU in page faults (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use sc_proxy::{Proxy, ProxyConfig};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// One Spark Connect endpoint in front of many Spark Connect servers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// YAML configuration file (the Go spark-connect-proxy's format is accepted).
    #[arg(long, short = 'c', env = "SC_CONFIG_FILE")]
    config_file: Option<PathBuf>,
    /// Log level (trace, debug, info, warn, error); overrides `log_level` in the file.
    #[arg(long)]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let registry = sc_proxy::builtins();
    let validated = match ProxyConfig::load(args.config_file.as_deref())
        .and_then(|config| config.validate(&registry))
    {
        Ok(validated) => validated,
        Err(e) => {
            eprintln!("spark-connect-proxy: {e}");
            std::process::exit(2);
        }
    };
    let level = args
        .log_level
        .clone()
        .unwrap_or_else(|| validated.config.log_level.as_str().to_owned());
    // Libraries' own chatter stays out of the debug log: HTTP/2 frames, and every DNS message of
    // the DNS provider's resolver (the provider logs what it found and what failed).
    let filter = EnvFilter::try_new(format!(
        "{level},audit=info,h2=warn,hyper=warn,tower=warn,hickory_net=warn,hickory_resolver=warn,hickory_proto=warn"
    ))
        .with_context(|| {
            format!("--log-level '{level}' is not a valid level (trace, debug, info, warn, error)")
        })?;
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let console = if args.log_format == "json" {
        console.json().with_filter(filter).boxed()
    } else {
        console.with_filter(filter).boxed()
    };
    // Security events (target `audit`) also go, one JSON object per line, to `audit.file`.
    let audit = match &validated.config.audit.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| {
                    format!(
                        "audit.file {} cannot be opened for appending",
                        path.display()
                    )
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
    tracing_subscriber::registry()
        .with(console)
        .with(audit)
        .init();

    // The main thread runs the control plane, the acceptor and background work; gRPC calls are
    // served on `server.worker_threads` threads of their own (sc_proxy's `workers`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let proxy = Proxy::bind(validated)
            .await?
            .with_config_file(args.config_file.clone(), registry);
        proxy.serve(shutdown_signal()).await?;
        anyhow::Ok(())
    })
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
