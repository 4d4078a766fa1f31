//! `spark-connect`: a command-line Spark Connect client built on the public `sc-client` API.
//!
//! * `spark-connect sql "select ..." [--format table|csv|json]` runs one statement;
//! * `spark-connect` or `spark-connect shell` starts an interactive shell (history, statements
//!   ending at `;`);
//! * `spark-connect session create|list|show|close` manages sessions on the proxy's control
//!   plane.

mod output;
mod shell;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sc_client::{ControlPlaneClient, SessionOptions, SparkSession};

/// A command-line client for Spark Connect servers and the gateway proxy.
#[derive(Debug, Parser)]
#[command(name = "spark-connect", version, about)]
struct Cli {
    /// The Spark Connect connection string, `sc://host:port/;key=value`.
    #[arg(long, env = "SPARK_REMOTE", global = true)]
    remote: Option<String>,
    /// The proxy control plane, for `session` commands.
    #[arg(
        long,
        env = "SPARK_CONNECT_CONTROL",
        default_value = "http://localhost:8081",
        global = true
    )]
    control: String,
    /// Bearer token for the control plane, when the proxy requires authentication.
    #[arg(
        long,
        env = "SPARK_CONNECT_TOKEN",
        global = true,
        hide_env_values = true
    )]
    token: Option<String>,
    /// Do not show query progress.
    #[arg(long, global = true)]
    no_progress: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one SQL statement and prints its result.
    Sql {
        /// The statement.
        query: String,
        /// How to print the result.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// The most rows printed as a table.
        #[arg(long, default_value_t = 20)]
        max_rows: i32,
    },
    /// Starts the interactive shell (the default).
    Shell {
        /// How to print results.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// The most rows printed as a table.
        #[arg(long, default_value_t = 20)]
        max_rows: i32,
        /// The history file (default `~/.spark_connect_history`).
        #[arg(long, env = "SPARK_CONNECT_HISTORY")]
        history: Option<std::path::PathBuf>,
    },
    /// Manages sessions on the proxy's control plane.
    Session {
        #[command(subcommand)]
        action: SessionAction,
    },
}

#[derive(Debug, Subcommand)]
enum SessionAction {
    /// Creates a session and prints its id and connection string.
    Create {
        /// The user the session is for.
        #[arg(long)]
        user: Option<String>,
        /// The application name the proxy shows for the session.
        #[arg(long)]
        app_name: Option<String>,
    },
    /// Lists the sessions.
    List,
    /// Shows one session.
    Show {
        /// The session id.
        id: String,
    },
    /// Closes a session.
    Close {
        /// The session id.
        id: String,
    },
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// The table Spark's `show()` prints.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per row.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPARK_CONNECT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Session { action }) => {
            rt.block_on(session_command(&cli.control, cli.token.as_deref(), action))
        }
        Some(Command::Sql {
            ref query,
            format,
            max_rows,
        }) => rt.block_on(async {
            let spark = connect(&cli).await?;
            let res = output::run_and_print(&spark, query, format, max_rows).await;
            let _ = spark.stop().await;
            res
        }),
        Some(Command::Shell {
            format,
            max_rows,
            ref history,
        }) => shell::run(&rt, &cli, format, max_rows, history.clone()),
        None => shell::run(&rt, &cli, Format::Table, 20, None),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", output::describe_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// Connects to `--remote` (or `SPARK_REMOTE`) and sets up the progress indicator.
async fn connect(cli: &Cli) -> anyhow::Result<SparkSession> {
    let mut b = SparkSession::builder();
    if let Some(r) = &cli.remote {
        b = b.remote(r.clone());
    }
    let spark = b.build().await?;
    if !cli.no_progress && std::io::stderr().is_terminal() {
        spark.register_progress_handler(output::print_progress);
    }
    Ok(spark)
}

async fn session_command(
    control: &str,
    token: Option<&str>,
    action: SessionAction,
) -> anyhow::Result<()> {
    // The printed connection string leaves the token out: it is a secret, and the user has it.
    let printer = ControlPlaneClient::new(control)?;
    let client = match token {
        Some(t) => printer.clone().with_token(t),
        None => printer.clone(),
    };
    match action {
        SessionAction::Create { user, app_name } => {
            let mut opts = SessionOptions::new();
            if let Some(u) = user {
                opts = opts.user_id(u);
            }
            if let Some(a) = app_name {
                opts = opts.app_name(a);
            }
            let s = client.create_session_with(&opts).await?;
            println!("id:                {}", s.id);
            if let Some(a) = &s.app_name {
                println!("app name:          {a}");
            }
            if let Some(b) = &s.backend {
                println!("backend:           {b}");
            }
            if let Ok(c) = printer.connection_string(&s) {
                println!("connection string: {c}");
            }
        }
        SessionAction::List => {
            let sessions = client.list_sessions().await?;
            output::print_sessions(&sessions);
        }
        SessionAction::Show { id } => {
            let s = client.get_session(&id).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        SessionAction::Close { id } => {
            let s = client.close_session(&id).await?;
            println!("closed {}", s.id);
        }
    }
    Ok(())
}
