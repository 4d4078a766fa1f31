//! What an operator sees, end to end: the dashboard in headless Chromium (Debian's, driven over
//! the DevTools protocol by Playwright) showing real PySpark sessions on real Spark servers,
//! draining a backend from the page, authentication; schemathesis against the live control
//! plane and its OpenAPI document; a PySpark query traced into an OTLP receiver.
//!
//! Run with `scripts/test.sh` (it starts the Spark servers and installs Chromium, Playwright
//! and schemathesis with `scripts/setup-web.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sc_e2e::{
    ProxyProcess, predefined_config, result_json, test_env, two_backends_config, web_env,
};
use sc_testkit::otlp::{OtlpReceiver, traceparent};
use serde_json::{Value, json};

const ALICE: &str = "alice-dashboard-token";
const BOB: &str = "bob-dashboard-token";
const ROOT: &str = "root-dashboard-token";

/// Tokens for alice, bob and root (an admin).
fn with_tokens(yaml: &str) -> String {
    format!(
        "{yaml}auth:\n  admin_group: admins\n  tokens:\n    - {{token: {ALICE}, user: alice}}\n    - {{token: {BOB}, user: bob}}\n    - {{token: {ROOT}, user: root, groups: [admins]}}\n"
    )
}

/// Where the screenshots go: `SC_TEST_SCREENSHOTS` if set (to look at them), else a temporary
/// folder.
fn screenshot_dir() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var("SC_TEST_SCREENSHOTS").unwrap_or_else(|_| tmp.path().display().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    (tmp, dir)
}

/// Checks a screenshot: a PNG of the viewport's size (times the device scale), not blank.
fn assert_screenshot(path: &str, width: u32, height: u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{path} is a PNG");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (width, height), "{path}: size");
    // A blank page compresses to almost nothing; a page with tables and charts does not.
    assert!(
        bytes.len() > 20_000,
        "{path} is {} bytes: blank?",
        bytes.len()
    );
}

/// Opens one PySpark session per user (left open, idle); their ids and Spark ports.
fn open_sessions(proxy: &ProxyProcess, users: &str, tokens: &str) -> Vec<Value> {
    let out = result_json(&proxy.run_python(
        "dashboard_sessions.py",
        &[("DASH_USERS", users), ("DASH_TOKENS", tokens)],
    ));
    out["sessions"].as_array().unwrap().clone()
}

/// The backend a Spark server's port belongs to (A is backend-0, B backend-1).
fn backend_of_port(port: u64) -> &'static str {
    let env = test_env();
    if env.spark_a.ends_with(&format!(":{port}")) {
        "backend-0"
    } else {
        assert!(env.spark_b.ends_with(&format!(":{port}")), "port {port}");
        "backend-1"
    }
}

fn expected(sessions: &[Value]) -> String {
    let list: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s["id"],
                "user": s["user"],
                "state": "idle",
                "backend": backend_of_port(s["port"].as_u64().unwrap()),
            })
        })
        .collect();
    Value::Array(list).to_string()
}

