//! Engines like a managed service, end to end (issue 14): real PySpark through the proxy binary,
//! whose LAUNCH provider starts real Spark Connect servers, on a real Spark standalone cluster
//! (started by `scripts/test.sh` with `scripts/spark-cluster.sh`), with profiles, a warm pool,
//! the Spark UI in headless Chromium, and engines that die (SIGKILL, out of memory, a crash loop).
//!
//! Each test has its own quarter of the engines' ports (15520-15599), so tests running side by
//! side never race for one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sc_e2e::{
    ProxyProcess, finish_scenario, metric_sum, result_json, spawn_scenario, step_done, test_env,
    wait_step,
};

const ALICE: &str = "alice-engines-token";
const BOB: &str = "bob-engines-token";
const ROOT: &str = "root-engines-token";

fn tokens() -> String {
    format!(
        "auth:\n  tokens:\n    - token: {ALICE}\n      user: alice\n    - token: {BOB}\n      user: bob\n    - token: {ROOT}\n      user: root\n      groups: [admins]\n  admin_group: admins\n"
    )
}

fn token_env() -> Vec<(String, String)> {
    vec![
        ("SC_TOKEN_ALICE".into(), ALICE.into()),
        ("SC_TOKEN_BOB".into(), BOB.into()),
    ]
}

/// A LAUNCH provider section: engines on `master` on ports `ports`, then `extra` spec lines
/// (each indented by four spaces).
fn launch(master: &str, ports: &str, extra: &str) -> String {
    let env = test_env();
    format!(
        "backend_provider:\n  type: LAUNCH\n  spec:\n    master: \"{master}\"\n    port_range: {ports}\n    work_dir: @DIR@/engines\n    python: {}\n    start_timeout: 300s\n{extra}log_level: debug\n",
        env.python.display()
    )
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run with scripts/test.sh, which starts the Spark standalone cluster (scripts/spark-cluster.sh)")
    })
}

/// Executors on a real standalone cluster, and the engine's Spark UI in Chromium through the
/// proxy for its owner (403 for another user).
#[test]
fn engines_run_on_a_standalone_cluster_and_their_ui_opens_for_the_owner() {
    let master = var("SC_TEST_SPARK_MASTER");
    let master_ui = var("SC_TEST_SPARK_MASTER_UI");
    let mut yaml = launch(
        &master,
        "15520-15539",
        "    driver_memory: 1g\n    executor_memory: 512m\n    max_cores: 2\n",
    );
    yaml.push_str(&tokens());
    let proxy = ProxyProcess::start(&yaml);
    let shots = tempfile::tempdir().unwrap();
    let mut env = token_env();
    env.push(("SC_TEST_SPARK_MASTER_UI".into(), master_ui));
    env.push(("SC_TEST_PYTHON_TIMEOUT".into(), "600".into()));
    env.push((
        "SC_SCREENSHOT_DIR".into(),
        shots.path().to_string_lossy().into_owned(),
    ));
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = result_json(&proxy.run_python("engines_cluster_ui.py", &refs));
    eprintln!("standalone cluster and Spark UI: {out}");
    assert!(out["executors"].as_u64().unwrap() >= 1);
    // The denial is audited.
    let log = proxy.log();
    assert!(
        log.lines()
            .any(|l| l.contains("permission_denied") && l.contains("Spark UI")),
        "no audit line for Bob's refusal"
    );
    if let Ok(keep) = std::env::var("SC_KEEP_SCREENSHOTS") {
        for name in ["jobs.png", "stages.png"] {
            let _ = std::fs::copy(shots.path().join(name), format!("{keep}/{name}"));
        }
    }
}

/// Two profiles with different shuffle partitions, chosen by the control plane and by
/// connection-string metadata; forbidden and unknown profiles refused, naming the others.
#[test]
fn sessions_choose_engine_profiles() {
    let mut yaml = launch(
        "local[1]",
        "15540-15559",
        "    driver_memory: 768m\n    spark_conf:\n      spark.sql.shuffle.partitions: \"3\"\n    profiles:\n      wide:\n        spark_conf:\n          spark.sql.shuffle.partitions: \"7\"\n      restricted:\n        allowed_groups: [admins]\n",
    );
    yaml.push_str(&tokens());
    let proxy = ProxyProcess::start(&yaml);
    let env = token_env();
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = result_json(&proxy.run_python("engines_profiles.py", &refs));
    eprintln!("profiles: {out}");
}

/// A new user's first session with a warm engine against one that waits for a cold engine, in
/// the same run (both printed); the pool refills.
#[test]
fn a_warm_engine_serves_a_new_users_first_session_at_once() {
    let yaml = launch(
        "local[1]",
        "15560-15579",
        "    driver_memory: 768m\n    warm_engines: 1\n",
    );
    let proxy = ProxyProcess::start(&yaml);
    let out = result_json(&proxy.run_python("engines_warm.py", &[]));
    eprintln!(
        "warm pool: a new user's first session (create + first query) took {:.3} s with a warm engine and {:.3} s with a cold one",
        out["warm_s"].as_f64().unwrap(),
        out["cold_s"].as_f64().unwrap()
    );
}

/// The pid of a launched engine, from the proxy's `engine starting` log line.
fn engine_pid(proxy: &ProxyProcess, engine: &str) -> String {
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains("engine starting") && l.contains(&format!("engine={engine} ")))
        .unwrap_or_else(|| panic!("no start of {engine} in the proxy log"));
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("pid="))
        .unwrap_or_else(|| panic!("no pid in {line}"))
        .to_owned()
}

/// An engine killed with SIGKILL and one driven out of memory: their sessions turn dead with
/// the reason (JSON, PySpark's error, audit log, metric), the next session gets a new engine,
/// and the second failure (crash_loop.failures: 2) is a crash loop that stops relaunching.
#[test]
fn dead_engines_have_post_mortems_and_a_crash_loop_stops_relaunching() {
    let yaml = launch(
        "local[2]",
        "15580-15599",
        "    share_level: USER\n    driver_memory: 512m\n    crash_loop:\n      failures: 2\n      window: 1h\nrouter:\n  health:\n    interval: 2s\n",
    );
    let proxy = ProxyProcess::start(&yaml);
    // Two JVMs start one after the other: on a busy machine each may take a minute.
    let (sync, handle) = spawn_scenario(
        &proxy,
        "engines_post_mortem.py",
        vec![("SC_TEST_PYTHON_TIMEOUT".into(), "900".into())],
    );
    let patience = Duration::from_secs(600);
    wait_step(sync.path(), "kill:engine-1", &handle, patience);
    let pid = engine_pid(&proxy, "engine-1");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
    step_done(sync.path(), "killed:1", "1");
    let out = finish_scenario(&proxy, handle);
    eprintln!("post-mortems: {out}");
    let metrics = proxy.metrics();
    for (cause, n) in [("killed", 1.0), ("out_of_memory", 1.0)] {
        assert_eq!(
            metric_sum(
                &metrics,
                "sc_proxy_sessions_dead_total",
                &[("cause", cause)]
            ),
            n,
            "{cause}: {metrics}"
        );
    }
    let log = proxy.log();
    let audited: Vec<&str> = log.lines().filter(|l| l.contains("session_dead")).collect();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited.iter().any(|l| l.contains("OutOfMemoryError")));
}
