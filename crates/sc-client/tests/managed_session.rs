//! Managed proxy sessions through the real proxy binary (`SC_PROXY_BIN`) in front of a real
//! Spark Connect server (`SC_TEST_SPARK_A`): app names, typed info and metrics, closing both
//! sessions, scopes, the Spark session id equal to the proxy session id, the admin calls, a
//! custom CA for a TLS control plane, and the Kubeflow example.
//!
//! The proxies listen on ports from `SC_TEST_PROXY_PORTS` (a base; each test takes two ports
//! at its own offset) or, without it, on free ports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sc_client::functions::{col, sum};
use sc_client::{
    ControlPlaneClient, Error, ManagedSession, SessionOptions, SessionState, SparkSession,
};
use sc_e2e::{ProxyProcess, free_ports, predefined_config, test_env};
use support::eventually;

#[path = "../examples/kubeflow_sessions.rs"]
#[allow(dead_code, unreachable_pub)]
mod kubeflow;

/// Two ports for a proxy: from `SC_TEST_PROXY_PORTS` + `offset`, or free ones.
fn ports(offset: u16) -> (u16, u16) {
    match std::env::var("SC_TEST_PROXY_PORTS")
        .ok()
        .and_then(|b| b.parse::<u16>().ok())
    {
        Some(base) => (base + offset, base + offset + 1),
        None => {
            let [a, b] = free_ports::<2>();
            (a, b)
        }
    }
}

/// A proxy in front of the test Spark server, on the ports at `offset`.
fn proxy(offset: u16) -> ProxyProcess {
    let env = test_env();
    let (grpc, control) = ports(offset);
    ProxyProcess::start_on_ports(
        &predefined_config(&[&env.spark_a], "ROUND_ROBIN"),
        grpc,
        control,
    )
}

