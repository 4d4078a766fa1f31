//! Harness for the end-to-end tests: real Spark Connect servers, the proxy binary and real PySpark.
//!
//! `scripts/test.sh` starts Spark Connect servers from the pyspark wheel, builds the proxy
//! and exports these variables before it runs `cargo test`:
//!
//! | variable | what it is |
//! | --- | --- |
//! | `SC_TEST_SPARK_A`, `SC_TEST_SPARK_B` | `host:port` of the two Spark Connect servers |
//! | `SC_TEST_SPARK_TWIN` | a third on A's port at another loopback address (see [`spark_twin`]) |
//! | `SC_TEST_DNSMASQ` | the `dnsmasq` binary of [`Dnsmasq`] |
//! | `SC_TEST_PYTHON` | the virtualenv's `python`, with PySpark and `requests` |
//! | `SC_PROXY_BIN` | the `spark-connect-proxy` binary under test |
//! | `SC_CUSTOM_PROXY_BIN` | `custom-spark-connect-proxy` (`examples/custom-provider`), see [`custom_proxy_bin`] |
//! | `SC_TEST_WEB_PYTHON`, `SC_TEST_SCHEMATHESIS`, `SC_TEST_CHROMIUM` | the web virtualenv's `python` (Playwright) and `st` (schemathesis), and Debian's `chromium` (see [`web_env`]) |
//!
//! Each test starts its own [`ProxyProcess`] (on free ports, with its own config file and log)
//! and drives it with a PySpark scenario from `tests/python/` through [`run_python`] or
//! [`ProxyProcess::run_python`]. The Spark servers are shared by all tests.

// A test harness reports failure by panicking, with a message that says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod dnsmasq;
pub use dnsmasq::Dnsmasq;

/// How long [`ProxyProcess::start`] waits for `/readyz` to answer 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a Python scenario may run before it is killed (override with
/// `SC_TEST_PYTHON_TIMEOUT`, in seconds).
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(300);

/// Marker that starts the line a Python scenario prints its JSON summary on.
pub const RESULT_MARKER: &str = "RESULT ";

// === environment ===

/// Where the tests find the servers and programs they drive.
#[derive(Debug)]
pub struct TestEnv {
    /// `host:port` of the first Spark Connect server (`SC_TEST_SPARK_A`).
    pub spark_a: String,
    /// `host:port` of the second Spark Connect server (`SC_TEST_SPARK_B`).
    pub spark_b: String,
    /// Python interpreter with PySpark installed (`SC_TEST_PYTHON`).
    pub python: PathBuf,
    /// The proxy binary under test (`SC_PROXY_BIN`).
    pub proxy_bin: PathBuf,
}

/// Reads the test environment once; panics with instructions when it is incomplete.
pub fn test_env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let env = TestEnv {
            spark_a: required_var("SC_TEST_SPARK_A"),
            spark_b: required_var("SC_TEST_SPARK_B"),
            python: PathBuf::from(required_var("SC_TEST_PYTHON")),
            proxy_bin: PathBuf::from(required_var("SC_PROXY_BIN")),
        };
        assert!(
            env.python.exists(),
            "SC_TEST_PYTHON={} does not exist; run `scripts/setup-venv.sh` (scripts/test.sh does)",
            env.python.display()
        );
        assert!(
            env.proxy_bin.exists(),
            "SC_PROXY_BIN={} does not exist; run `cargo test --workspace --no-run` (scripts/test.sh does)",
            env.proxy_bin.display()
        );
        env
    })
}

/// `host:port` of the Spark Connect server on `SC_TEST_SPARK_A`'s port at another loopback
/// address (`SC_TEST_SPARK_TWIN`): with A, two servers that DNS records tell apart by address
/// alone.
pub fn spark_twin() -> String {
    required_var("SC_TEST_SPARK_TWIN")
}

