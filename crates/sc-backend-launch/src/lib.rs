//! The LAUNCH backend provider: starts Spark Connect servers ("engines") on this host on demand,
//! shares them between sessions by a share level, and stops them when they go idle.
//!
//! ```yaml
//! backend_provider:
//!   name: local spark
//!   type: LAUNCH
//!   spec:
//!     share_level: USER          # CONNECTION | USER | GROUP | SERVER
//!     engine_idle_timeout: 10m   # stop an engine this long after its last session
//!     start_timeout: 180s
//!     max_engines: 8
//!     port_range: 15200-15299    # optional; default: any free port
//!     work_dir: .local/engines   # <work_dir>/<engine_id>/server.log
//!     # Spark's own server (the default) from spark_home, SPARK_HOME or a pip-installed pyspark:
//!     spark_home: /opt/spark     # optional
//!     spark_conf:
//!       spark.driver.memory: 2g
//!     # ...or any other Spark Connect server:
//!     # command: [sail, spark, server, --ip, "{host}", --port, "{port}"]
//! ```
//!
//! For every new session the router calls [`start`](BackendProvider::start); the provider
//! derives the session's key from the share level (the session, the user, the user's first
//! group, or one key for everyone) and returns the engine running for that key, or launches one.
//! Concurrent starts for one key launch one engine; a failed start leaves nothing behind, and the
//! next start for the key tries again.
//!
//! An engine is a child process in its own process group (so a Ctrl-C in the proxy's terminal
//! does not reach it), with its output appended to `<work_dir>/<engine_id>/server.log`. It is
//! ready when its port accepts connections and a Spark Connect `Config` call succeeds. Stopping
//! sends SIGTERM to the group, then SIGKILL after `stop_timeout`. An engine whose process exits
//! on its own is dropped from [`list`](BackendProvider::list) and reported
//! [`Unhealthy`](Health::Unhealthy).

#![forbid(unsafe_code)]

mod engine;
mod ports;
mod spark;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use sc_backend_api::{
    Backend, BackendId, BackendProvider, Health, ProviderError, Registry, Spec, StartRequest,
};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::engine::{Engine, Process};
use crate::ports::{Capacity, Reservation};
use crate::spark::SparkEnv;
pub use crate::spec::{LaunchSpec, PLACEHOLDERS, ShareLevel};

/// The provider type's name in configuration (`backend_provider.type`).
pub const TYPE: &str = "LAUNCH";

/// Registers the LAUNCH type with [`factory`].
pub fn register(registry: &mut Registry) {
    registry.register_provider(TYPE, factory);
}