#[test]
fn the_dashboard_shows_real_sessions_and_draining_from_it_moves_the_next_session() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let (_tmp, shots) = screenshot_dir();
    // Two PySpark sessions, one on each backend (round robin), as Spark itself says.
    let first = open_sessions(&proxy, "alice,bob", "");
    let backends: Vec<_> = first
        .iter()
        .map(|s| backend_of_port(s["port"].as_u64().unwrap()))
        .collect();
    assert_ne!(backends[0], backends[1], "{first:?}");

    let drain = "backend-0";
    let out = result_json(&proxy.run_web_python(
        "dashboard_ui.py",
        &[
            ("DASH_MODE", "overview"),
            ("DASH_EXPECT", &expected(&first)),
            ("DASH_DRAIN", drain),
            ("DASH_SHOTS", &shots),
        ],
    ));
    assert_eq!(out["errors"], json!([]), "no script error in the page");
    assert_eq!(
        out["drained_state"], "draining",
        "the page drained it: {out}"
    );
    assert_eq!(
        out["api_operations"], out["api_documented"],
        "every documented route rendered"
    );
    assert!(out["api_operations"].as_u64().unwrap() >= 15, "{out}");
    assert_eq!(out["phone_fits"], true, "no sideways scrolling on a phone");
    assert_eq!(out["phone_backends_fit"], true);
    let detail = out["detail"].as_str().unwrap();
    assert!(
        detail.contains("Operations in flight") && detail.contains("Queries"),
        "{detail}"
    );
    for (name, (w, h)) in [
        ("sessions-1366x768", (1366, 768)),
        ("backends-1366x768", (1366, 768)),
        ("proxy-1366x768", (1366, 768)),
        ("api-1366x768", (1366, 768)),
        ("sessions-phone", (780, 1688)),
    ] {
        assert_screenshot(&format!("{shots}/{name}.png"), w, h);
    }

    // The next sessions go to the backend still in service, as Spark itself says.
    let next = open_sessions(&proxy, "carol,dave", "");
    for s in &next {
        assert_eq!(
            backend_of_port(s["port"].as_u64().unwrap()),
            "backend-1",
            "{s}"
        );
    }
    let mut all = first.clone();
    all.extend(next);
    let out = result_json(&proxy.run_web_python(
        "dashboard_ui.py",
        &[
            ("DASH_MODE", "after_drain"),
            ("DASH_EXPECT", &expected(&all)),
            ("DASH_DRAIN", drain),
            ("DASH_SHOTS", &shots),
        ],
    ));
    assert_eq!(out["undrained_state"], "active");
    assert_eq!(out["shown"].as_array().unwrap().len(), 4, "{out}");
}

