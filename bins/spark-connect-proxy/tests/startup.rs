//! The binary's start-up log: `auth.anonymous: true` is announced loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sc_testkit::{client, config_req, free_port, spawn_backend};

/// Runs the proxy with `auth` appended to its configuration until a call through it succeeds
/// (so start-up is over), then stops it: its stderr.
async fn startup_log(auth: &str) -> String {
    let (backend, _) = spawn_backend("b").await;
    let dir = tempfile::tempdir().unwrap();
    let (grpc, control) = (free_port(), free_port());
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: {backend}\nserver:\n  listen_addr: 127.0.0.1:{grpc}\ncontrol:\n  listen_addr: 127.0.0.1:{control}\n{auth}"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spark-connect-proxy"))
        .arg("--config-file")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // A call through the proxy succeeds once it serves, which is after the start-up log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", grpc))
            .await
            .is_ok()
        {
            let addr = format!("127.0.0.1:{grpc}").parse().unwrap();
            let mut c = client(addr).await;
            if c.config(config_req("s", "u")).await.is_ok() {
                break;
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the proxy did not serve: {}", reader.join().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap()
}

#[tokio::test]
async fn anonymous_access_is_announced_with_a_warning_at_start_up() {
    let log = startup_log("auth:\n  anonymous: true\n").await;
    let line = log
        .lines()
        .find(|l| l.contains("AUTHENTICATION IS OPEN"))
        .unwrap_or_else(|| panic!("no warning in the start-up log:\n{log}"));
    assert!(line.contains("WARN"), "not a warning: {line}");
    assert!(line.contains("auth.anonymous"), "{line}");
}

#[tokio::test]
async fn without_anonymous_access_there_is_no_such_warning() {
    let log = startup_log("").await;
    assert!(
        log.contains("authentication is off"),
        "the start-up log was captured:\n{log}"
    );
    assert!(!log.contains("AUTHENTICATION IS OPEN"), "{log}");
}
