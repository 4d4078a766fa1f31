//! The `spark-connect` command-line client against the proxy binary and a real Spark server:
//! `SPARK_REMOTE` instead of `--remote`, and the `session` commands on the control plane.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use sc_e2e::{ProxyProcess, predefined_config, test_env};

/// The CLI binary, built next to the proxy binary by `cargo test --workspace --no-run`.
fn cli_bin() -> PathBuf {
    let bin = test_env().proxy_bin.with_file_name("spark-connect");
    assert!(
        bin.exists(),
        "{} does not exist; run `cargo test --workspace --no-run` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(cli_bin())
        .args(args)
        .env_remove("SPARK_REMOTE")
        .env_remove("SPARK_CONNECT_CONTROL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn session_commands_and_spark_remote_through_the_proxy() {
    let env = test_env();
    let proxy = ProxyProcess::start(&predefined_config(&[&env.spark_a], "ROUND_ROBIN"));
    let control = proxy.control_url();

    let (ok, out, err) = cli(
        &[
            "--control",
            &control,
            "session",
            "create",
            "--user",
            "alice",
        ],
        &[],
    );
    assert!(ok, "session create failed: {err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no id in: {out}"))
        .to_owned();
    assert!(out.contains("connection string:"), "{out}");

    let (ok, out, err) = cli(&["session", "list"], &[("SPARK_CONNECT_CONTROL", &control)]);
    assert!(ok, "{err}");
    assert!(out.contains(&id), "session list does not show {id}: {out}");
    let (ok, out, err) = cli(&["--control", &control, "session", "show", &id], &[]);
    assert!(ok, "{err}");
    assert!(out.contains(&id) && out.contains("alice"), "{out}");

    // SPARK_REMOTE, as PySpark reads it, with the session header: served through the proxy.
    let remote = format!(
        "sc://127.0.0.1:{}/;user_id=alice;x-spark-connect-session-id={id}",
        proxy.grpc_port()
    );
    let (ok, out, err) = cli(
        &["--no-progress", "sql", "select 6 * 7 as answer"],
        &[("SPARK_REMOTE", &remote)],
    );
    assert!(ok, "sql through the proxy failed: {err}");
    assert_eq!(out, "+------+\n|answer|\n+------+\n|    42|\n+------+\n");
    assert!(proxy.calls("ExecutePlan") >= 1.0);

    let (ok, _, err) = cli(&["--control", &control, "session", "close", &id], &[]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&["--control", &control, "session", "show", &id], &[]);
    assert!(!ok);
    assert!(
        err.contains("404") || err.to_lowercase().contains("not found"),
        "{err}"
    );
    let (ok, _, err) = cli(&["sql", "select 1"], &[("SPARK_REMOTE", &remote)]);
    assert!(!ok, "a closed session was served");
    assert!(err.starts_with("error"), "{err}");
}
