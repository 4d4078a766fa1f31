//! End-to-end scenarios: real PySpark through the proxy binary to real Spark Connect servers.
//!
//! Run with `scripts/test.sh` (it starts the two Spark servers these tests share). Each test
//! starts its own proxy; the PySpark side of each scenario lives in `tests/python/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sc_e2e::{
    ProxyProcess, dead_endpoint, metric_sum, predefined_config, result_json, run_python, test_env,
    two_backends_config,
};

/// The flow the Go spark-connect-proxy documents, verbatim: POST a session, connect with its id
/// in `x-spark-connect-session-id`, `spark.range(10).collect()`.
#[test]
fn control_plane_flow_verbatim() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("flow_verbatim.py", &[]));
    assert_eq!(out["rows"], 10);

    let id = out["session_id"].as_str().unwrap();
    let (status, session) = proxy.get_json(&format!("/control/sessions/{id}"));
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["id"], id);
    assert_eq!(session["backend"], out["backend"]);
    assert!(
        proxy
            .sessions()
            .iter()
            .any(|s| s["id"] == id && s["kind"] == "control"),
        "GET /control/sessions does not list {id} as a control session: {:?}",
        proxy.sessions()
    );
    assert!(proxy.calls("ExecutePlan") >= 1.0);
}

/// `SparkSession.builder.remote("sc://host:port").getOrCreate()` without any control-plane
/// call works and shows up as a `bound` session.
#[test]
fn headerless_connection_is_bound() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("headerless.py", &[]));
    let port = out["served_by"].as_u64().unwrap();
    let env = test_env();
    let expected = if out["backend"] == "backend-0" {
        &env.spark_a
    } else {
        &env.spark_b
    };
    assert!(
        expected.ends_with(&format!(":{port}")),
        "{out}: backend and serving port disagree"
    );
}

/// Under ROUND_ROBIN two sessions land on different backends, proven by asking each Spark
/// server which port it serves on.
#[test]
fn round_robin_spreads_sessions_over_backends() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("round_robin.py", &[]));
    assert_eq!(out["bound"].as_array().unwrap().len(), 2);

    let (status, backends) = proxy.get_json("/control/backends");
    assert_eq!(status, 200, "{backends}");
    let ids: Vec<&str> = backends["backends"]
        .as_array()
        .unwrap_or_else(|| panic!("no `backends` array: {backends}"))
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, ["backend-0", "backend-1"], "{backends}");
    let env = test_env();
    assert_eq!(
        backends["backends"][0]["endpoint"],
        format!("http://{}", env.spark_a)
    );
    assert_eq!(
        backends["backends"][1]["endpoint"],
        format!("http://{}", env.spark_b)
    );
}

/// createDataFrame, show, filter, groupBy/agg, joins, window functions, SQL and toPandas give
/// the same results through the proxy as directly.
#[test]
fn dataframe_results_match_direct_spark() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("dataframe_parity.py", &[]));
    assert!(out["checked"].as_array().unwrap().len() >= 8, "{out}");
}

/// A result over 200 MB, with the servers cutting streams every 1 MiB: ReattachExecute flows
/// through the proxy and every row arrives.
#[test]
fn large_result_streams_with_reattach() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("large_result.py", &[]));
    assert_eq!(out["rows"], 2_000_000);
    assert!(out["nbytes"].as_u64().unwrap() >= 200_000_000, "{out}");

    let metrics = proxy.metrics();
    let reattaches = metric_sum(
        &metrics,
        "sc_proxy_calls_total",
        &[("method", "ReattachExecute")],
    );
    assert!(
        reattaches > 0.0,
        "no ReattachExecute calls in the proxy's metrics:\n{metrics}"
    );
    let to_client = metric_sum(
        &metrics,
        "sc_proxy_bytes_total",
        &[("direction", "to_client")],
    );
    assert!(
        to_client >= 200_000_000.0,
        "the proxy counted only {to_client} bytes to the client:\n{metrics}"
    );
}