fn required_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set. The end-to-end tests drive real Spark Connect servers, the proxy \
             binary and PySpark: run them with `scripts/test.sh` (it starts the servers and exports \
             SC_TEST_SPARK_A, SC_TEST_SPARK_B, SC_TEST_PYTHON and SC_PROXY_BIN), e.g. \
             `scripts/test.sh -p sc-e2e`"
        ),
    }
}

/// The custom proxy binary of `examples/custom-provider` (`SC_CUSTOM_PROXY_BIN`, which
/// `scripts/test.sh` points at `target/debug/custom-spark-connect-proxy`); panics with
/// instructions when it is not there.
pub fn custom_proxy_bin() -> PathBuf {
    let bin = PathBuf::from(required_var("SC_CUSTOM_PROXY_BIN"));
    assert!(
        bin.exists(),
        "SC_CUSTOM_PROXY_BIN={} does not exist; run `cargo test --workspace --no-run` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// What the browser and API tests drive (`scripts/setup-web.sh` installs them).
#[derive(Debug)]
pub struct WebEnv {
    /// Python with Playwright (`SC_TEST_WEB_PYTHON`).
    pub python: PathBuf,
    /// schemathesis' `st` (`SC_TEST_SCHEMATHESIS`).
    pub schemathesis: PathBuf,
    /// Debian's chromium (`SC_TEST_CHROMIUM`).
    pub chromium: PathBuf,
}

/// Reads the web test environment once; panics with instructions when it is incomplete.
pub fn web_env() -> &'static WebEnv {
    static ENV: OnceLock<WebEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let env = WebEnv {
            python: PathBuf::from(required_var("SC_TEST_WEB_PYTHON")),
            schemathesis: PathBuf::from(required_var("SC_TEST_SCHEMATHESIS")),
            chromium: PathBuf::from(required_var("SC_TEST_CHROMIUM")),
        };
        for path in [&env.python, &env.schemathesis, &env.chromium] {
            assert!(
                path.exists(),
                "{} does not exist; run `scripts/setup-web.sh` (scripts/test.sh does)",
                path.display()
            );
        }
        env
    })
}

/// The folder holding the Python scenarios (`tests/python/`).
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Returns `N` distinct TCP ports on 127.0.0.1 that were free a moment ago.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1"))
        .collect();
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .expect("local address of a listener")
            .port();
    }
    ports
}

/// An endpoint (`127.0.0.1:PORT`) on which nothing listens: connections are refused.
pub fn dead_endpoint() -> String {
    let [port] = free_ports::<1>();
    format!("127.0.0.1:{port}")
}

/// A proxy config in the Go spark-connect-proxy format: a PREDEFINED provider with `endpoints`
/// (as `host:port`) and the load policy `policy` (e.g. `ROUND_ROBIN`). [`ProxyProcess::start`]
/// adds the `server` and `control` listen addresses.
pub fn predefined_config(endpoints: &[&str], policy: &str) -> String {
    let mut yaml = String::from(
        "backend_provider:\n  name: e2e sparks\n  type: PREDEFINED\n  spec:\n    endpoints:\n",
    );
    for endpoint in endpoints {
        yaml.push_str(&format!("      - url: {endpoint}\n"));
    }
    yaml.push_str(&format!(
        "load_policy:\n  type: {policy}\nlog_level: debug\n"
    ));
    yaml
}

/// [`predefined_config`] over both test Spark servers (A is `backend-0`, B is `backend-1`).
pub fn two_backends_config(policy: &str) -> String {
    let env = test_env();
    predefined_config(&[&env.spark_a, &env.spark_b], policy)
}

// === impl ProxyProcess ===

/// A running proxy process (`spark-connect-proxy`, or another binary built on `sc_proxy::main`),
/// killed when dropped.
///
/// Its log (stdout and stderr, at `--log-level debug`) is printed when a test panics while the
/// process is alive, so a failing scenario shows what the proxy saw.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Option<Child>,
    /// The binary, and the environment it gets beyond the test's own.
    bin: PathBuf,
    env: Vec<(String, String)>,
    /// The bearer token the control-plane helpers send, if any.
    bearer: Option<String>,
    grpc_port: u16,
    control_port: u16,
    config_path: PathBuf,
    log_path: PathBuf,
    http: reqwest::blocking::Client,
    _dir: tempfile::TempDir,
}

