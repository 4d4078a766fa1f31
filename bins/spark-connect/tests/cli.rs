//! The command-line client as a person uses it: a real terminal (tmux) typing into the shell and
//! reading the printed table, plus one-shot `sql` runs. Needs `SC_TEST_SPARK_A` (set by
//! `scripts/test.sh`) and `tmux`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_spark-connect");

fn remote() -> String {
    let addr = std::env::var("SC_TEST_SPARK_A").unwrap_or_else(|_| {
        panic!("SC_TEST_SPARK_A is not set: run the tests with scripts/test.sh, which starts Spark Connect servers and exports their addresses")
    });
    format!("sc://{addr}")
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux is needed for this test (apt-get install -y tmux)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the tmux session when the test ends, however it ends.
struct Session(String);
impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

fn screen(name: &str) -> String {
    tmux(&["capture-pane", "-p", "-J", "-S", "-200", "-t", name])
}

fn wait_for(name: &str, needle: &str, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let s = screen(name);
        if s.contains(needle) {
            return s;
        }
        assert!(
            start.elapsed() < timeout,
            "'{needle}' did not appear on the screen:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn type_line(name: &str, text: &str) {
    // tmux reads an argument ending in ';' as a command separator: send that ';' escaped.
    match text.strip_suffix(';') {
        Some(head) => {
            tmux(&["send-keys", "-t", name, "-l", head]);
            tmux(&["send-keys", "-t", name, "-l", "\\;"]);
        }
        None => {
            tmux(&["send-keys", "-t", name, "-l", text]);
        }
    }
    tmux(&["send-keys", "-t", name, "Enter"]);
}

#[test]
fn shell_in_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let name = format!("sc-cli-{}", std::process::id());
    let cmd = format!(
        "{BIN} --remote '{}' shell --history '{}'",
        remote(),
        history.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "160",
        "-y",
        "50",
        &cmd,
    ]);
    let _guard = Session(name.clone());
    wait_for(&name, "spark> ", Duration::from_secs(60));
    assert!(screen(&name).contains("Connected to Spark 4"));

    // A statement over two lines, ended by ';'.
    type_line(&name, "select id, id * 10 as tens");
    wait_for(&name, "    -> ", Duration::from_secs(10));
    type_line(&name, "from range(3);");
    let s = wait_for(&name, "|  2|  20|", Duration::from_secs(60));
    let expected =
        "+---+----+\n| id|tens|\n+---+----+\n|  0|   0|\n|  1|  10|\n|  2|  20|\n+---+----+";
    assert!(
        s.contains(expected),
        "table not printed as Spark prints it:\n{s}"
    );

    // Errors are printed readably with their class, and the shell goes on.
    type_line(&name, "select * from no_such_table;");
    wait_for(
        &name,
        "error[TABLE_OR_VIEW_NOT_FOUND] (SQLSTATE 42P01)",
        Duration::from_secs(60),
    );

    // Output format can be switched.
    type_line(&name, ":format csv");
    type_line(&name, "select 'a' as x, 1 as y;");
    wait_for(&name, "x,y\na,1", Duration::from_secs(60));

    type_line(&name, ":quit");
    let start = Instant::now();
    while !history.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "history was not saved"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let h = std::fs::read_to_string(&history).unwrap();
    assert!(h.contains("from range(3);"), "{h}");
}

#[test]
fn shell_shows_progress_and_ctrl_c_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("sc-cli-cancel-{}", std::process::id());
    let cmd = format!(
        "{BIN} --remote '{}' shell --history '{}'",
        remote(),
        dir.path().join("history").display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "160",
        "-y",
        "50",
        &cmd,
    ]);
    let _guard = Session(name.clone());
    wait_for(&name, "spark> ", Duration::from_secs(60));

    // A query that runs for minutes: the progress line shows while it runs.
    type_line(
        &name,
        "select max(id % 7 + id % 13) from range(0, 20000000000, 1, 8);",
    );
    let s = wait_for(&name, "[progress] ", Duration::from_secs(120));
    assert!(s.contains("% tasks "), "progress line not as printed:\n{s}");
    assert!(!s.contains("query cancelled"), "{s}");

    // Ctrl-C cancels it, and the shell says so instead of exiting.
    tmux(&["send-keys", "-t", &name, "C-c"]);
    let s = wait_for(&name, "query cancelled", Duration::from_secs(60));
    assert!(
        !s.contains("|max("),
        "the query finished instead of being cancelled:\n{s}"
    );

    // The shell goes on: the next statement prints its table.
    type_line(&name, "select 1;");
    let s = wait_for(
        &name,
        "+---+\n|  1|\n+---+\n|  1|\n+---+",
        Duration::from_secs(60),
    );
    let after = s.split("query cancelled").nth(1).unwrap_or_default();
    assert!(
        after.contains("spark> select 1;"),
        "no prompt after the cancellation:\n{s}"
    );
    type_line(&name, ":quit");
}

#[test]
fn one_shot_sql_formats_and_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--remote")
            .arg(remote())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, _) = run(&[
        "sql",
        "select id, 'x,y' as s from range(2)",
        "--format",
        "csv",
    ]);
    assert!(ok);
    assert_eq!(out, "id,s\n0,\"x,y\"\n1,\"x,y\"\n");
    let (ok, out, _) = run(&[
        "sql",
        "select id, null as n from range(1)",
        "--format",
        "json",
    ]);
    assert!(ok);
    assert_eq!(out, "{\"id\":0,\"n\":null}\n");
    let (ok, out, _) = run(&["sql", "select 1 as one"]);
    assert!(ok);
    assert_eq!(out, "+---+\n|one|\n+---+\n|  1|\n+---+\n");
    let (ok, _, err) = run(&["sql", "select nope"]);
    assert!(!ok);
    assert!(err.starts_with("error[UNRESOLVED_COLUMN"), "{err}");
    let out = Command::new(BIN)
        .args(["--remote", "sc://host/;bad", "sql", "select 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid connection string"));
}
