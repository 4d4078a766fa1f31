//! `custom-spark-connect-proxy` as a process, in front of in-process fake Spark Connect servers:
//! the ENV provider's servers are served with the stock proxy's authentication and control
//! plane, and configuration errors name their key and exit with code 2. (The end-to-end test
//! with real Spark and PySpark is `tests/tests/custom_proxy_pyspark.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sc_testkit::{client, config_req, free_port, spawn_backend};

const BIN: &str = env!("CARGO_BIN_EXE_custom-spark-connect-proxy");
const TOKEN: &str = "example-t0ken";
const VARIABLE: &str = "SC_EXAMPLE_ENV_BACKENDS";

/// Kills the proxy when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(grpc: u16, control: u16) -> String {
    format!(
        "backend_provider:\n  name: env sparks\n  type: ENV\n  spec:\n    variable: {VARIABLE}\n\
         store:\n  type: memory\n\
         auth:\n  tokens:\n    - token: {TOKEN}\n      user: alice\n\
         server:\n  listen_addr: 127.0.0.1:{grpc}\ncontrol:\n  listen_addr: 127.0.0.1:{control}\n"
    )
}

fn proxy(config_file: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config-file")
        .arg(config_file)
        .env_remove("SC_CONFIG_FILE")
        .env_remove("SC_LOG_LEVEL")
        .env_remove(VARIABLE)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn env_backends_are_served_with_the_stock_proxys_authentication_and_control_plane() {
    let (a, _) = spawn_backend("fake-a").await;
    let (b, _) = spawn_backend("fake-b").await;
    let dir = tempfile::tempdir().unwrap();
    let (grpc, control) = (free_port(), free_port());
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, config(grpc, control)).unwrap();
    let _child = Killed(
        proxy(&path)
            .env(VARIABLE, format!("{a}, {b}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{control}{path}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http.get(url("/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the proxy did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The control plane wants the token, and then lists the ENV provider's servers.
    let refused = http.get(url("/control/backends")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let listed: serde_json::Value = http
        .get(url("/control/backends"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let backends: Vec<(&str, &str, &str)> = listed["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap(),
                b["endpoint"].as_str().unwrap(),
                b["provider"].as_str().unwrap(),
            )
        })
        .collect();
    let (a, b) = (format!("http://{a}"), format!("http://{b}"));
    assert_eq!(
        backends,
        [
            ("env-0", a.as_str(), "env sparks"),
            ("env-1", b.as_str(), "env sparks")
        ],
        "{listed}"
    );

    // gRPC: without the token the call is refused; with it, a fake server answers.
    let addr = format!("127.0.0.1:{grpc}").parse().unwrap();
    let mut c = client(addr).await;
    let status = c
        .config(config_req("00000000-0000-4000-8000-000000000001", "alice"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let mut request =
        tonic::Request::new(config_req("00000000-0000-4000-8000-000000000001", "alice"));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let answer = c.config(request).await.unwrap().into_inner();
    assert!(
        answer.server_side_session_id.starts_with("fake-"),
        "{answer:?}"
    );
}

/// Runs the binary with `yaml` (and `env`) until it exits on its own: its exit code and stderr.
fn refused(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = proxy(&path)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_exit_with_code_2_naming_the_key() {
    let yaml = config(free_port(), free_port());

    let (code, stderr) = refused(&yaml, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("backend_provider.spec.variable")
            && stderr.contains(&format!("{VARIABLE} is not set")),
        "{stderr}"
    );

    let (code, stderr) = refused(&yaml, &[(VARIABLE, "spark-1:15002,spark-2")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("backend_provider.spec.variable")
            && stderr.contains("'spark-2' has no port"),
        "{stderr}"
    );

    let (code, stderr) = refused(&yaml.replace("variable:", "varaible:"), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("varaible"), "{stderr}");

    // An unknown type lists the registered ones: the stock types and ENV.
    let (code, stderr) = refused(&yaml.replace("type: ENV", "type: KUBERNETES"), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("'KUBERNETES'")
            && stderr.contains("use one of DNS, ENV, LAUNCH, PREDEFINED"),
        "{stderr}"
    );
}