impl ProxyProcess {
    /// Starts the proxy with `yaml` as its config file and waits until `/readyz` answers 200.
    ///
    /// The placeholders `@GRPC_PORT@` and `@CONTROL_PORT@` are replaced by free ports; when the
    /// config has no top-level `server` (or `control`) section, one listening on
    /// `127.0.0.1:<free port>` is appended.
    pub fn start(yaml: &str) -> Self {
        let [grpc_port, control_port] = free_ports::<2>();
        Self::start_on_ports(yaml, grpc_port, control_port)
    }

    /// [`start`](Self::start) on given ports (for a machine where each engineer or job has
    /// its own range).
    pub fn start_on_ports(yaml: &str, grpc_port: u16, control_port: u16) -> Self {
        Self::launch(&test_env().proxy_bin, yaml, &[], grpc_port, control_port)
    }

    /// [`ProxyProcess::start`] with another proxy binary (e.g. [`custom_proxy_bin`]) and
    /// variables added to its environment (they stay for [`ProxyProcess::kill_and_restart`]).
    pub fn start_binary(bin: &Path, yaml: &str, env: &[(&str, &str)]) -> Self {
        let [grpc_port, control_port] = free_ports::<2>();
        Self::launch(bin, yaml, env, grpc_port, control_port)
    }

    fn launch(
        bin: &Path,
        yaml: &str,
        env: &[(&str, &str)],
        grpc_port: u16,
        control_port: u16,
    ) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("sc-e2e-proxy-")
            .tempdir()
            .expect("create a temporary folder for the proxy");
        let config_path = dir.path().join("proxy.yaml");
        let log_path = dir.path().join("proxy.log");
        std::fs::write(
            &config_path,
            render_config(yaml, grpc_port, control_port, dir.path()),
        )
        .expect("write the proxy config");
        File::create(&log_path).expect("create the proxy log");
        let child = spawn_proxy(bin, &env, &config_path, &log_path);

