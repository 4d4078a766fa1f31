//! The interactive shell: reads statements ending at `;` (over several lines if need be), keeps
//! a history file, and runs each statement, interrupting it on Ctrl-C.

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::output::{describe_error, run_and_print};
use crate::{Cli, Format, connect};

const HELP: &str = "Enter SQL statements ending with ';' (they may span lines).
Commands: :help, :format table|csv|json, :rows N, :quit (or Ctrl-D). Ctrl-C cancels the input or the running query.";

pub(crate) fn run(
    rt: &tokio::runtime::Runtime,
    cli: &Cli,
    mut format: Format,
    mut max_rows: i32,
    history: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let spark = rt.block_on(connect(cli))?;
    match rt.block_on(spark.version()) {
        Ok(v) => println!("Connected to Spark {v}. Type :help for help."),
        Err(e) => return Err(e.into()),
    }
    let history = history.or_else(|| {
        std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".spark_connect_history"))
    });
    let mut rl = DefaultEditor::new()?;
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "spark> "
        } else {
            "    -> "
        };
        match rl.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with(':') {
                    let _ = rl.add_history_entry(trimmed);
                    match command(trimmed, &mut format, &mut max_rows) {
                        Some(true) => break,
                        Some(false) => {}
                        None => eprintln!("unknown command {trimmed}; try :help"),
                    }
                    continue;
                }
                if trimmed.is_empty() && buffer.is_empty() {
                    continue;
                }
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if !buffer.trim_end().ends_with(';') {
                    continue;
                }
                let statement = buffer.trim_end().trim_end_matches(';').trim().to_string();
                let _ = rl.add_history_entry(buffer.trim());
                buffer.clear();
                if statement.is_empty() {
                    continue;
                }
                rt.block_on(async {
                    tokio::select! {
                        res = run_and_print(&spark, &statement, format, max_rows) => {
                            if let Err(e) = res {
                                eprintln!("{}", describe_error(&e));
                            }
                        }
                        _ = tokio::signal::ctrl_c() => {
                            let _ = spark.interrupt_all().await;
                            eprintln!("\nquery cancelled");
                        }
                    }
                });
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    let _ = rt.block_on(spark.stop());
    Ok(())
}

/// Runs a `:command`; `Some(true)` means quit, `None` an unknown command.
fn command(cmd: &str, format: &mut Format, max_rows: &mut i32) -> Option<bool> {
    let mut parts = cmd.split_whitespace();
    match (parts.next()?, parts.next()) {
        (":quit" | ":q" | ":exit", _) => Some(true),
        (":help" | ":h", _) => {
            println!("{HELP}");
            Some(false)
        }
        (":format", Some(f)) => {
            *format = match f {
                "table" => Format::Table,
                "csv" => Format::Csv,
                "json" => Format::Json,
                _ => return None,
            };
            Some(false)
        }
        (":rows", Some(n)) => {
            *max_rows = n.parse().ok()?;
            Some(false)
        }
        _ => None,
    }
}