/// `spark.addArtifacts(..., pyfile=True)` (client streaming) and `spark.interruptAll()` from
/// another thread work through the proxy.
#[test]
fn add_artifacts_and_interrupt_all() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("artifacts_interrupt.py", &[]));
    assert!(!out["interrupted"].as_array().unwrap().is_empty(), "{out}");
    assert!(proxy.calls("AddArtifacts") >= 1.0);
    assert!(proxy.calls("Interrupt") >= 1.0);
}

/// `spark.stop()` sends ReleaseSession through the proxy, which forgets the binding, and the
/// backend released the session too.
#[test]
fn stop_releases_session() {
    let env = test_env();
    let proxy = ProxyProcess::start(&predefined_config(&[&env.spark_a], "ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("stop_release.py", &[]));
    assert!(out["error"].as_str().unwrap().contains("SESSION_CLOSED"));
    // The scenario checked that the binding was gone before it reconnected with the same id
    // (which binds it afresh).
    assert!(
        proxy.calls("ReleaseSession") >= 1.0,
        "no ReleaseSession in the metrics:\n{}",
        proxy.metrics()
    );
}

/// A control-plane session deleted with DELETE, and an id the proxy never issued, get NOT_FOUND
/// in PySpark with a message that says how to create a session.
#[test]
fn deleted_and_unknown_sessions_fail_clearly() {
    let proxy = ProxyProcess::start(&two_backends_config("ROUND_ROBIN"));
    let out = result_json(&proxy.run_python("deleted_unknown.py", &[]));
    assert!(
        out["unknown"]
            .as_str()
            .unwrap()
            .contains("POST /control/sessions")
    );

    let (status, body) = proxy.get_json("/control/sessions/not-a-session");
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

/// With backend-1 on a dead port, its session gets FAILED_PRECONDITION (dead: its backend is
/// gone) naming `backend-1` and the endpoint, while a session on backend-0 keeps working.
#[test]
fn dead_backend_fails_clearly_without_disturbing_live_one() {
    let env = test_env();
    let dead = dead_endpoint();
    // Without probes, which would find backend-1 gone at once and place no session there.
    let mut yaml = predefined_config(&[&env.spark_a, &dead], "ROUND_ROBIN");
    yaml.push_str("router:\n  health:\n    interval: 0s\n");
    let proxy = ProxyProcess::start(&yaml);
    let out = result_json(&proxy.run_python("dead_backend.py", &[("SC_DEAD_ENDPOINT", &dead)]));
    assert!(out["error"].as_str().unwrap().contains("backend-1"));
    let (status, _) = proxy.control("GET", "/healthz", false);
    assert_eq!(status, 200, "the proxy is unhealthy after a backend failed");
}

/// The Go spark-connect-proxy's sample config, `load_policy.name` spelling and `server.tls`
/// block included, is accepted unchanged (only the `control` listen address is added so tests
/// can run side by side), and PySpark works through it.
#[test]
fn go_format_sample_config_is_accepted() {
    let env = test_env();
    let yaml = format!(
        r#"backend_provider:
  name: manual spark
  type: PREDEFINED
  spec:
    endpoints:
      - url: {spark_a}
log_level: debug
load_policy:
  name: ROUND_ROBIN
server:
  listen_addr: "localhost:@GRPC_PORT@"
  tls:
    enabled: false
    cert_file: "certs/server.crt"
    key_file: "certs/server.key"
"#,
        spark_a = env.spark_a
    );
    let proxy = ProxyProcess::start(&yaml);

    let (status, backends) = proxy.get_json("/control/backends");
    assert_eq!(status, 200, "{backends}");
    assert_eq!(backends["backends"][0]["id"], "backend-0", "{backends}");

    let (status, id) = proxy.control("POST", "/control/sessions", false);
    assert_eq!(status, 200, "{id}");
    let port = proxy.grpc_port().to_string();
    run_python(
        "from sc_e2e import *\n\
         import os\n\
         spark = new_spark(f\"sc://localhost:{os.environ['PORT']}/;x-spark-connect-session-id={os.environ['ID']}\")\n\
         assert spark.range(3).count() == 3\n\
         spark.stop()\n",
        &[
            ("PORT", &port),
            ("ID", id.trim()),
            ("SC_CONTROL_URL", &proxy.control_url()),
        ],
    );
}
