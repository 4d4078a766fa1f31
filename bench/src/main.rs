//! `sc-bench`: the proxy's benchmark suite. A fast fake Spark Connect backend and a load
//! generator that measures direct connections, the proxy and nginx `grpc_pass` side by side in
//! one run (see `docs/benchmarks.md`).
//!
//! * `sc-bench fake-backend --port N` serves the fake backend until killed.
//! * `sc-bench run [--quick | --smoke] [--spark HOST:PORT] [--out FILE]` runs the suite.
//! * `sc-bench load --addr HOST:PORT --kind unary|stream` loads one target (to profile it).

mod client;
mod fake;
mod measure;
mod procs;
mod report;
mod run;

use clap::{Parser, Subcommand};

/// Benchmarks of the Spark Connect proxy, side by side with direct connections and nginx.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the fake Spark Connect backend on 127.0.0.1:PORT until killed.
    FakeBackend {
        /// The port to listen on.
        #[arg(long)]
        port: u16,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Runs the benchmark suite and prints (and optionally writes) a Markdown report.
    Run(run::RunArgs),
    /// Puts one kind of load on one target for a while (for profiling the proxy under it).
    Load(run::LoadArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::FakeBackend { port, host } => runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
            eprintln!(
                "sc-bench fake backend listening on {}",
                listener.local_addr()?
            );
            fake::serve(listener).await
        }),
        Command::Load(args) => runtime.block_on(run::load(args)),
        Command::Run(args) => {
            let ok = runtime.block_on(run::run(args))?;
            // Child processes are stopped by now; do not wait for stray tasks.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            if ok { Ok(()) } else { std::process::exit(1) }
        }
    }
}