/// Builds a LAUNCH provider from its configured name and spec (every field has a default).
pub fn factory(name: &str, spec: &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError> {
    Ok(Arc::new(LaunchProvider::new(name, spec.parse()?)?))
}

/// How often a starting engine is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(300);

/// The Spark configuration key of a Spark Connect server's pre-shared token.
const TOKEN_CONF: &str = "spark.connect.authenticate.token";

/// Per key: the engine serving it, behind a lock held while one is launched.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Engine>>>>;

/// A provider that launches Spark Connect servers on this host.
#[derive(Debug)]
pub struct LaunchProvider {
    name: String,
    spec: LaunchSpec,
    ports: Option<std::ops::RangeInclusive<u16>>,
    /// Spark, Python and Java, found at the first start that needs them.
    spark: OnceCell<SparkEnv>,
    /// The running engines.
    engines: DashMap<BackendId, Arc<Engine>>,
    /// One slot per share-level key.
    slots: DashMap<String, Slot>,
    capacity: Arc<Mutex<Capacity>>,
    next_id: AtomicU64,
}

impl LaunchProvider {
    /// Builds the provider, checking the spec's values (nothing is looked up or started yet;
    /// see [`check`](Self::check)). Errors name the bad key.
    pub fn new(name: impl Into<String>, spec: LaunchSpec) -> Result<Self, ProviderError> {
        spec.validate()?;
        let ports = spec.ports()?;
        Ok(LaunchProvider {
            name: name.into(),
            spec,
            ports,
            spark: OnceCell::new(),
            engines: DashMap::new(),
            slots: DashMap::new(),
            capacity: Arc::new(Mutex::new(Capacity::default())),
            next_id: AtomicU64::new(1),
        })
    }

    /// The spec the provider runs with.
    pub fn spec(&self) -> &LaunchSpec {
        &self.spec
    }

    /// Checks up front what the first start would otherwise find out: that Spark (and Java)
    /// can be found when the command needs them, that a custom command's program exists, and
    /// that the work directory can be created.
    pub async fn check(&self) -> Result<(), ProviderError> {
        if spark::needs_spark(&self.spec) {
            self.spark_env().await?;
        }
        if let Some(program) = self.spec.command.as_ref().and_then(|c| c.first())
            && !program.contains('{')
            && !spark::program_exists(program)
        {
            return Err(ProviderError::Config(format!(
                "backend_provider.spec.command[0] '{program}' is not an executable file or a program on PATH"
            )));
        }
        std::fs::create_dir_all(&self.spec.work_dir).map_err(|e| {
            ProviderError::Config(format!(
                "backend_provider.spec.work_dir {}: {e}",
                self.spec.work_dir.display()
            ))
        })?;
        Ok(())
    }

    async fn spark_env(&self) -> Result<&SparkEnv, ProviderError> {
        self.spark
            .get_or_try_init(|| spark::resolve(&self.spec))
            .await
    }

    /// Drops an engine from the table and gives back its port and slot; returns it if it was there.
    fn forget(&self, id: &BackendId) -> Option<Arc<Engine>> {
        let (_, engine) = self.engines.remove(id)?;
        engine.reservation.release();
        self.drop_slot_of(&engine);
        Some(engine)
    }

    /// Removes the key's slot when it holds nothing but `engine` and nobody is using it.
    fn drop_slot_of(&self, engine: &Engine) {
        self.slots.remove_if(&engine.key, |_, slot| {
            Arc::strong_count(slot) == 1
                && slot
                    .try_lock()
                    .map(|held| {
                        held.as_ref()
                            .is_none_or(|e| e.backend.id == engine.backend.id)
                    })
                    .unwrap_or(false)
        });
    }

    /// Forgets every engine whose process has exited, logging how it ended.
    fn reap(&self) {
        let exited: Vec<(BackendId, String)> = self
            .engines
            .iter()
            .filter_map(|e| {
                e.process
                    .exit_status()
                    .map(|status| (e.key().clone(), status.to_string()))
            })
            .collect();
        for (id, status) in exited {
            if let Some(engine) = self.forget(&id) {
                warn!(engine = %id, %status, log = %engine.log.display(), "engine exited on its own");
            }
        }
    }

    /// Launches one engine for `key` and waits until it answers.
    async fn launch(&self, key: &str) -> Result<Arc<Engine>, ProviderError> {
        let spark = if spark::needs_spark(&self.spec) {
            Some(self.spark_env().await?)
        } else {
            None
        };
        let reservation = Reservation::claim(
            &self.capacity,
            self.spec.max_engines,
            &self.spec.host,
            self.ports.as_ref(),
        )?;
        let port = reservation.port();
        let seq = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = BackendId::new(format!("engine-{seq}"));
        let dir = self.engine_dir(&id)?;
        let log = dir.join("server.log");

        let template = match &self.spec.command {
            Some(command) => command.clone(),
            None => spark::default_command(&self.spec.spark_conf),
        };
        let mut argv = spark::expand(
            &template,
            &spark::Vars {
                port,
                host: &self.spec.host,
                engine_id: id.as_str(),
                spark_home: spark.map(|s| s.spark_home.as_path()),
                work_dir: &dir,
            },
        );
        // The child runs in its own directory: a relative program path means the proxy's.
        if let Some(program) = argv.first_mut()
            && program.contains('/')
            && Path::new(program.as_str()).is_relative()
            && let Ok(absolute) = std::path::absolute(program.as_str())
        {
            *program = absolute.to_string_lossy().into_owned();
        }
        let env = self.child_env(spark);
        let endpoint = endpoint(&self.spec.host, port)?;
        let token = self.spec.spark_conf.get(TOKEN_CONF).cloned();

        let process = Process::spawn(&argv, &env, &dir, &log).map_err(|e| {
            ProviderError::StartFailed(format!(
                "cannot run '{}' for engine {id} (backend_provider.spec.command): {e}",
                argv.first().map(String::as_str).unwrap_or_default()
            ))
        })?;
        info!(engine = %id, key, port, pid = process.pid(), log = %log.display(), "engine starting");

        let started = Instant::now();
        let deadline = started + self.spec.start_timeout;
        let mut last_error = String::from("not probed yet");
        loop {
            if let Some(status) = process.exit_status() {
                return Err(ProviderError::StartFailed(format!(
                    "engine {id} exited during start-up ({status}); {}",
                    engine::tail_for_error(&log)
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                let stopped = process.terminate(Duration::from_secs(5)).await;
                return Err(ProviderError::StartFailed(format!(
                    "engine {id} did not answer Spark Connect calls on {endpoint} within {:?} (backend_provider.spec.start_timeout; last probe: {last_error}); it was {}; {}",
                    self.spec.start_timeout,
                    if stopped.is_ok() {
                        "killed"
                    } else {
                        "signalled but may still run"
                    },
                    engine::tail_for_error(&log)
                )));
            }
            let budget = (deadline - now).min(Duration::from_secs(20));
            match engine::probe(&endpoint, &self.spec.host, port, token.as_deref(), budget).await {
                Ok(()) => break,
                Err(e) => last_error = e,
            }
            tokio::time::sleep(
                PROBE_INTERVAL.min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        info!(engine = %id, key, port, elapsed = ?started.elapsed(), "engine ready");

        let mut backend = Backend::new(id, endpoint);
        if let Some(token) = token {
            backend = backend.with_auth_token(token);
        }
        Ok(Arc::new(Engine {
            backend,
            key: key.to_owned(),
            seq,
            log,
            dir,
            process,
            reservation,
        }))
    }

    /// Creates a fresh, absolute `<work_dir>/<engine_id>/` (with `tmp/`), emptying one left
    /// from an earlier run.
    fn engine_dir(&self, id: &BackendId) -> Result<PathBuf, ProviderError> {
        let failed = |e: std::io::Error, what: &Path| {
            ProviderError::StartFailed(format!(
                "cannot create the engine directory {} (backend_provider.spec.work_dir): {e}",
                what.display()
            ))
        };
        std::fs::create_dir_all(&self.spec.work_dir).map_err(|e| failed(e, &self.spec.work_dir))?;
        let root = std::fs::canonicalize(&self.spec.work_dir)
            .map_err(|e| failed(e, &self.spec.work_dir))?;
        let dir = root.join(id.as_str());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| failed(e, &dir))?;
        }
        std::fs::create_dir_all(dir.join("tmp")).map_err(|e| failed(e, &dir))?;
        Ok(dir)
    }

    /// The child's extra environment: where Spark, Python and Java are, and the address to use.
    fn child_env(&self, spark: Option<&SparkEnv>) -> Vec<(String, String)> {
        let mut env = vec![("SPARK_LOCAL_IP".to_owned(), self.spec.host.clone())];
        if let Some(spark) = spark {
            env.push((
                "SPARK_HOME".into(),
                spark.spark_home.to_string_lossy().into_owned(),
            ));
            env.push((
                "PYSPARK_PYTHON".into(),
                spark.python.to_string_lossy().into_owned(),
            ));
            if let Some(java_home) = &spark.java_home {
                env.push(("JAVA_HOME".into(), java_home.to_string_lossy().into_owned()));
            }
        }
        env
    }

    /// Stops one engine that is no longer in the table.
    async fn terminate(&self, engine: &Engine) -> Result<(), ProviderError> {
        let result = engine.process.terminate(self.spec.stop_timeout).await;
        remove_scratch(&engine.dir);
        match result {
            Ok(()) => {
                info!(engine = %engine.backend.id, "engine stopped");
                Ok(())
            }
            Err(reason) => Err(ProviderError::StopFailed {
                id: engine.backend.id.to_string(),
                reason,
            }),
        }
    }
}

/// `http://host:port`, with brackets around an IPv6 address.
fn endpoint(host: &str, port: u16) -> Result<http::Uri, ProviderError> {
    let text = if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    };
    text.parse().map_err(|e| {
        ProviderError::Config(format!(
            "backend_provider.spec.host '{host}' does not make a valid endpoint: {e}"
        ))
    })
}

/// Deletes an engine's scratch and warehouse, keeping its `server.log` for operators.
fn remove_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name() == "server.log" {
            continue;
        }
        let path = entry.path();
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(e) = result {
            warn!(path = %path.display(), error = %e, "cannot remove engine scratch");
        }
    }
}

/// Whether `id` is one this provider makes (`engine-<n>`), so it is safe as a path component.
fn is_engine_id(id: &str) -> bool {
    id.strip_prefix("engine-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[async_trait]
impl BackendProvider for LaunchProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn can_start(&self) -> bool {
        true
    }

    /// Placement is the provider's: every session goes to the engine of its share-level key.
    fn default_policy(&self) -> Option<&str> {
        Some("ON_DEMAND")
    }

    /// The running engines, oldest first.
    async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
        self.reap();
        let mut engines: Vec<Arc<Engine>> =
            self.engines.iter().map(|e| e.value().clone()).collect();
        engines.sort_by_key(|e| e.seq);
        Ok(engines.iter().map(|e| e.backend.clone()).collect())
    }

    async fn get(&self, id: &BackendId) -> Result<Option<Backend>, ProviderError> {
        self.reap();
        Ok(self.engines.get(id).map(|e| e.backend.clone()))
    }

    /// Returns the engine running for the session's share-level key, or launches one.
    async fn start(&self, request: &StartRequest) -> Result<Backend, ProviderError> {
        let key = self.spec.share_level.key(request);
        let slot: Slot = self.slots.entry(key.clone()).or_default().clone();
        let mut held = slot.lock().await;
        if let Some(engine) = held.as_ref() {
            if self.engines.contains_key(&engine.backend.id) && engine.is_running() {
                return Ok(engine.backend.clone());
            }
            if let Some(status) = engine.process.exit_status() {
                warn!(engine = %engine.backend.id, %status, "engine exited on its own; starting another");
            }
            let id = engine.backend.id.clone();
            *held = None;
            self.forget(&id);
        }
        let engine = self.launch(&key).await?;
        self.engines
            .insert(engine.backend.id.clone(), engine.clone());
        let backend = engine.backend.clone();
        *held = Some(engine);
        Ok(backend)
    }

    /// Stops an engine: SIGTERM to its process group, SIGKILL after `stop_timeout`.
    async fn stop(&self, id: &BackendId) -> Result<(), ProviderError> {
        let Some(engine) = self.engines.get(id).map(|e| e.value().clone()) else {
            return Err(ProviderError::NotFound(id.to_string()));
        };
        // Unbind the key first, so a start for it launches a new engine instead of this one.
        if let Some(slot) = self.slots.get(&engine.key).map(|s| s.value().clone()) {
            let mut held = slot.lock().await;
            if held.as_ref().is_some_and(|e| e.backend.id == *id) {
                *held = None;
            }
        }
        if self.forget(id).is_none() {
            // Another stop got there first.
            return Ok(());
        }
        self.terminate(&engine).await
    }

    fn idle_timeout(&self) -> Option<Duration> {
        Some(self.spec.engine_idle_timeout)
    }

    /// The tail of an engine's `server.log`; an engine that has exited keeps its log until its
    /// id is used again.
    async fn logs(&self, id: &BackendId, lines: usize) -> Result<Option<String>, ProviderError> {
        let path = match self.engines.get(id) {
            Some(engine) => engine.log.clone(),
            None if is_engine_id(id.as_str()) => {
                let path = self.spec.work_dir.join(id.as_str()).join("server.log");
                if !path.is_file() {
                    return Err(ProviderError::NotFound(id.to_string()));
                }
                path
            }
            None => return Err(ProviderError::NotFound(id.to_string())),
        };
        let text = tokio::task::spawn_blocking(move || engine::tail(&path, lines))
            .await
            .map_err(|e| ProviderError::Other(format!("reading the log of {id} failed: {e}")))?
            .map_err(|e| ProviderError::Other(format!("reading the log of {id} failed: {e}")))?;
        Ok(Some(text))
    }

    /// Stops every engine, concurrently.
    async fn shutdown(&self) {
        let ids: Vec<BackendId> = self.engines.iter().map(|e| e.key().clone()).collect();
        let stops = ids.iter().map(|id| async move {
            match self.stop(id).await {
                Ok(()) | Err(ProviderError::NotFound(_)) => {}
                Err(e) => warn!(engine = %id, error = %e, "engine did not stop"),
            }
        });
        futures_util::future::join_all(stops).await;
    }

    /// [`Unhealthy`](Health::Unhealthy) for an engine whose process has exited (or that this
    /// provider no longer runs); otherwise [`Unknown`](Health::Unknown), leaving it to the
    /// router's probes.
    async fn health(&self, backend: &Backend) -> Health {
        let running = self
            .engines
            .get(&backend.id)
            .map(|e| e.is_running())
            .unwrap_or(false);
        if running {
            Health::Unknown
        } else {
            self.reap();
            Health::Unhealthy
        }
    }
}