fn control(proxy: &ProxyProcess) -> ControlPlaneClient {
    ControlPlaneClient::builder(&proxy.control_url())
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn assert_gone(control: &ControlPlaneClient, id: &str) {
    let err = control.get_session(id).await.unwrap_err();
    assert_eq!(err.http_status(), Some(404), "{err}");
}

// The proxy harness uses a blocking HTTP client, which must not run inside the runtime: each
// test starts its proxy first, then its runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

#[test]
fn a_managed_session_owns_the_proxy_session_and_the_spark_session() {
    let proxy = proxy(0);
    block_on(async {
        let control = control(&proxy);
        let spark = control
            .create_spark_session(SessionOptions::new().app_name("quarterly report"))
            .await
            .unwrap();
        // One id for both: `control.get_session(spark.session_id())` finds the session.
        assert_eq!(spark.session_id(), spark.proxy_session_id());
        assert_eq!(spark.app_name(), Some("quarterly report"));
        let info = control.get_session(spark.session_id()).await.unwrap();
        assert_eq!(info.id, spark.session_id());
        assert_eq!(info.app_name.as_deref(), Some("quarterly report"));
        assert_eq!(info.kind.as_deref(), Some("control"));
        assert_eq!(info.state, SessionState::Idle);
        assert_eq!(info.backend.as_deref(), Some("backend-0"));
        assert!(info.created_at.is_some());
        assert!(
            control
                .list_sessions()
                .await
                .unwrap()
                .iter()
                .any(|s| s.id == info.id && s.app_name == info.app_name)
        );

        // Work, then the typed metrics the proxy counted.
        let df = spark.range(0, 10_000).agg([sum(col("id")).alias("s")]);
        assert_eq!(df.count().await.unwrap(), 1);
        spark
            .sql("select 1")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let err = spark.sql("select * from missing_table").await.unwrap_err();
        assert_eq!(err.error_class(), Some("TABLE_OR_VIEW_NOT_FOUND"));
        spark
            .add_artifacts([(
                "files/notes.txt".to_string(),
                bytes::Bytes::from_static(b"hi"),
            )])
            .await
            .unwrap();
        let m = eventually("the metrics of the calls", || async {
            let m = spark.metrics().await.unwrap();
            (m.queries_executed >= 3 && m.errors >= 1 && m.artifacts_uploaded >= 1).then_some(m)
        })
        .await;
        assert!(m.bytes_in > 0 && m.bytes_out > 0, "{m:?}");
        assert!(m.execution_time > Duration::ZERO, "{m:?}");
        assert!(m.last_activity.is_some(), "{m:?}");
        assert_eq!(m.active_operations, 0, "{m:?}");

        // A query that runs until interrupted makes the session busy, with one operation.
        let runner = spark.spark().clone();
        let long = tokio::spawn(async move {
            runner
                .range(0, i64::MAX)
                .agg([sum(col("id"))])
                .collect()
                .await
        });
        let busy = eventually("a busy session", || async {
            let info = spark.info().await.unwrap();
            (info.state == SessionState::Busy).then_some(info)
        })
        .await;
        assert!(busy.metrics.active_operations >= 1, "{busy:?}");
        assert!(busy.state.is_active());
        spark.interrupt_all().await.unwrap();
        assert!(long.await.unwrap().is_err(), "the interrupted query failed");

        // Closing ends both: the proxy session is deleted, the Spark session stopped.
        let id = spark.session_id().to_string();
        spark.close().await.unwrap();
        assert!(spark.is_closed());
        assert_gone(&control, &id).await;
        assert!(matches!(
            spark.range(0, 1).count().await,
            Err(Error::SessionStopped)
        ));
        spark.close().await.unwrap();
        assert!(matches!(
            spark.info().await.unwrap_err(),
            Error::ControlPlaneStatus { status: 404, .. }
        ));
    });
}

#[test]
fn scopes_and_stops_always_delete_the_proxy_session() {
    let proxy = proxy(2);
    block_on(async {
        let control = control(&proxy);

        // An early `?` inside the scope: the error comes back, the session is closed.
        let seen = Arc::new(Mutex::new(None::<String>));
        let seen_in = seen.clone();
        let result: sc_client::Result<i64> = control
            .with_session("scoped", |spark| async move {
                *seen_in.lock().unwrap() = Some(spark.session_id().to_string());
                let df = spark.sql("select * from no_such_table").await?;
                df.count().await
            })
            .await;
        let err = result.unwrap_err();
        assert_eq!(err.error_class(), Some("TABLE_OR_VIEW_NOT_FOUND"), "{err}");
        let id = seen.lock().unwrap().clone().unwrap();
        assert_gone(&control, &id).await;

        // Success: the value comes back, the session is closed.
        let (n, id) = control
            .with_session("scoped-ok", |spark| async move {
                let listed = spark.control().list_sessions().await?;
                assert!(listed.iter().any(|s| s.id == spark.session_id()));
                Ok((
                    spark.range(0, 42).count().await?,
                    spark.session_id().to_string(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(n, 42);
        assert_gone(&control, &id).await;

        // `stop` on the Spark session itself (or a clone of it) deletes the proxy session.
        let managed = control.create_spark_session("stopped").await.unwrap();
        let plain: SparkSession = managed.spark().clone();
        plain.range(0, 3).count().await.unwrap();
        plain.stop().await.unwrap();
        assert_gone(&control, managed.proxy_session_id()).await;
        managed.close().await.unwrap();

        // `stop` on the handle does both too.
        let managed = control
            .create_spark_session("stop on the handle")
            .await
            .unwrap();
        managed.stop().await.unwrap();
        assert_gone(&control, managed.proxy_session_id()).await;

        // A handle dropped without closing closes in the background.
        let dropped = control.create_spark_session("dropped").await.unwrap();
        let id = dropped.session_id().to_string();
        drop(dropped);
        eventually("the dropped session's deletion", || async {
            (control.get_session(&id).await.err()?.http_status() == Some(404)).then_some(())
        })
        .await;

        // Taking over a session created elsewhere: the same id, closed by the handle.
        let created = control
            .create_session_with(&SessionOptions::new().app_name("attached"))
            .await
            .unwrap();
        let attached: ManagedSession = control.attach(created.clone()).await.unwrap();
        assert_eq!(attached.session_id(), created.id);
        assert_eq!(attached.range(0, 5).count().await.unwrap(), 5);
        attached.close().await.unwrap();
        assert_gone(&control, &created.id).await;

        // A session whose proxy side is already gone still closes without an error.
        let managed = control
            .create_spark_session("deleted under it")
            .await
            .unwrap();
        control
            .close_session(managed.proxy_session_id())
            .await
            .unwrap();
        let closed = managed.close().await;
        assert!(
            closed.is_ok() || closed.as_ref().is_err_and(|e| e.grpc_code().is_some()),
            "only the release of the gone Spark session may fail: {closed:?}"
        );
    });
}

#[test]
fn admins_list_drain_and_undrain_backends() {
    let proxy = proxy(4);
    block_on(async {
        let control = control(&proxy);
        let backends = control.backends().await.unwrap();
        assert_eq!(backends.len(), 1);
        assert_eq!(backends[0].id, "backend-0");
        assert_eq!(backends[0].state, "active");
        assert_eq!(
            backends[0].provider, "e2e sparks",
            "the provider's configured name"
        );
        assert!(
            ["healthy", "unknown"].contains(&backends[0].health.as_str()),
            "{backends:?}"
        );

        let drained = control.drain_backend("backend-0").await.unwrap();
        assert_eq!(drained.state, "draining");
        let refused = control.create_spark_session("nowhere to go").await;
        assert!(
            refused.is_err(),
            "a session was placed on a draining backend"
        );
        let undrained = control.undrain_backend("backend-0").await.unwrap();
        assert_eq!(undrained.state, "active");
        let spark = control.create_spark_session("placed again").await.unwrap();
        spark.close().await.unwrap();

        // A predefined backend keeps no engine log: a 404 that says why.
        let err = control.backend_logs("backend-0", 50).await.unwrap_err();
        assert_eq!(err.http_status(), Some(404), "{err}");
        assert!(err.to_string().contains("logs"), "{err}");
        let err = control.drain_backend("no-such-backend").await.unwrap_err();
        assert_eq!(err.http_status(), Some(404), "{err}");
    });
}

#[test]
fn admins_create_sessions_for_other_users_and_users_only_for_themselves() {
    let env = test_env();
    let (grpc, control_port) = ports(10);
    let yaml = format!(
        "{}auth:\n  admin_group: admins\n  tokens:\n    - token: admin-token\n      user: ops\n      groups: [admins]\n    - token: alice-token\n      user: alice\n",
        predefined_config(&[&env.spark_a], "ROUND_ROBIN")
    );
    let proxy = ProxyProcess::start_on_ports(&yaml, grpc, control_port);
    block_on(async {
        let admin = control(&proxy).with_token("admin-token");
        let alice = control(&proxy).with_token("alice-token");

        // An admin creates (and uses) a session for bob.
        let for_bob = admin
            .create_spark_session(SessionOptions::new().app_name("for bob").user_id("bob"))
            .await
            .unwrap();
        assert_eq!(for_bob.created().user_id.as_deref(), Some("bob"));
        assert_eq!(for_bob.range(0, 9).count().await.unwrap(), 9);

        // Alice may not create one for bob, nor see bob's; her own is hers.
        let err = alice
            .create_session_with(&SessionOptions::new().user_id("bob"))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), Some(403), "{err}");
        let err = alice.get_session(for_bob.session_id()).await.unwrap_err();
        assert_eq!(err.http_status(), Some(403), "{err}");
        let own = alice.create_spark_session("alice's").await.unwrap();
        assert_eq!(own.created().user_id.as_deref(), Some("alice"));
        assert_eq!(own.range(0, 4).count().await.unwrap(), 4);
        assert!(
            alice
                .list_sessions()
                .await
                .unwrap()
                .iter()
                .all(|s| s.user_id.as_deref() == Some("alice"))
        );
        // Backends are for admins.
        let err = alice.drain_backend("backend-0").await.unwrap_err();
        assert_eq!(err.http_status(), Some(403), "{err}");
        assert_eq!(admin.backends().await.unwrap().len(), 1);

        let ids = [
            for_bob.session_id().to_string(),
            own.session_id().to_string(),
        ];
        for_bob.close().await.unwrap();
        own.close().await.unwrap();
        for id in ids {
            assert_gone(&admin, &id).await;
        }
    });
}

/// A proxy whose control plane and gRPC port serve TLS with a certificate of a made-up CA.
struct TlsProxy {
    child: Child,
    grpc: u16,
    control: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_custom_ca_reaches_a_tls_control_plane_and_grpc_port() {
    let env = test_env();
    let ca = sc_testkit::tls::TestCa::new("managed-session test CA");
    let (cert, key) = ca.leaf("localhost", &["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (cert_file, key_file) = (write("cert.pem", &cert), write("key.pem", &key));
    let ca_file = write("ca.pem", &ca.pem);
    let (grpc, control_port) = ports(6);
    let config = write(
        "proxy.yaml",
        &format!(
            "{}server:\n  listen_addr: 127.0.0.1:{grpc}\n  tls:\n    enabled: true\n    cert_file: {cert_file}\n    key_file: {key_file}\ncontrol:\n  listen_addr: 127.0.0.1:{control_port}\n  tls: true\nstore:\n  type: memory\n",
            predefined_config(&[&env.spark_a], "ROUND_ROBIN")
        ),
    );
    let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
    let child = Command::new(&env.proxy_bin)
        .args(["--config-file", &config])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let proxy = TlsProxy {
        child,
        grpc,
        control: control_port,
        _dir: dir,
    };
    block_on(async {
        let url = format!("https://localhost:{}", proxy.control);
        // Without the CA, the control plane's certificate is refused.
        let untrusting = ControlPlaneClient::builder(&url)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let control = ControlPlaneClient::builder(&url)
            .ca_certificate_file(&ca_file)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        eventually("the TLS control plane", || async {
            control.backends().await.ok()
        })
        .await;
        let err = untrusting.list_sessions().await.unwrap_err();
        assert!(
            matches!(err, Error::ControlPlane(_)),
            "an unknown CA was trusted: {err:?}"
        );

        // The session's gRPC connection (use_ssl=true, handed out by the control plane) trusts
        // the same CA.
        let spark = control.create_spark_session("over tls").await.unwrap();
        let handed_out = spark.created().connection_string.clone().unwrap();
        assert!(handed_out.contains("use_ssl=true"), "{handed_out}");
        assert!(
            handed_out.contains(&format!(":{}/", proxy.grpc)),
            "{handed_out}"
        );
        assert!(spark.connection().uses_tls());
        assert_eq!(spark.range(0, 7).count().await.unwrap(), 7);
        let id = spark.session_id().to_string();
        spark.close().await.unwrap();
        assert_gone(&control, &id).await;
    });
}

#[test]
fn the_kubeflow_example_runs_through_the_proxy() {
    let proxy = proxy(8);
    block_on(async {
        let control = control(&proxy);
        let report = kubeflow::run(&control).await.unwrap();
        assert_eq!(report.app_name.as_deref(), Some("sales-analysis"));
        // Laptops: 2 x 1200 + 1 x 1150; monitors: 5 x 250.
        assert_eq!(
            report.revenue_by_product,
            [
                ("laptop".to_string(), 3550.0),
                ("monitor".to_string(), 1250.0)
            ]
        );
        assert_eq!(report.running_total, [2400.0, 3650.0, 4800.0]);
        assert!(report.queries_executed >= 4, "{report:?}");
        assert_eq!(report.concurrent.len(), 2);
        assert_ne!(report.concurrent[0].0, report.concurrent[1].0);
        assert_eq!(
            (report.concurrent[0].1, report.concurrent[1].1),
            (1_000, 2_000)
        );
        assert!(report.left_open.is_empty(), "{report:?}");
        assert_gone(&control, &report.session_id).await;
    });
}