#[test]
fn with_authentication_each_user_sees_their_own_sessions_and_admins_see_all() {
    let proxy = ProxyProcess::start(&with_tokens(&two_backends_config("ROUND_ROBIN")));
    let (_tmp, shots) = screenshot_dir();
    let sessions = open_sessions(
        &proxy,
        "alice,bob,alice",
        &format!("alice={ALICE},bob={BOB}"),
    );
    let alice: Vec<Value> = sessions
        .iter()
        .filter(|s| s["user"] == "alice")
        .cloned()
        .collect();
    let out = result_json(&proxy.run_web_python(
        "dashboard_ui.py",
        &[
            ("DASH_MODE", "auth"),
            ("DASH_EXPECT", &expected(&alice)),
            ("DASH_ALL", &expected(&sessions)),
            (
                "DASH_TOKENS",
                &json!({"alice": ALICE, "root": ROOT}).to_string(),
            ),
            ("DASH_SHOTS", &shots),
        ],
    ));
    assert_eq!(
        out["rows_before_sign_in"], 0,
        "nothing shown before signing in"
    );
    let seen: Vec<&str> = out["alice_sees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let mut mine: Vec<&str> = alice.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort_unstable();
    mine.sort_unstable();
    assert_eq!(seen_sorted, mine, "alice sees exactly her sessions: {out}");
    assert!(out["alice_who"].as_str().unwrap().contains("alice"));
    assert_eq!(out["alice_drain_buttons"], 0, "no admin actions for alice");
    assert_eq!(out["token_in_page"], false);
    assert_eq!(out["token_in_url"], false);
    assert_eq!(out["token_in_session_storage"], true);
    assert_eq!(out["token_in_local_storage"], false);
    assert_eq!(
        out["other_tab_signed_in"], false,
        "the token is for its tab"
    );
    assert_eq!(out["storage_after_sign_out"], 0);
    assert_eq!(out["root_sees"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(out["root_drain_buttons"], 2);
    for name in [
        "signin-1366x768",
        "alice-backends-1366x768",
        "root-sessions-1366x768",
    ] {
        let path = format!("{shots}/{name}.png");
        // The sign-in page is mostly empty: check its size only.
        if name.starts_with("signin") {
            assert!(Path::new(&path).exists(), "{path}");
        } else {
            assert_screenshot(&path, 1366, 768);
        }
    }
}

/// schemathesis (every check, every phase) against the live control plane with its generated
/// document: no 5xx, every status, content type and body as documented, invalid input refused,
/// and with authentication on, every protected operation refusing a request without it.
#[test]
fn the_control_plane_conforms_to_its_openapi_document() {
    let env = test_env();
    for auth in [false, true] {
        let yaml = predefined_config(&[&env.spark_a, &env.spark_b], "ROUND_ROBIN");
        let proxy = ProxyProcess::start(&if auth { with_tokens(&yaml) } else { yaml });
        let scratch = tempfile::tempdir().unwrap();
        let mut st = Command::new(&web_env().schemathesis);
        st.arg("run")
            .arg(format!("{}/control/openapi.json", proxy.control_url()))
            .args(["--checks", "all", "--max-examples", "40", "--seed", "15"])
            .env("NO_COLOR", "1")
            .current_dir(scratch.path());
        if auth {
            st.args(["--header", &format!("Authorization: Bearer {ROOT}")]);
        }
        let output = st.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis found problems (auth {auth}):\n{stdout}\n{}\n--- proxy log ---\n{}",
            String::from_utf8_lossy(&output.stderr),
            proxy.log_tail(40)
        );
        assert!(stdout.contains("13 selected / 13 total"), "{stdout}");
    }
}

/// One PySpark query with a `traceparent`: the proxy exports its calls' spans to an OTLP
/// receiver (sc-testkit's, on the official opentelemetry-proto definitions), under the client's
/// trace, with the session, the user, the backend, the status and the bytes; the query works.
#[test]
fn a_pyspark_query_is_traced_under_its_traceparent() {
    let otlp = OtlpReceiver::start("127.0.0.1:0".parse().unwrap());
    let yaml = format!(
        "{}telemetry:\n  otlp:\n    endpoint: {}\n",
        two_backends_config("ROUND_ROBIN"),
        otlp.endpoint()
    );
    let proxy = ProxyProcess::start(&yaml);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let out = result_json(&proxy.run_python(
        "traced_query.py",
        &[
            ("TRACEPARENT", &traceparent(trace_id, client_span)),
            ("REQUEST_ID", "pyspark-query-1"),
        ],
    ));
    assert_eq!(out["rows"], 10);
    let session = out["session_id"].as_str().unwrap().to_owned();
    let execute = "spark.connect.SparkConnectService/ExecutePlan";
    let spans = otlp.wait_for(Duration::from_secs(20), |spans| {
        spans
            .iter()
            .any(|s| s.name == execute && s.trace_id == trace_id)
            && spans
                .iter()
                .any(|s| s.name.ends_with("/ReleaseSession") && s.trace_id == trace_id)
    });
    let calls: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let query = calls
        .iter()
        .find(|s| s.name == execute)
        .unwrap_or_else(|| panic!("no ExecutePlan span in trace {trace_id}: {spans:#?}"));
    assert_eq!(query.parent_span_id, client_span, "under the client's span");
    assert_eq!(query.service_name.as_deref(), Some("spark-connect-proxy"));
    let backend = query.attr("spark_connect.backend").unwrap();
    assert!(
        backend == "backend-0" || backend == "backend-1",
        "{query:#?}"
    );
    for (key, value) in [
        ("rpc.method", "ExecutePlan"),
        ("spark_connect.session_id", session.as_str()),
        ("enduser.id", "tracy"),
        ("rpc.grpc.status_code", "0"),
        ("spark_connect.request_id", "pyspark-query-1"),
    ] {
        assert_eq!(query.attr(key), Some(value), "{key}: {query:#?}");
    }
    let bytes = |key: &str| query.attr(key).unwrap().parse::<u64>().unwrap();
    assert!(bytes("spark_connect.bytes_to_backend") > 0);
    assert!(
        bytes("spark_connect.bytes_to_client") > 100,
        "Arrow results came back"
    );
    // Every call of the session is in the client's trace; the first one placed the session.
    let first = calls
        .iter()
        .find(|s| {
            calls
                .iter()
                .any(|c| c.name == "spark_connect.placement" && c.parent_span_id == s.span_id)
        })
        .unwrap_or_else(|| panic!("no call with a placement child: {calls:#?}"));
    assert_eq!(
        first.attr("spark_connect.session_id"),
        Some(session.as_str())
    );
    assert!(calls.iter().all(|s| s.trace_id == trace_id));
}