        let mut proxy = ProxyProcess {
            child: Some(child),
            bin: bin.to_owned(),
            env,
            bearer: None,
            grpc_port,
            control_port,
            config_path,
            log_path,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("build an HTTP client"),
            _dir: dir,
        };
        proxy.wait_ready();
        proxy
    }

    /// Kills the proxy with SIGKILL (nothing is cleaned up or written out) and starts it again
    /// with the same configuration and ports, as a supervisor would; waits until it is ready.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.child = Some(spawn_proxy(
            &self.bin,
            &self.env,
            &self.config_path,
            &self.log_path,
        ));
        self.wait_ready();
    }

    /// Sends a signal (e.g. `"HUP"`) to the proxy process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("the proxy is running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Makes the control-plane helpers ([`ProxyProcess::control`] and those built on it) send
    /// `authorization: Bearer <token>`, for a proxy with authentication on.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// The path of the proxy's config file (tests may rewrite it, then send SIGHUP).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}/readyz", self.control_url());
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().expect("poll the proxy process")
            {
                self.child = None;
                panic!(
                    "the proxy exited during startup ({status}); config:\n{}\nlog tail:\n{}",
                    std::fs::read_to_string(&self.config_path).unwrap_or_default(),
                    self.log_tail(60)
                );
            }
            let last = match self.http.get(&url).timeout(Duration::from_secs(2)).send() {
                Ok(response) if response.status().as_u16() == 200 => return,
                Ok(response) => format!("HTTP {}", response.status()),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "the proxy was not ready after {READY_TIMEOUT:?} (GET {url}: {last}); log tail:\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port the proxy serves gRPC (Spark Connect) on.
    pub fn grpc_port(&self) -> u16 {
        self.grpc_port
    }

    /// The port of the proxy's HTTP control plane.
    pub fn control_port(&self) -> u16 {
        self.control_port
    }

    /// `http://127.0.0.1:<control port>`.
    pub fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_port)
    }

    /// The Spark Connect connection string of the proxy without parameters.
    pub fn remote(&self) -> String {
        format!("sc://127.0.0.1:{}", self.grpc_port)
    }

    /// Everything the proxy has logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The last `lines` lines of the proxy's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.log_path, lines)
    }

    /// Kills the proxy process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    // --- control plane ---

    /// Sends `method` to the control plane at `path` (with the bearer token of
    /// [`ProxyProcess::with_bearer`], if any) and returns the status and the body.
    pub fn control(&self, method: &str, path: &str, accept_json: bool) -> (u16, String) {
        self.control_as(self.bearer.as_deref(), method, path, accept_json)
    }

    /// [`ProxyProcess::control`] with `bearer` as the token (`None`: no `authorization`).
    pub fn control_as(
        &self,
        bearer: Option<&str>,
        method: &str,
        path: &str,
        accept_json: bool,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.control_url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.http.request(method.clone(), &url);
        if accept_json {
            request = request.header("accept", "application/json");
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().unwrap_or_else(|e| {
            panic!(
                "{method} {url}: {e}\nproxy log tail:\n{}",
                self.log_tail(40)
            )
        });
        let status = response.status().as_u16();
        let body = response.text().unwrap_or_default();
        (status, body)
    }

    /// `GET path` on the control plane, parsed as JSON; panics when the body is not JSON.
    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.control("GET", path, true);
        (status, parse_json(&body, path))
    }

    /// `POST /control/sessions` asking for JSON: the new session's object.
    pub fn create_session(&self) -> Value {
        let (status, body) = self.control("POST", "/control/sessions", true);
        assert_eq!(
            status, 200,
            "POST /control/sessions answered {status}: {body}"
        );
        parse_json(&body, "POST /control/sessions")
    }

    /// `GET /control/sessions`: the `sessions` array.
    pub fn sessions(&self) -> Vec<Value> {
        let (status, body) = self.get_json("/control/sessions");
        assert_eq!(
            status, 200,
            "GET /control/sessions answered {status}: {body}"
        );
        body.get("sessions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| panic!("GET /control/sessions has no `sessions` array: {body}"))
    }

    /// `GET /control/metrics`: the Prometheus text.
    pub fn metrics(&self) -> String {
        let (status, body) = self.control("GET", "/control/metrics", false);
        assert_eq!(
            status, 200,
            "GET /control/metrics answered {status}: {body}"
        );
        body
    }

    /// The sum of `sc_proxy_calls_total` for the gRPC method `method` (all codes and backends).
    pub fn calls(&self, method: &str) -> f64 {
        metric_sum(
            &self.metrics(),
            "sc_proxy_calls_total",
            &[("method", method)],
        )
    }

    // --- python ---

    /// The environment the Python scenarios read: `SC_GRPC_PORT`, `SC_CONTROL_PORT`,
    /// `SC_CONTROL_URL` and `SC_REMOTE` (the proxy's `sc://` string).
    pub fn python_env(&self) -> Vec<(String, String)> {
        vec![
            ("SC_GRPC_PORT".into(), self.grpc_port.to_string()),
            ("SC_CONTROL_PORT".into(), self.control_port.to_string()),
            ("SC_CONTROL_URL".into(), self.control_url()),
            ("SC_REMOTE".into(), self.remote()),
        ]
    }

    /// [`run_python`] with [`Self::python_env`] plus `extra`; prints the proxy's log tail on
    /// failure.
    pub fn run_python(&self, script: &str, extra: &[(&str, &str)]) -> Output {
        self.run_python_with(&test_env().python, script, extra)
    }

    /// [`Self::run_python`] with the web virtualenv's Python (Playwright, [`web_env`]);
    /// `SC_TEST_CHROMIUM` is passed on.
    pub fn run_web_python(&self, script: &str, extra: &[(&str, &str)]) -> Output {
        let web = web_env();
        let chromium = web.chromium.display().to_string();
        let mut env = vec![("SC_TEST_CHROMIUM", chromium.as_str())];
        env.extend_from_slice(extra);
        self.run_python_with(&web.python, script, &env)
    }

    fn run_python_with(&self, python: &Path, script: &str, extra: &[(&str, &str)]) -> Output {
        let mut env = self.python_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let output = python_output_with(python, script, &refs);
        if !output.status.success() {
            eprintln!("--- proxy log (tail) ---\n{}", self.log_tail(80));
        }
        assert_python_success(script, &output);
        output
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let was_running = self.is_running();
        // SIGTERM first, so the proxy stops the engines it launched; SIGKILL if it lingers.
        if was_running && let Some(child) = self.child.as_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(25);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.kill();
        if std::thread::panicking() && was_running {
            eprintln!(
                "--- proxy log ({}), last 80 lines ---\n{}",
                self.log_path.display(),
                self.log_tail(80)
            );
        }
    }
}

