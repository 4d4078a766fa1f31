//! Sessions that live and die well, end to end: real PySpark, the proxy binary and real Spark
//! Connect servers. Engines launched on demand, a backend killed mid-query, idle expiry, a
//! proxy killed with SIGKILL, two replicas on one Redis, SIGHUP reloads, and backends that come
//! and go with DNS records.
//!
//! Run with `scripts/test.sh` (it starts the shared Spark servers and a Redis server, and
//! installs dnsmasq).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sc_e2e::{
    Dnsmasq, ProxyProcess, finish_scenario, free_ports, metric_sum, predefined_config, python_dir,
    result_json, spark_twin, spawn_scenario, step_done, test_env, wait_step,
};

fn repo() -> PathBuf {
    python_dir()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

/// A Spark Connect server of this test's own (one it may kill), started with the project's
/// script; stopped when dropped.
struct OwnSpark {
    name: String,
    port: u16,
}

impl OwnSpark {
    fn start(name: &str, port: u16) -> OwnSpark {
        let status = Command::new("bash")
            .arg(repo().join("scripts/spark-server.sh"))
            .args(["start", name, &port.to_string()])
            .env("SC_SPARK_DRIVER_MEMORY", "1g")
            .status()
            .unwrap();
        assert!(status.success(), "could not start Spark server {name}");
        OwnSpark {
            name: name.into(),
            port,
        }
    }

    fn kill_hard(&self) {
        let pid = std::fs::read_to_string(repo().join(format!(".local/spark/{}/pid", self.name)))
            .unwrap();
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn restart(&self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/spark-server.sh"))
            .args(["stop", &self.name])
            .status();
        let again = OwnSpark::start(&self.name, self.port);
        std::mem::forget(again);
    }
}

impl Drop for OwnSpark {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/spark-server.sh"))
            .args(["stop", &self.name])
            .status();
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn backends(proxy: &ProxyProcess) -> Vec<serde_json::Value> {
    let (status, body) = proxy.get_json("/control/backends");
    assert_eq!(status, 200, "{body}");
    body["backends"].as_array().cloned().unwrap_or_default()
}

/// With the LAUNCH provider (the default) the proxy starts a real Spark Connect server when the
/// first PySpark session arrives: one per user (USER share level), shared by one user's
/// sessions, each with its log on the control plane, and stopped after the engine idle timeout.
#[test]
fn engines_are_launched_per_user_and_stopped_when_idle() {
    let env = test_env();
    let proxy = ProxyProcess::start(&format!(
        "backend_provider:\n  type: LAUNCH\n  spec:\n    share_level: USER\n    engine_idle_timeout: 8s\n    work_dir: @DIR@/engines\n    python: {}\n    spark_conf:\n      spark.driver.memory: 1g\nlog_level: debug\n",
        env.python.display()
    ));
    assert!(
        backends(&proxy).is_empty(),
        "no engine before the first session"
    );
    let out = result_json(&proxy.run_python("launch_share_user.py", &[]));
    let launched = backends(&proxy);
    assert_eq!(launched.len(), 2, "{launched:?}");
    for b in &launched {
        assert_eq!(b["started_on_demand"], true, "{b}");
        let id = b["id"].as_str().unwrap();
        let (status, logs) = proxy.control(
            "GET",
            &format!("/control/backends/{id}/logs?lines=400"),
            false,
        );
        assert_eq!(status, 200, "{logs}");
        assert!(logs.contains("SparkConnect"), "{id}'s log: {logs}");
    }
    // Nobody uses them any more: both stop after the idle timeout.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !backends(&proxy).is_empty() {
        assert!(
            Instant::now() < deadline,
            "engines still up: {:?}",
            backends(&proxy)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for key in ["alice_1", "bob"] {
        let port = out[key].as_u64().unwrap();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", u16::try_from(port).unwrap())).is_err(),
            "the engine on port {port} still accepts connections"
        );
    }
    assert!(proxy.log().contains("stopping an engine nobody used"));
}

/// A backend killed mid-query: the client hears UNAVAILABLE naming it within a second, the
/// other backend's session carries on, the health flips and no new session goes there; once the
/// server is back, new sessions reach it and the old session is reported dead.
#[test]
fn a_backend_killed_mid_query_fails_fast_and_recovers() {
    let env = test_env();
    let [port] = free_ports::<1>();
    let own = OwnSpark::start("fault-kill", port);
    let mut yaml = predefined_config(
        &[&env.spark_a, &format!("127.0.0.1:{}", own.port)],
        "ROUND_ROBIN",
    );
    // Probes every second; a cold JVM may take a few seconds to answer one. A killed backend is
    // marked unhealthy at once by the first call that cannot reach it.
    yaml.push_str("router:\n  health:\n    interval: 1s\n    timeout: 5s\n    unhealthy_threshold: 2\n    healthy_threshold: 1\n");
    let proxy = ProxyProcess::start(&yaml);
    let (sync, handle) = spawn_scenario(&proxy, "fault_kill_backend.py", Vec::new());
    wait_step(
        sync.path(),
        "query_running",
        &handle,
        Duration::from_secs(120),
    );
    let killed_at = now_secs();
    own.kill_hard();
    step_done(sync.path(), "killed", &format!("{killed_at}"));
    wait_step(sync.path(), "checked", &handle, Duration::from_secs(60));
    own.restart();
    step_done(sync.path(), "restarted", "1");
    let out = finish_scenario(&proxy, handle);
    eprintln!("fault: {out}");
    assert!(out["delay"].as_f64().unwrap() < 1.0);
    let metrics = proxy.metrics();
    assert!(metric_sum(&metrics, "sc_proxy_sessions_closed_total", &[]) >= 0.0);
}

/// Issue 14's dead backend, with real PySpark: six sessions over two Spark Connect servers, one
/// SIGKILLed. The survivor's three sessions see no failure; each of the dead server's three gets
/// FAILED_PRECONDITION naming the backend on its next call (PySpark's default retry policy,
/// which retries UNAVAILABLE for minutes, is kept), well within a second; the times are printed.
#[test]
fn a_sigkilled_backend_fails_its_sessions_at_once_and_spares_the_survivor() {
    let env = test_env();
    let [port] = free_ports::<1>();
    let own = OwnSpark::start("dead-kill", port);
    let mut yaml = predefined_config(
        &[&env.spark_a, &format!("127.0.0.1:{}", own.port)],
        "ROUND_ROBIN",
    );
    // Default probes (every 10 s): the dead sessions must not wait for one.
    yaml.push_str("router:\n  health:\n    interval: 10s\n");
    let proxy = ProxyProcess::start(&yaml);
    let (sync, handle) = spawn_scenario(&proxy, "dead_backend_kill.py", Vec::new());
    wait_step(sync.path(), "ready", &handle, Duration::from_secs(180));
    let killed_at = now_secs();
    own.kill_hard();
    // The server is gone for good (a restart would be a new server with none of its sessions).
    step_done(sync.path(), "killed", &format!("{killed_at}"));
    let out = finish_scenario(&proxy, handle);
    eprintln!(
        "dead backend: time from a dead session's next call to its error: {} (worst {:.3} s)",
        out["dead_delays"],
        out["worst"].as_f64().unwrap()
    );
    assert_eq!(out["survivor_queries"], 6, "{out}");
    let metrics = proxy.metrics();
    assert_eq!(
        metric_sum(
            &metrics,
            "sc_proxy_sessions_dead_total",
            &[("cause", "unreachable")]
        ),
        3.0,
        "{metrics}"
    );
    let log = proxy.log();
    assert_eq!(
        log.lines().filter(|l| l.contains("session_dead")).count(),
        3,
        "one audit line per dead session"
    );
}

/// An idle session expires and is released on its backend; a session busy with a long query
/// does not, though the query outlasts the idle timeout twice.
#[test]
fn idle_sessions_expire_but_busy_ones_do_not() {
    let env = test_env();
    let mut yaml = predefined_config(&[&env.spark_a], "ROUND_ROBIN");
    yaml.push_str("router:\n  sessions:\n    idle_timeout: 4s\n    check_interval: 500ms\n");
    let proxy = ProxyProcess::start(&yaml);
    let output = proxy.run_python("idle_expiry.py", &[("SC_IDLE_TIMEOUT_S", "4")]);
    let out = result_json(&output);
    let idle_id = out["idle_id"].as_str().unwrap();
    let log = proxy.log();
    assert!(
        log.lines()
            .any(|l| l.contains("session released on backend") && l.contains(idle_id)),
        "no ReleaseSession for the expired session in the log"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("session_expire") && l.contains(idle_id)),
        "no audit line for the expiry"
    );
    assert_eq!(
        metric_sum(
            &proxy.metrics(),
            "sc_proxy_sessions_closed_total",
            &[("reason", "idle_timeout")]
        ),
        1.0
    );
}

/// The proxy is killed with SIGKILL and restarted: both kinds of sessions carry on in the same
/// PySpark objects, on the same backends, with their temporary views.
#[test]
fn sessions_survive_a_proxy_killed_with_sigkill() {
    let mut proxy = ProxyProcess::start(&sc_e2e::two_backends_config("ROUND_ROBIN"));
    let (sync, handle) = spawn_scenario(&proxy, "restart_survives.py", Vec::new());
    wait_step(sync.path(), "ready", &handle, Duration::from_secs(120));
    // Let the write-behind of the last activity pass (bindings are written before they serve).
    proxy.kill_and_restart();
    step_done(sync.path(), "restarted", "1");
    let out = finish_scenario(&proxy, handle);
    let (status, body) = proxy.get_json(&format!(
        "/control/sessions/{}",
        out["control_id"].as_str().unwrap()
    ));
    // A control-plane session lives until it is deleted (stopping a client releases only its
    // Spark session): it is still there, on its backend, after the restart.
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "idle", "{body}");
}

/// Two replicas on one Redis: a session created through A works through B, racing first
/// bindings agree, and B carries on when A is killed.
#[test]
fn two_replicas_share_sessions_through_redis() {
    let Ok(redis) = std::env::var("SC_TEST_REDIS_URL") else {
        panic!("SC_TEST_REDIS_URL is not set; run scripts/test.sh (it starts Redis)");
    };
    let prefix = format!("e2e-{}-{}:", std::process::id(), now_secs() as u64);
    let mut yaml = sc_e2e::two_backends_config("ROUND_ROBIN");
    yaml.push_str(&format!(
        "store:\n  type: redis\n  redis:\n    url: {redis}\n    key_prefix: \"{prefix}\"\n"
    ));
    let mut a = ProxyProcess::start(&yaml);
    let b = ProxyProcess::start(&yaml);
    let (sync, handle) =
        spawn_scenario(&a, "replicas.py", vec![("SC_REMOTE_B".into(), b.remote())]);
    wait_step(sync.path(), "ready", &handle, Duration::from_secs(180));
    a.kill();
    step_done(sync.path(), "a_killed", "1");
    let out = finish_scenario(&b, handle);
    // B lists the session A created.
    let id = out["control_id"].as_str().unwrap();
    let (status, body) = b.get_json(&format!("/control/sessions/{id}"));
    assert_eq!(status, 200, "{body}");
}

/// SIGHUP re-reads the configuration: a backend added to the file receives new sessions; a
/// backend removed through `POST /control/reload` drains.
#[test]
fn sighup_adds_a_backend_that_then_receives_sessions() {
    let env = test_env();
    let proxy = ProxyProcess::start(&predefined_config(&[&env.spark_a], "ROUND_ROBIN"));
    assert_eq!(backends(&proxy).len(), 1);
    let path = proxy.config_path().to_path_buf();
    let text = std::fs::read_to_string(&path).unwrap();
    let one = format!("      - url: {}\n", env.spark_a);
    let two = format!("{one}      - url: {}\n", env.spark_b);
    std::fs::write(&path, text.replacen(&one, &two, 1)).unwrap();
    proxy.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends(&proxy).len() < 2 {
        assert!(Instant::now() < deadline, "SIGHUP added no backend");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = result_json(&proxy.run_python(
        "import sc_e2e as e\n\
         seen = {e.create_session()['backend'] for _ in range(4)}\n\
         assert 'backend-1' in seen, seen\n\
         s = next(x for x in (e.create_session() for _ in range(4)) if x['backend'] == 'backend-1')\n\
         spark = e.new_spark(e.proxy_remote(s['id']))\n\
         port = e.backend_port(spark)\n\
         spark.stop()\n\
         e.finish(port=port)\n",
        &[],
    ));
    assert!(
        env.spark_b
            .ends_with(&format!(":{}", out["port"].as_u64().unwrap())),
        "{out}"
    );
    // And back: the removal goes through the control plane's reload.
    std::fs::write(&path, text).unwrap();
    let (status, report) = proxy.control("POST", "/control/reload", true);
    assert_eq!(status, 200, "{report}");
    assert!(report.contains("backend-1"), "{report}");
    let states: Vec<_> = backends(&proxy)
        .iter()
        .map(|b| b["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        states.iter().all(|s| s == "active" || s == "removed"),
        "{states:?}"
    );
}

/// `(id, state)` of every backend the proxy lists.
fn backend_states(proxy: &ProxyProcess) -> Vec<(String, String)> {
    backends(proxy)
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap_or_default().to_owned(),
                b["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Waits until `done` holds (polling every 100 ms), failing after `PATIENCE` with `what`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    const PATIENCE: Duration = Duration::from_secs(60);
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The DNS provider in the stock proxy, against a real DNS server (dnsmasq) and two real Spark
/// servers on one port at two loopback addresses, with real PySpark: a record added gives a
/// backend that new sessions reach; a record removed drains its backend while the session on
/// it carries on; with the DNS server stopped, the known backends keep serving, new sessions
/// are still placed, the proxy stays ready and the failure metric rises.
#[test]
fn backends_follow_dns_records_and_survive_a_dns_outage() {
    let env = test_env();
    let twin = spark_twin();
    let (first, port) = env.spark_a.rsplit_once(':').unwrap();
    let (second, twin_port) = twin.rsplit_once(':').unwrap();
    assert_eq!(
        port, twin_port,
        "SC_TEST_SPARK_A and SC_TEST_SPARK_TWIN must share a port"
    );
    assert_ne!(
        first, second,
        "SC_TEST_SPARK_A and SC_TEST_SPARK_TWIN must differ by address"
    );
    let id = |address: &str| format!("spark.test@{address}:{port}");
    let started = Instant::now();

    let mut dns = Dnsmasq::start(&format!("{first} spark.test"), &[]);
    let proxy = ProxyProcess::start(&format!(
        "backend_provider:\n  name: spark pods\n  type: DNS\n  spec:\n    name: spark.test\n    port: {port}\n    nameserver: {}\n    refresh_interval: 1s\n    timeout: 1s\nload_policy:\n  type: LEAST_SESSIONS\nlog_level: debug\n",
        dns.addr()
    ));
    assert_eq!(backend_states(&proxy), [(id(first), "active".to_owned())]);
    let (sync, handle) = spawn_scenario(
        &proxy,
        "dns_discovery.py",
        vec![
            ("SC_DNS_FIRST".into(), first.to_owned()),
            ("SC_DNS_SECOND".into(), second.to_owned()),
        ],
    );
    let patience = Duration::from_secs(120);

    // A second record: the proxy lists the second server and new sessions reach it.
    wait_step(sync.path(), "one", &handle, patience);
    dns.set_hosts(&format!("{first} spark.test\n{second} spark.test"));
    wait_until("the second record to become a backend", || {
        backend_states(&proxy)
            == [
                (id(first), "active".to_owned()),
                (id(second), "active".to_owned()),
            ]
    });
    step_done(sync.path(), "two", "1");

    // The first record removed: its backend drains (it keeps its session, takes no new one).
    wait_step(sync.path(), "placed", &handle, patience);
    dns.set_hosts(&format!("{second} spark.test"));
    wait_until("the first backend to drain", || {
        let states = backend_states(&proxy);
        states.contains(&(id(second), "active".to_owned()))
            && !states.contains(&(id(first), "active".to_owned()))
    });
    step_done(sync.path(), "first_removed", "1");

    // The DNS server stops: refreshes fail and are counted; the proxy stays ready.
    wait_step(sync.path(), "drained", &handle, patience);
    let failures = |proxy: &ProxyProcess| {
        metric_sum(
            &proxy.metrics(),
            "sc_proxy_provider_refresh_failures_total",
            &[],
        )
    };
    let before = failures(&proxy);
    dns.stop();
    wait_until("failed refreshes to be counted", || {
        failures(&proxy) >= before + 2.0
    });
    assert_eq!(proxy.control("GET", "/readyz", false).0, 200);
    let (_, body) = proxy.get_json("/control/backends");
    let provider = &body["providers"][0];
    assert!(
        provider["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer from the nameserver")),
        "{body}"
    );
    step_done(sync.path(), "dns_down", "1");

    let out = finish_scenario(&proxy, handle);
    assert_eq!(out["second"], second, "{out}");
    // Still down: still ready, the second server still listed, the failures still rising, and
    // one warning for the whole outage.
    assert_eq!(proxy.control("GET", "/readyz", false).0, 200);
    assert!(
        backend_states(&proxy).contains(&(id(second), "active".to_owned())),
        "{:?}",
        backend_states(&proxy)
    );
    let during = failures(&proxy);
    wait_until("failures to keep being counted", || {
        failures(&proxy) > during
    });
    let log = proxy.log();
    assert_eq!(
        log.matches("DNS resolution failed").count(),
        1,
        "one warning per outage, not one per refresh"
    );
    eprintln!("DNS discovery end to end: {:?}", started.elapsed());
}
