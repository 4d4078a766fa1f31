//! The binary's shutdown: SIGTERM stops accepting connections, lets running streams finish, and
//! exits; a stream that outlives `server.shutdown_grace` is cut and the process still exits.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sc_testkit::{client, execute_req, free_port, spawn_backend};

struct Proxy {
    child: Child,
    grpc: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn start(backend: std::net::SocketAddr, grace: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, control) = (free_port(), free_port());
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "store:\n  type: memory\nbackend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: {backend}\nserver:\n  listen_addr: 127.0.0.1:{grpc}\n  shutdown_grace: {grace}\ncontrol:\n  listen_addr: 127.0.0.1:{control}\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_spark-connect-proxy"))
        .arg("--config-file")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", grpc))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the proxy did not start listening"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Proxy {
        child,
        grpc,
        _dir: dir,
    }
}

fn terminate(child: &Child) {
    signal(child, "-TERM");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_accepting_and_lets_running_streams_finish() {
    stops_accepting_and_lets_running_streams_finish("-TERM").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_accepting_and_lets_running_streams_finish() {
    stops_accepting_and_lets_running_streams_finish("-INT").await;
}

async fn stops_accepting_and_lets_running_streams_finish(sig: &str) {
    let (backend, _) = spawn_backend("slow").await;
    let mut proxy = start(backend, "30s").await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", proxy.grpc).parse().unwrap();
    let mut c = client(addr).await;
    let mut stream = c
        .execute_plan(execute_req("s", "u", "op", "big:40:65536"))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();

    signal(&proxy.child, sig);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the proxy still accepts connections after {sig}"
    );
    // The running stream is not cut: every message arrives, slowly read.
    let mut n = 1;
    while let Some(_msg) = stream.message().await.unwrap() {
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(n, 40);
    drop(stream);
    drop(c);
    let status = wait_exit(&mut proxy.child, Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_longer_than_the_grace_period_does_not_keep_the_proxy_alive() {
    let (backend, _) = spawn_backend("slow").await;
    let mut proxy = start(backend, "1s").await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", proxy.grpc).parse().unwrap();
    let mut c = client(addr).await;
    // A large result nobody reads: the call stays open.
    let mut stream = c
        .execute_plan(execute_req("s", "u", "op", "big:512:1048576"))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    let started = Instant::now();
    terminate(&proxy.child);
    let status = wait_exit(&mut proxy.child, Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "exited before the grace period"
    );
}