/// Starts the proxy binary with `env` added to its environment, its output appended to
/// `log_path`.
fn spawn_proxy(bin: &Path, env: &[(String, String)], config_path: &Path, log_path: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path)
        .expect("open the proxy log");
    Command::new(bin)
        .arg("--config-file")
        .arg(config_path)
        .arg("--log-level")
        .arg("debug")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log file handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
}

fn render_config(yaml: &str, grpc_port: u16, control_port: u16, dir: &Path) -> String {
    let mut text = yaml
        .replace("@GRPC_PORT@", &grpc_port.to_string())
        .replace("@CONTROL_PORT@", &control_port.to_string())
        .replace("@DIR@", &dir.display().to_string());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if !has_top_level_key(&text, "server") {
        text.push_str(&format!("server:\n  listen_addr: 127.0.0.1:{grpc_port}\n"));
    }
    if !has_top_level_key(&text, "control") {
        text.push_str(&format!(
            "control:\n  listen_addr: 127.0.0.1:{control_port}\n"
        ));
    }
    // The default store (an embedded database file), in this proxy's own folder: proxies of
    // tests running at once must not share one file.
    if !has_top_level_key(&text, "store") {
        text.push_str(&format!(
            "store:\n  type: embedded\n  path: {}\n",
            dir.join("sessions.redb").display()
        ));
    }
    text
}

fn has_top_level_key(yaml: &str, key: &str) -> bool {
    yaml.lines().any(|line| {
        line.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })
}

fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    // The last 64 KiB are plenty for a tail.
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn parse_json(body: &str, what: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {body}"))
}

// === scenarios with steps ===

/// Runs a Python scenario (a file in `tests/python/`) on a thread, so the test can act (kill, restart) while it waits at
/// its steps; returns the sync folder and the thread.
pub fn spawn_scenario(
    proxy: &ProxyProcess,
    script: &'static str,
    extra: Vec<(String, String)>,
) -> (
    tempfile::TempDir,
    std::thread::JoinHandle<std::process::Output>,
) {
    let sync = tempfile::tempdir().unwrap();
    let mut env = proxy.python_env();
    env.push((
        "SC_SYNC_DIR".into(),
        sync.path().to_string_lossy().into_owned(),
    ));
    env.extend(extra);
    let handle = std::thread::spawn(move || {
        let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        python_output(script, &refs)
    });
    (sync, handle)
}

