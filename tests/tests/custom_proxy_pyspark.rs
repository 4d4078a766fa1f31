//! The custom proxy binary end to end: `custom-spark-connect-proxy` (`examples/custom-provider`,
//! the stock main with the ENV provider type registered) between real PySpark and the real
//! Spark Connect servers, with static-token authentication (the token's sha256 in
//! `auth.tokens`), TLS, the control plane and the embedded session store: what a provider crate
//! gets by being linked into a proxy binary.
//!
//! `scripts/test.sh` builds the binary and exports `SC_CUSTOM_PROXY_BIN`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sc_e2e::{
    Certs, ProxyProcess, custom_proxy_bin, finish_scenario, spawn_scenario, step_done, test_env,
    wait_step,
};
use sha2::Digest as _;

const TOKEN: &str = "custom-proxy-e2e-token";
const VARIABLE: &str = "SC_E2E_ENV_BACKENDS";

#[test]
fn the_custom_binary_serves_env_backends_with_auth_tls_and_a_store_that_survives_sigkill() {
    let env = test_env();
    let certs = Certs::new();
    let digest = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    let config = format!(
        "backend_provider:
  name: env sparks
  type: ENV
  spec:
    variable: {VARIABLE}
load_policy:
  type: ROUND_ROBIN
log_level: debug
auth:
  tokens:
    - sha256: {digest}
      user: alice
server:
  listen_addr: 127.0.0.1:@GRPC_PORT@
  tls:
    enabled: true
    cert_file: {}
    key_file: {}
",
        certs.path("server.pem").display(),
        certs.path("server.key").display(),
    );
    let servers = format!("{},{}", env.spark_a, env.spark_b);
    let mut proxy =
        ProxyProcess::start_binary(&custom_proxy_bin(), &config, &[(VARIABLE, &servers)])
            .with_bearer(TOKEN);
    assert!(
        !proxy.log().contains(TOKEN),
        "the token appears in the proxy's log"
    );

    // The control plane refuses a request without the token, and lists the ENV provider's
    // servers to one with it.
    let (status, body) = proxy.control_as(None, "GET", "/control/backends", true);
    assert_eq!(status, 401, "{body}");
    let (status, listed) = proxy.get_json("/control/backends");
    assert_eq!(status, 200, "{listed}");
    let listed_backends = listed["backends"].as_array().unwrap();
    assert_eq!(listed_backends.len(), 2, "{listed}");
    for (i, (backend, server)) in listed_backends
        .iter()
        .zip([&env.spark_a, &env.spark_b])
        .enumerate()
    {
        assert_eq!(backend["id"], format!("env-{i}"), "{listed}");
        assert_eq!(backend["endpoint"], format!("http://{server}"), "{listed}");
        assert_eq!(backend["provider"], "env sparks", "{listed}");
    }

    let ca = certs.path("ca.pem");
    let (sync, handle) = spawn_scenario(
        &proxy,
        "custom_proxy.py",
        vec![
            (
                "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH".into(),
                ca.display().to_string(),
            ),
            ("TOKEN".into(), TOKEN.into()),
        ],
    );
    wait_step(sync.path(), "ready", &handle, Duration::from_secs(180));
    // SIGKILL: nothing is written out; the embedded store already holds both bindings.
    proxy.kill_and_restart();
    step_done(sync.path(), "restarted", "1");
    let out = finish_scenario(&proxy, handle);
    assert!(
        out["missing"].as_str().unwrap().contains("UNAUTHENTICATED"),
        "{out}"
    );

    // The control-plane session outlived the restart, owned by the token's user.
    let (status, body) = proxy.get_json(&format!(
        "/control/sessions/{}",
        out["control_id"].as_str().unwrap()
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "alice", "{body}");
    assert!(
        !proxy.log().contains(TOKEN),
        "the token appears in the proxy's log"
    );
}
