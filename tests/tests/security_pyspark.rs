//! Security end to end: real PySpark through the proxy binary over TLS with tokens, session
//! ownership, identity rewriting seen by Spark, the backend's pre-shared token (a real Spark
//! server started with `spark.connect.authenticate.token`), limits and the audit log.
//!
//! `scripts/test.sh` starts the secured Spark server and exports `SC_TEST_SPARK_SECURE` and
//! `SC_TEST_SPARK_SECURE_TOKEN`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use sc_e2e::{Certs, ProxyProcess, result_json};

const ALICE: &str = "alice-e2e-token";
const BOB: &str = "bob-e2e-token";
const JWT_SECRET: &str = "e2e-jwt-shared-secret";

fn secure_backend() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the tests with scripts/test.sh, which starts the secured Spark server")
        })
    };
    (
        var("SC_TEST_SPARK_SECURE"),
        var("SC_TEST_SPARK_SECURE_TOKEN"),
    )
}

fn auth_section(jwt_key: &Path) -> String {
    format!(
        "auth:
  tokens:
    - token: {ALICE}
      user: alice
    - token: {BOB}
      user: bob
  jwt:
    algorithms: [HS256]
    key_file: {}
    issuer: sc-e2e
    audience: spark
",
        jwt_key.display()
    )
}

fn backend_section(endpoint: &str) -> String {
    format!(
        "backend_provider:
  name: secured spark
  type: PREDEFINED
  spec:
    endpoints:
      - url: {endpoint}
        token_env: SC_TEST_SPARK_SECURE_TOKEN
"
    )
}

#[test]
fn pyspark_over_tls_with_tokens_accepted_and_bad_expired_missing_rejected() {
    let (endpoint, _) = secure_backend();
    let certs = Certs::new();
    let jwt_key = certs.path("jwt.secret");
    std::fs::write(&jwt_key, JWT_SECRET).unwrap();
    let audit = certs.path("audit.jsonl");
    let config = format!(
        "{}{}server:
  listen_addr: 127.0.0.1:@GRPC_PORT@
  tls:
    enabled: true
    cert_file: {}
    key_file: {}
audit:
  file: {}
",
        backend_section(&endpoint),
        auth_section(&jwt_key),
        certs.path("server.pem").display(),
        certs.path("server.key").display(),
        audit.display()
    );
    let proxy = ProxyProcess::start(&config);
    let ca = certs.path("ca.pem");
    let out = result_json(&proxy.run_python(
        "security_tls_tokens.py",
        &[
            ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", ca.to_str().unwrap()),
            ("ALICE_TOKEN", ALICE),
            ("JWT_SECRET", JWT_SECRET),
        ],
    ));
    assert!(
        out["expired"].as_str().unwrap().contains("expired"),
        "{out}"
    );
    // Each rejection is in the audit log, with where it came from and no secret.
    let lines = std::fs::read_to_string(&audit).unwrap();
    let failures: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["fields"]["event"] == "auth_failure")
        .collect();
    assert!(
        failures.len() >= 3,
        "audit log lacks the auth failures:\n{lines}"
    );
    assert!(failures.iter().all(|f| {
        f["fields"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    }));
    assert!(
        !lines.contains("not-a-valid-token") && !lines.contains(ALICE),
        "a token leaked into the audit log"
    );
}

#[test]
fn other_users_cannot_use_a_session_and_spark_sees_the_verified_user() {
    let (endpoint, token) = secure_backend();
    let certs = Certs::new();
    let jwt_key = certs.path("jwt.secret");
    std::fs::write(&jwt_key, JWT_SECRET).unwrap();
    let audit = certs.path("audit.jsonl");
    let config = format!(
        "{}{}audit:\n  file: {}\n",
        backend_section(&endpoint),
        auth_section(&jwt_key),
        audit.display()
    );
    let proxy = ProxyProcess::start(&config);
    let out = result_json(&proxy.run_python(
        "security_ownership.py",
        &[
            ("ALICE_TOKEN", ALICE),
            ("BOB_TOKEN", BOB),
            ("SPARK_SECURE", &endpoint),
            ("SPARK_SECURE_TOKEN", &token),
        ],
    ));
    assert_eq!(out["denied"].as_object().unwrap().len(), 5, "{out}");
    // Bob's five refused calls never reached the backend: they are counted as rejected by the
    // proxy with PERMISSION_DENIED, and no backend call ended with that code.
    let metrics = proxy.metrics();
    let rejected = sc_e2e::metric_sum(
        &metrics,
        "sc_proxy_rejected_calls_total",
        &[("code", "PERMISSION_DENIED")],
    );
    assert!(
        rejected >= 5.0,
        "rejected PERMISSION_DENIED = {rejected}\n{metrics}"
    );
    let forwarded_denied = sc_e2e::metric_sum(
        &metrics,
        "sc_proxy_calls_total",
        &[("code", "PERMISSION_DENIED")],
    );
    assert_eq!(forwarded_denied, 0.0, "{metrics}");
    let lines = std::fs::read_to_string(&audit).unwrap();
    let denials = lines
        .lines()
        .filter(|l| l.contains("\"permission_denied\""))
        .count();
    assert!(
        denials >= 7,
        "audit log lacks permission denials (5 gRPC + 2 control plane):\n{lines}"
    );
    assert!(lines.contains("\"session_create\""), "{lines}");
}

#[test]
fn the_backend_token_is_injected_and_never_revealed() {
    let (endpoint, token) = secure_backend();
    let certs = Certs::new();
    let jwt_key = certs.path("jwt.secret");
    std::fs::write(&jwt_key, JWT_SECRET).unwrap();
    let config = format!("{}{}", backend_section(&endpoint), auth_section(&jwt_key));
    let proxy = ProxyProcess::start(&config);
    let out = result_json(&proxy.run_python(
        "security_backend_token.py",
        &[
            ("ALICE_TOKEN", ALICE),
            ("SPARK_SECURE", &endpoint),
            ("SPARK_SECURE_TOKEN", &token),
        ],
    ));
    assert!(
        out["refused"].as_str().unwrap().contains("UNAUTHENTICATED"),
        "{out}"
    );
    assert!(
        !proxy.log().contains(&token),
        "the backend token appears in the proxy's log"
    );
}

#[test]
fn limits_trigger_at_the_configured_numbers() {
    let (endpoint, _) = secure_backend();
    let certs = Certs::new();
    let jwt_key = certs.path("jwt.secret");
    std::fs::write(&jwt_key, JWT_SECRET).unwrap();
    let config = format!(
        "{}{}router:\n  limits:\n    max_sessions_per_user: 1\n",
        backend_section(&endpoint),
        auth_section(&jwt_key)
    );
    let proxy = ProxyProcess::start(&config);
    proxy.run_python(
        "security_limits.py",
        &[("ALICE_TOKEN", ALICE), ("BOB_TOKEN", BOB)],
    );
    let metrics = proxy.metrics();
    assert!(
        sc_e2e::metric_sum(
            &metrics,
            "sc_proxy_limit_rejections_total",
            &[("limit", "sessions_per_user")]
        ) >= 1.0,
        "{metrics}"
    );
}