/// Waits for the scenario to reach a step (or fail first).
pub fn wait_step(
    sync: &Path,
    name: &str,
    handle: &std::thread::JoinHandle<std::process::Output>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while !sync.join(name).exists() {
        if handle.is_finished() {
            // Its output is read from the files it left in `sync`'s sibling scratch folder by
            // the harness; the join happens in `finish_scenario`, so say where to look.
            panic!(
                "the scenario ended before step {name}; its output: {}",
                std::fs::read_to_string(sync.join("output")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the scenario never reached step {name}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Tells the scenario that step `name` is done (its `wait_step` returns `text`).
pub fn step_done(sync: &Path, name: &str, text: &str) {
    let tmp = sync.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, sync.join(name)).unwrap();
}

/// Waits for the scenario to end and returns its `RESULT` JSON; on failure, panics with its
/// output and the proxy's log tail.
pub fn finish_scenario(
    proxy: &ProxyProcess,
    handle: std::thread::JoinHandle<std::process::Output>,
) -> serde_json::Value {
    let output = handle.join().unwrap();
    if !output.status.success() {
        panic!(
            "scenario failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- proxy log ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            proxy.log_tail(80)
        );
    }
    result_json(&output)
}

// === TLS ===

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files
/// (`ca.pem`, `server.pem`, `server.key`) in a temporary folder. PySpark trusts the CA through
/// `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`.
#[derive(Debug)]
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// Makes the CA and the server certificate.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sc-e2e test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Certs { dir }
    }

    /// A file in the folder (`ca.pem`, `server.pem`, `server.key`, or one of the test's own).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for Certs {
    fn default() -> Self {
        Self::new()
    }
}

// === python ===

/// Runs a Python scenario with `$SC_TEST_PYTHON` and asserts it succeeded, printing its stdout
/// and stderr when it did not.
///
/// `script` is either the name of a file in `tests/python/` (e.g. `"flow_verbatim.py"`) or
/// inline code run with `-c`; `tests/python/` is on `PYTHONPATH` either way, so inline code can
/// import `sc_e2e`. `SC_TEST_SPARK_A` and `SC_TEST_SPARK_B` are passed on; `env` adds more.
pub fn run_python(script: &str, env: &[(&str, &str)]) -> Output {
    let output = python_output(script, env);
    assert_python_success(script, &output);
    output
}

/// Like [`run_python`] but returns the output whether or not the script succeeded.
pub fn python_output(script: &str, env: &[(&str, &str)]) -> Output {
    python_output_with(&test_env().python, script, env)
}

/// [`python_output`] with another interpreter (e.g. [`WebEnv::python`]).
pub fn python_output_with(python: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let test_env = test_env();
    let dir = python_dir();
    let scratch = tempfile::Builder::new()
        .prefix("sc-e2e-python-")
        .tempdir()
        .expect("create a temporary folder for Python");
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");

    let mut command = Command::new(python);
    if is_script_file(script) {
        let path = dir.join(script);
        assert!(path.exists(), "no Python scenario {}", path.display());
        command.arg(path);
    } else {
        command.arg("-c").arg(script);
    }
    command
        .current_dir(scratch.path())
        .env_remove("SPARK_REMOTE")
        .env_remove("SPARK_CONNECT_AUTHENTICATE_TOKEN")
        .env("PYTHONPATH", &dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(
            "PYTHONWARNINGS",
            "ignore::FutureWarning,ignore::DeprecationWarning",
        )
        .env("SC_TEST_SPARK_A", &test_env.spark_a)
        .env("SC_TEST_SPARK_B", &test_env.spark_b)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("create the stdout file"))
        .stderr(File::create(&stderr_path).expect("create the stderr file"));

    // A scenario's own SC_TEST_PYTHON_TIMEOUT (one that starts several JVMs) wins.
    let own = env
        .iter()
        .find(|(k, _)| *k == "SC_TEST_PYTHON_TIMEOUT")
        .map(|(_, v)| (*v).to_owned());
    let timeout = own
        .or_else(|| std::env::var("SC_TEST_PYTHON_TIMEOUT").ok())
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(PYTHON_TIMEOUT);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", python.display()));
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().expect("poll the Python process") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Python scenario {} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                short_name(script),
                std::fs::read_to_string(&stdout_path).unwrap_or_default(),
                tail_of_file(&stderr_path, 200)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read(&stderr_path).unwrap_or_default(),
    }
}

fn is_script_file(script: &str) -> bool {
    script.ends_with(".py") && !script.contains(['\n', ' ', ';'])
}

fn short_name(script: &str) -> &str {
    if is_script_file(script) {
        script
    } else {
        "(inline code)"
    }
}

fn assert_python_success(script: &str, output: &Output) {
    // Shown with `--nocapture` (or on a later failure of the same test).
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if line.starts_with(RESULT_MARKER) {
            eprintln!("{}: {line}", short_name(script));
        }
    }
    assert!(
        output.status.success(),
        "Python scenario {} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        short_name(script),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The JSON a scenario printed on its last `RESULT {...}` line.
pub fn result_json(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(RESULT_MARKER))
        .unwrap_or_else(|| panic!("the scenario printed no `{RESULT_MARKER}` line:\n{stdout}"));
    parse_json(line, "scenario result")
}

// === metrics ===

/// Sums the samples of metric `name` in Prometheus text whose labels include every pair in
/// `labels`. A label value also matches a value ending in `/<value>`, so `("method",
/// "ReattachExecute")` matches a full gRPC path too.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels.iter().all(|(key, want)| {
                sample
                    .labels
                    .iter()
                    .any(|(k, v)| k == key && (v == want || v.ends_with(&format!("/{want}"))))
            })
        })
        .map(|sample| sample.value)
        .sum()
}

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Label pairs in order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// Parses one sample line (`name{k="v",...} value [timestamp]`); `None` for anything else.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let space = line.find(char::is_whitespace)?;
            (&line[..space], Vec::new(), &line[space..])
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        chars.next()?; // '='
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_samples() {
        let text = "# HELP sc_proxy_calls Calls.\n# TYPE sc_proxy_calls counter\n\
            sc_proxy_calls_total{method=\"ReattachExecute\",code=\"OK\",backend=\"backend-0\"} 3\n\
            sc_proxy_calls_total{method=\"ReattachExecute\",code=\"OK\",backend=\"backend-1\"} 2\n\
            sc_proxy_calls_total{method=\"/spark.connect.SparkConnectService/ReattachExecute\",code=\"CANCELLED\",backend=\"backend-1\"} 1\n\
            sc_proxy_calls_total{method=\"ExecutePlan\",code=\"OK\",backend=\"backend-0\"} 7\n\
            sc_proxy_bytes_total{direction=\"to_client\",backend=\"a\\\"b\"} 1.5e3\n\
            up 1\n";
        assert_eq!(
            metric_sum(
                text,
                "sc_proxy_calls_total",
                &[("method", "ReattachExecute")]
            ),
            6.0
        );
        assert_eq!(
            metric_sum(
                text,
                "sc_proxy_calls_total",
                &[("method", "ReattachExecute"), ("backend", "backend-1")]
            ),
            3.0
        );
        assert_eq!(metric_sum(text, "sc_proxy_calls_total", &[]), 13.0);
        assert_eq!(
            metric_sum(text, "sc_proxy_bytes_total", &[("backend", "a\"b")]),
            1500.0
        );
        assert_eq!(metric_sum(text, "up", &[]), 1.0);
        assert_eq!(metric_sum(text, "missing", &[]), 0.0);
    }

    #[test]
    fn renders_listen_addresses() {
        let plain = render_config("log_level: info", 1, 2, Path::new("/tmp/x"));
        assert!(plain.contains("server:\n  listen_addr: 127.0.0.1:1\n"));
        assert!(plain.contains("control:\n  listen_addr: 127.0.0.1:2\n"));

        let placed = render_config(
            "server:\n  listen_addr: \"localhost:@GRPC_PORT@\"\n",
            5,
            6,
            Path::new("/tmp/x"),
        );
        assert!(placed.contains("listen_addr: \"localhost:5\""));
        assert!(!placed.contains("127.0.0.1:5"));
        assert!(placed.contains("control:\n  listen_addr: 127.0.0.1:6\n"));
    }

    #[test]
    fn tells_script_files_from_code() {
        assert!(is_script_file("flow_verbatim.py"));
        assert!(!is_script_file("import x; print('a.py')"));
        assert!(!is_script_file("print(1)\n"));
    }
}
