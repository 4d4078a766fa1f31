//! The LAUNCH provider against real child processes: the fake Spark Connect server in
//! `examples/fake-spark-connect.rs`, which `cargo test -p sc-backend-launch` builds with the tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sc_backend_api::{
    AuthMethod, BackendId, BackendProvider, DeathCause, Health, Identity, ProviderError,
    StartRequest,
};
use sc_backend_launch::{CrashLoopSpec, LaunchProvider, LaunchSpec, RestartPolicy, ShareLevel};

/// The fake server binary: `target/<profile>/examples/fake-spark-connect`, next to this test's
/// `target/<profile>/deps/` directory.
fn fake() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let fake = profile_dir.join("examples").join("fake-spark-connect");
    assert!(
        fake.is_file(),
        "{} is missing: run the tests with `cargo test -p sc-backend-launch` (which builds the examples) or `cargo build -p sc-backend-launch --example fake-spark-connect` first",
        fake.display()
    );
    fake
}

/// A shell command line that runs `script` with `{fake}` replaced by the fake server's path.
fn sh(script: &str) -> Vec<String> {
    let script = script.replace("{fake}", &fake().to_string_lossy());
    vec!["sh".into(), "-c".into(), script]
}

fn spec(work_dir: &Path, share_level: ShareLevel, command: Vec<String>) -> LaunchSpec {
    LaunchSpec {
        command: Some(command),
        share_level,
        work_dir: work_dir.to_path_buf(),
        start_timeout: Duration::from_secs(20),
        stop_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn fake_command() -> Vec<String> {
    sh("exec {fake} --port {port} --host {host} --name {engine_id}")
}

fn provider(share_level: ShareLevel) -> (LaunchProvider, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let p = LaunchProvider::new("launch", spec(dir.path(), share_level, fake_command())).unwrap();
    (p, dir)
}

fn req(user: &str, session: &str) -> StartRequest {
    StartRequest {
        user: Some(user.into()),
        session_id: Some(session.into()),
        identity: None,
        profile: None,
    }
}

fn port_of(backend: &sc_backend_api::Backend) -> u16 {
    backend.endpoint.port_u16().unwrap()
}

async fn answers(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

fn start_failed(result: Result<sc_backend_api::Backend, ProviderError>) -> String {
    match result {
        Err(ProviderError::StartFailed(msg)) => msg,
        other => panic!("expected StartFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn user_share_level_gives_each_user_one_engine() {
    let (p, _dir) = provider(ShareLevel::User);
    let a1 = p.start(&req("alice", "s1")).await.unwrap();
    let a2 = p.start(&req("alice", "s2")).await.unwrap();
    let b1 = p.start(&req("bob", "s3")).await.unwrap();
    assert_eq!(a1.id, a2.id);
    assert_ne!(a1.id, b1.id);
    assert_eq!(a1.endpoint.host(), Some("127.0.0.1"));
    assert!(a1.id.as_str().starts_with("engine-"));
    let ids: Vec<_> = p.list().await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(ids, [a1.id.clone(), b1.id.clone()]);
    assert_eq!(p.get(&b1.id).await.unwrap(), Some(b1.clone()));
    assert_eq!(p.health(&a1).await, Health::Unknown);
    assert_eq!(p.idle_timeout(), Some(Duration::from_secs(600)));
    p.shutdown().await;
}

#[tokio::test]
async fn connection_server_and_group_share_levels() {
    let (p, _dir) = provider(ShareLevel::Connection);
    let s1 = p.start(&req("alice", "s1")).await.unwrap();
    let s2 = p.start(&req("alice", "s2")).await.unwrap();
    assert_ne!(s1.id, s2.id);
    assert_eq!(p.start(&req("alice", "s1")).await.unwrap().id, s1.id);
    p.shutdown().await;

    let (p, _dir) = provider(ShareLevel::Server);
    let a = p.start(&req("alice", "s1")).await.unwrap();
    let b = p.start(&StartRequest::default()).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(p.list().await.unwrap().len(), 1);
    p.shutdown().await;

    let (p, _dir) = provider(ShareLevel::Group);
    let member = |user: &str, groups: &[&str]| StartRequest {
        user: Some(user.into()),
        session_id: None,
        identity: Some(Identity {
            user: user.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            method: AuthMethod::Jwt,
        }),
        profile: None,
    };
    let alice = p.start(&member("alice", &["eng"])).await.unwrap();
    let bob = p.start(&member("bob", &["eng", "ops"])).await.unwrap();
    let carol = p.start(&member("carol", &[])).await.unwrap();
    assert_eq!(alice.id, bob.id);
    assert_ne!(alice.id, carol.id);
    p.shutdown().await;
}

#[tokio::test]
async fn concurrent_starts_for_one_key_launch_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let launches = dir.path().join("launches");
    let command = sh(&format!(
        "echo {{engine_id}} >> {}; sleep 1; exec {{fake}} --port {{port}}",
        launches.display()
    ));
    let p = LaunchProvider::new("launch", spec(dir.path(), ShareLevel::User, command)).unwrap();
    let starts = (0..6).map(|i| {
        let p = &p;
        async move { p.start(&req("alice", &format!("s{i}"))).await }
    });
    let backends = futures_util::future::join_all(starts).await;
    let ids: Vec<BackendId> = backends.into_iter().map(|b| b.unwrap().id).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        std::fs::read_to_string(&launches).unwrap().lines().count(),
        1
    );
    assert_eq!(p.list().await.unwrap().len(), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn start_waits_until_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let command = sh("sleep 1; exec {fake} --port {port}");
    let p = LaunchProvider::new("launch", spec(dir.path(), ShareLevel::User, command)).unwrap();
    let started = Instant::now();
    let backend = p.start(&req("alice", "s1")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(answers(port_of(&backend)).await);
    p.shutdown().await;
}

#[tokio::test]
async fn a_command_that_exits_fails_with_its_log_and_the_key_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    // Fails the first time, works the second.
    let command = sh(
        "if [ -e ../flag ]; then exec {fake} --port {port}; fi; touch ../flag; echo boom on {port}; echo to stderr >&2; exit 3",
    );
    let p = LaunchProvider::new("launch", spec(dir.path(), ShareLevel::User, command)).unwrap();
    let started = Instant::now();
    let msg = start_failed(p.start(&req("alice", "s1")).await);
    assert!(started.elapsed() < Duration::from_secs(5), "not at once");
    assert!(msg.contains("could not start"), "{msg}");
    assert!(msg.contains("exited with status 3"), "{msg}");
    assert!(msg.contains("boom on"), "{msg}");
    assert!(msg.contains("to stderr"), "{msg}");
    assert!(p.list().await.unwrap().is_empty());
    let backend = p.start(&req("alice", "s2")).await.unwrap();
    assert!(answers(port_of(&backend)).await);
    p.shutdown().await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let command = sh("echo $$ > ../pid; echo waiting forever; exec sleep 60 # {port}");
    let mut spec = spec(dir.path(), ShareLevel::User, command);
    spec.start_timeout = Duration::from_secs(1);
    let p = LaunchProvider::new("launch", spec).unwrap();
    let started = Instant::now();
    let msg = start_failed(p.start(&req("alice", "s1")).await);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(msg.contains("backend_provider.spec.start_timeout"), "{msg}");
    assert!(msg.contains("killed"), "{msg}");
    assert!(msg.contains("waiting forever"), "{msg}");
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still exists"
    );
    assert!(p.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn stop_kills_the_engine_and_forgets_it() {
    let (p, dir) = provider(ShareLevel::User);
    let backend = p.start(&req("alice", "s1")).await.unwrap();
    let port = port_of(&backend);
    assert!(answers(port).await);
    p.stop(&backend.id).await.unwrap();
    assert!(!answers(port).await);
    assert!(p.list().await.unwrap().is_empty());
    assert_eq!(p.health(&backend).await, Health::Unhealthy);
    assert!(matches!(
        p.stop(&backend.id).await,
        Err(ProviderError::NotFound(_))
    ));
    // Scratch is gone, the log stays.
    let engine_dir = dir.path().join(backend.id.as_str());
    assert!(engine_dir.join("server.log").is_file());
    assert!(!engine_dir.join("tmp").exists());
    // The key gets a new engine.
    let again = p.start(&req("alice", "s2")).await.unwrap();
    assert_ne!(again.id, backend.id);
    p.shutdown().await;
}

#[tokio::test]
async fn stop_kills_an_engine_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // An ignored signal stays ignored across exec.
    let command = sh("trap '' TERM; exec {fake} --port {port}");
    let mut spec = spec(dir.path(), ShareLevel::User, command);
    spec.stop_timeout = Duration::from_millis(500);
    let p = LaunchProvider::new("launch", spec).unwrap();
    let backend = p.start(&req("alice", "s1")).await.unwrap();
    let started = Instant::now();
    p.stop(&backend.id).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(!answers(port_of(&backend)).await);
}

#[tokio::test]
async fn shutdown_stops_every_engine() {
    let (p, _dir) = provider(ShareLevel::Connection);
    let mut ports = Vec::new();
    for s in ["s1", "s2", "s3"] {
        ports.push(port_of(&p.start(&req("alice", s)).await.unwrap()));
    }
    assert_eq!(p.list().await.unwrap().len(), 3);
    p.shutdown().await;
    for port in ports {
        assert!(!answers(port).await, "port {port} still answers");
    }
    assert!(p.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn logs_return_the_tail_of_the_server_log() {
    let (p, _dir) = provider(ShareLevel::User);
    let backend = p.start(&req("alice", "s1")).await.unwrap();
    let log = p.logs(&backend.id, 1).await.unwrap().unwrap();
    assert!(log.contains("listening on"), "{log}");
    assert_eq!(log.lines().count(), 1);
    assert!(matches!(
        p.logs(&BackendId::new("engine-999"), 5).await,
        Err(ProviderError::NotFound(_))
    ));
    assert!(matches!(
        p.logs(&BackendId::new("../../etc"), 5).await,
        Err(ProviderError::NotFound(_))
    ));
    p.stop(&backend.id).await.unwrap();
    // A stopped engine's log is still there for operators.
    let log = p.logs(&backend.id, 10).await.unwrap().unwrap();
    assert!(log.contains("listening on"), "{log}");
}

#[tokio::test]
async fn an_engine_that_exits_is_dropped_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let command = sh("exec {fake} --port {port} --exit-after-ms 1500");
    let p = LaunchProvider::new("launch", spec(dir.path(), ShareLevel::User, command)).unwrap();
    let first = p.start(&req("alice", "s1")).await.unwrap();
    assert_eq!(p.list().await.unwrap().len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.health(&first).await != Health::Unhealthy {
        assert!(Instant::now() < deadline, "the engine did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(p.list().await.unwrap().is_empty());
    let second = p.start(&req("alice", "s2")).await.unwrap();
    assert_ne!(first.id, second.id);
    p.shutdown().await;
}

#[tokio::test]
async fn max_engines_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), ShareLevel::Connection, fake_command());
    spec.max_engines = 2;
    let p = LaunchProvider::new("launch", spec).unwrap();
    let first = p.start(&req("alice", "s1")).await.unwrap();
    p.start(&req("alice", "s2")).await.unwrap();
    let msg = start_failed(p.start(&req("alice", "s3")).await);
    assert!(msg.contains("backend_provider.spec.max_engines"), "{msg}");
    assert!(msg.contains('2'), "{msg}");
    // An existing key still gets its engine.
    assert_eq!(p.start(&req("alice", "s1")).await.unwrap().id, first.id);
    p.stop(&first.id).await.unwrap();
    p.start(&req("alice", "s3")).await.unwrap();
    p.shutdown().await;
}

#[tokio::test]
async fn port_range_is_used() {
    let dir = tempfile::tempdir().unwrap();
    // Find a free stretch of ports to use as the range.
    let base = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut spec = spec(dir.path(), ShareLevel::Connection, fake_command());
    spec.port_range = Some(format!("{base}-{}", base.saturating_add(50)));
    let p = LaunchProvider::new("launch", spec).unwrap();
    let a = port_of(&p.start(&req("alice", "s1")).await.unwrap());
    let b = port_of(&p.start(&req("alice", "s2")).await.unwrap());
    assert_ne!(a, b);
    for port in [a, b] {
        assert!((base..=base.saturating_add(50)).contains(&port), "{port}");
    }
    p.shutdown().await;
}

#[tokio::test]
async fn bad_configuration_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |spec: LaunchSpec| match LaunchProvider::new("launch", spec) {
        Err(ProviderError::Config(msg)) => msg,
        other => panic!("expected a config error, got {other:?}"),
    };
    let mut s = spec(dir.path(), ShareLevel::User, fake_command());
    s.port_range = Some("99999-1".into());
    assert!(bad(s).contains("backend_provider.spec.port_range"));
    let mut s = spec(dir.path(), ShareLevel::User, fake_command());
    s.max_engines = 0;
    assert!(bad(s).contains("backend_provider.spec.max_engines"));

    // check() finds a missing program before the first start.
    let s = spec(
        dir.path(),
        ShareLevel::User,
        vec!["/nonexistent/sail".into(), "--port".into(), "{port}".into()],
    );
    let p = LaunchProvider::new("launch", s).unwrap();
    let err = p.check().await.unwrap_err().to_string();
    assert!(err.contains("backend_provider.spec.command[0]"), "{err}");
    // ...and start says the same kind of thing.
    let msg = start_failed(p.start(&req("alice", "s1")).await);
    assert!(msg.contains("/nonexistent/sail"), "{msg}");
    assert!(p.list().await.unwrap().is_empty());

    // A Spark home that is not one.
    let s = LaunchSpec {
        spark_home: Some(dir.path().to_path_buf()),
        work_dir: dir.path().join("engines"),
        ..Default::default()
    };
    let p = LaunchProvider::new("launch", s).unwrap();
    let err = p.check().await.unwrap_err().to_string();
    assert!(err.contains("no bin/spark-submit"), "{err}");
    assert!(err.contains("pyspark[connect]>=4.0"), "{err}");
    let err = p.start(&req("alice", "s1")).await.unwrap_err().to_string();
    assert!(err.contains("no bin/spark-submit"), "{err}");

    // The fake command passes check().
    let p =
        LaunchProvider::new("launch", spec(dir.path(), ShareLevel::User, fake_command())).unwrap();
    p.check().await.unwrap();
}

/// Spark's own Spark Connect server through the default command (needs Java and pyspark >= 4.0,
/// e.g. from `scripts/setup-venv.sh`; takes a JVM start): run with `--ignored`.
#[tokio::test]
#[ignore = "starts a real Spark Connect server (JVM); run with --ignored"]
async fn real_spark_starts_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let spec = LaunchSpec {
        python: python.is_file().then_some(python),
        work_dir: dir.path().to_path_buf(),
        spark_conf: [("spark.driver.memory".to_owned(), "1g".to_owned())].into(),
        ..Default::default()
    };
    let p = LaunchProvider::new("launch", spec).unwrap();
    p.check().await.unwrap();
    let backend = p.start(&req("alice", "s1")).await.unwrap();
    assert!(answers(port_of(&backend)).await);
    let log = p.logs(&backend.id, 200).await.unwrap().unwrap();
    assert!(log.contains("Spark Connect server started"), "{log}");
    p.stop(&backend.id).await.unwrap();
    assert!(!answers(port_of(&backend)).await);
}

fn with_profile(user: &str, session: &str, profile: Option<&str>) -> StartRequest {
    StartRequest {
        profile: profile.map(str::to_owned),
        ..req(user, session)
    }
}

#[tokio::test]
async fn profiles_get_their_own_engines_and_settings() {
    use sc_backend_launch::ProfileSpec;
    let dir = tempfile::tempdir().unwrap();
    // {profile} and {master} reach the command line: the fake names itself after them.
    let command = sh("exec {fake} --port {port} --name {profile}-{master}-{engine_id}");
    let mut spec = spec(dir.path(), ShareLevel::User, command);
    spec.master = "local[1]".into();
    spec.profiles.insert(
        "large".into(),
        ProfileSpec {
            master: Some("local[2]".into()),
            engine_idle_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    );
    let p = LaunchProvider::new("launch", spec).unwrap();
    let mut names = p.profiles();
    names.sort();
    assert_eq!(
        names,
        ["default", "large"],
        "the default profile and spec.profiles"
    );
    let small = p.start(&with_profile("alice", "s1", None)).await.unwrap();
    let large = p
        .start(&with_profile("alice", "s2", Some("large")))
        .await
        .unwrap();
    let large_again = p
        .start(&with_profile("alice", "s3", Some("large")))
        .await
        .unwrap();
    assert_ne!(small.id, large.id, "one engine per (user, profile)");
    assert_eq!(large.id, large_again.id);
    let log = p.logs(&large.id, 5).await.unwrap().unwrap();
    assert!(log.contains("large-local[2]-engine-"), "{log}");
    let log = p.logs(&small.id, 5).await.unwrap().unwrap();
    assert!(log.contains("default-local[1]-engine-"), "{log}");
    assert_eq!(p.idle_timeout_for(&large.id), Some(Duration::from_secs(60)));
    assert_eq!(
        p.idle_timeout_for(&small.id),
        Some(Duration::from_secs(600))
    );
    // An unknown profile is refused before anything starts, naming the ones there are.
    let unknown = with_profile("alice", "s4", Some("huge"));
    let e = p.check_request(&unknown).unwrap_err().to_string();
    assert!(e.contains("'huge'") && e.contains("default, large"), "{e}");
    assert!(matches!(
        p.start(&unknown).await,
        Err(ProviderError::UnknownProfile { .. })
    ));
    assert_eq!(p.list().await.unwrap().len(), 2);
    p.shutdown().await;
}

#[tokio::test]
async fn a_dead_engine_has_a_post_mortem_and_its_key_gets_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    // The first engine crashes like a JVM out of memory; the ones after it do not.
    let command = sh(
        "if [ -e ../crashed ]; then echo $$ > ../pid; exec {fake} --port {port}; fi; touch ../crashed; {fake} --port {port} --exit-after-ms 800; echo 'Terminating due to java.lang.OutOfMemoryError: Java heap space'; exit 3",
    );
    let p = LaunchProvider::new("launch", spec(dir.path(), ShareLevel::User, command)).unwrap();
    let first = p.start(&req("alice", "s1")).await.unwrap();
    assert!(p.post_mortem(&first).await.is_none(), "it runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    let post_mortem = loop {
        if let Some(pm) = p.post_mortem(&first).await {
            break pm;
        }
        assert!(Instant::now() < deadline, "the engine did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(post_mortem.cause, DeathCause::OutOfMemory);
    assert!(
        post_mortem.reason.contains("exited with status 3")
            && post_mortem
                .reason
                .contains("java.lang.OutOfMemoryError: Java heap space"),
        "{}",
        post_mortem.reason
    );
    // Asked again (another session of it), the same answer.
    assert_eq!(p.post_mortem(&first).await, Some(post_mortem));
    let second = p.start(&req("alice", "s2")).await.unwrap();
    assert_ne!(first.id, second.id);

    // SIGKILL: the signal is named.
    let pid = std::fs::read_to_string(dir.path().join("pid")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let post_mortem = loop {
        if let Some(pm) = p.post_mortem(&second).await {
            break pm;
        }
        assert!(Instant::now() < deadline, "the engine did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(post_mortem.cause, DeathCause::Killed);
    assert!(
        post_mortem.reason.contains("killed by signal 9 (SIGKILL)"),
        "{}",
        post_mortem.reason
    );
    p.shutdown().await;
}

/// A provider running `script`, whose keys are in a crash loop after two failures.
fn crash_loop_of_two(dir: &Path, script: &str) -> LaunchProvider {
    let mut spec = spec(dir, ShareLevel::User, sh(script));
    spec.crash_loop = CrashLoopSpec {
        failures: 2,
        window: Duration::from_secs(600),
    };
    LaunchProvider::new("launch", spec).unwrap()
}

#[tokio::test]
async fn a_crash_loop_stops_relaunching_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = crash_loop_of_two(dir.path(), "echo 'Error: bad conf'; exit 1 # {port}");
    for s in ["s1", "s2"] {
        let msg = start_failed(p.start(&req("alice", s)).await);
        assert!(msg.contains("Error: bad conf"), "{msg}");
    }
    let e = p.start(&req("alice", "s3")).await.unwrap_err();
    let ProviderError::NotRestarting(msg) = &e else {
        panic!("expected NotRestarting, got {e:?}");
    };
    assert!(
        msg.contains("failed 2 times within 10m")
            && msg.contains("crash_loop")
            && msg.contains("Error: bad conf"),
        "{msg}"
    );
    // Another key is not affected.
    let msg = start_failed(p.start(&req("bob", "s4")).await);
    assert!(msg.contains("could not start"), "{msg}");

    // restart: never gives up after the first failure.
    let dir = tempfile::tempdir().unwrap();
    let mut never = self::spec(
        dir.path(),
        ShareLevel::User,
        sh("echo 'Error: bad conf'; exit 1 # {port}"),
    );
    never.restart = RestartPolicy::Never;
    let p = LaunchProvider::new("launch", never).unwrap();
    start_failed(p.start(&req("alice", "s1")).await);
    let e = p.start(&req("alice", "s2")).await.unwrap_err().to_string();
    assert!(e.contains("restart is never"), "{e}");
}

#[tokio::test]
async fn warm_engines_are_taken_at_once_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let launches = dir.path().join("launches");
    let command = sh(&format!(
        "echo {{engine_id}} >> {}; exec {{fake}} --port {{port}}",
        launches.display()
    ));
    let mut spec = spec(dir.path(), ShareLevel::User, command);
    spec.warm_engines = 1;
    spec.max_engines = 2;
    let p = LaunchProvider::new("launch", spec).unwrap();
    // The router lists the provider when it starts: the pool fills.
    assert!(
        p.list().await.unwrap().is_empty(),
        "warm engines are not listed"
    );
    wait_for("a warm engine", || p.warm_engines() == 1).await;
    let launched = || std::fs::read_to_string(&launches).unwrap_or_default();
    assert_eq!(launched().lines().collect::<Vec<_>>(), ["engine-1"]);

    // A new user's first session takes it: no launch waited for.
    let alice = p.start(&req("alice", "s1")).await.unwrap();
    assert_eq!(alice.id.as_str(), "engine-1");
    assert!(answers(port_of(&alice)).await);
    // A replacement starts in the background.
    wait_for("the pool refilled", || p.warm_engines() == 1).await;
    assert_eq!(launched().lines().count(), 2);
    // Warm engines count against max_engines: bob takes the second, and the pool cannot refill.
    let bob = p.start(&req("bob", "s2")).await.unwrap();
    assert_eq!(bob.id.as_str(), "engine-2");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.warm_engines(), 0);
    let msg = start_failed(p.start(&req("carol", "s3")).await);
    assert!(msg.contains("max_engines"), "{msg}");
    p.shutdown().await;
    assert!(!answers(port_of(&alice)).await && !answers(port_of(&bob)).await);
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn engines_that_die_after_starting_count_towards_the_crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    let p = crash_loop_of_two(dir.path(), "exec {fake} --port {port} --exit-after-ms 2000");
    for s in ["s1", "s2"] {
        let engine = p.start(&req("alice", s)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.post_mortem(&engine).await.is_none() {
            assert!(Instant::now() < deadline, "the engine did not end");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let e = p.start(&req("alice", "s3")).await.unwrap_err();
    assert!(matches!(e, ProviderError::NotRestarting(_)), "{e:?}");
    assert!(e.to_string().contains("exited with status 7"), "{e}");
}
