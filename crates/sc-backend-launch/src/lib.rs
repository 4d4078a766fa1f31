//! The LAUNCH backend provider: starts Spark Connect servers ("engines") on this host on demand,
//! with their executors on a cluster manager, shares them between sessions by a share level and
//! a profile, keeps some warm, and stops them when they go idle.
//!
//! ```yaml
//! backend_provider:
//!   name: local spark
//!   type: LAUNCH
//!   spec:
//!     share_level: USER          # CONNECTION | USER | GROUP | SERVER
//!     master: spark://10.0.0.2:7077   # local[2] (default), spark://, yarn, k8s://https://...
//!     driver_memory: 2g
//!     max_cores: 4               # spark.cores.max on a standalone cluster
//!     engine_idle_timeout: 10m   # stop an engine this long after its last session
//!     start_timeout: 180s
//!     max_engines: 8             # running and warm together
//!     warm_engines: 1            # kept started and unassigned for new users
//!     port_range: 15200-15299    # engine ports and their Spark UIs'
//!     work_dir: .local/engines   # <work_dir>/<engine_id>/server.log
//!     spark_conf:
//!       spark.sql.shuffle.partitions: "8"
//!     profiles:                  # sessions ask for one by name; the spec is `default`
//!       large:
//!         driver_memory: 8g
//!         spark_conf: {spark.sql.shuffle.partitions: "200"}
//!         allowed_groups: [analysts]
//!     restart: on_failure        # or never
//!     crash_loop: {failures: 3, window: 10m}
//!     # ...or any other Spark Connect server:
//!     # command: [sail, spark, server, --ip, "{host}", --port, "{port}"]
//! ```
//!
//! For every new session the router calls [`start`](BackendProvider::start); the provider
//! resolves the session's profile, derives its key from the profile and the share level (the
//! session, the user, the user's first group, or one key for everyone) and returns the engine
//! running for that key, or takes a warm one (starting its replacement in the background), or
//! launches one. Concurrent starts for one key launch one engine.
//!
//! An engine is a child process in its own process group (so a Ctrl-C in the proxy's terminal
//! does not reach it), with its output appended to `<work_dir>/<engine_id>/server.log`. It is
//! ready when its port accepts connections and a Spark Connect `Config` call succeeds. Stopping
//! sends SIGTERM to the group, then SIGKILL after `stop_timeout`. An engine whose process ends
//! on its own is dropped from [`list`](BackendProvider::list), and its
//! [`post_mortem`](BackendProvider::post_mortem) (exit status or signal and the first telling
//! line of its log) is what its sessions are told. The next session of its key gets a fresh
//! engine, unless the key's engines failed `crash_loop.failures` times within
//! `crash_loop.window` (or `restart: never`).

#![forbid(unsafe_code)]

mod engine;
mod ports;
mod profile;
mod spark;
mod spec;
mod warm;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use sc_backend_api::{
    Backend, BackendId, BackendProvider, Health, PostMortem, ProviderError, ProviderStatus,
    Registry, Spec, StartRequest,
};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::engine::{Engine, Process};
use crate::ports::{Capacity, Reservation};
use crate::profile::Template;
use crate::spark::SparkEnv;
pub use crate::spec::{
    CrashLoopSpec, DEFAULT_MASTER, DEFAULT_PROFILE, LaunchSpec, PLACEHOLDERS, ProfileSpec,
    RestartPolicy, ShareLevel,
};

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

/// Post-mortems kept for engines already forgotten (their sessions may ask later).
const GRAVEYARD: usize = 256;

/// Per key: the engine serving it, behind a lock held while one is launched.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Engine>>>>;

/// A provider that launches Spark Connect servers on this host.
#[derive(Debug)]
pub struct LaunchProvider {
    shared: Arc<Shared>,
}

/// The provider's state, shared with the tasks that keep its warm engines.
#[derive(Debug)]
struct Shared {
    name: String,
    spec: LaunchSpec,
    ports: Option<std::ops::RangeInclusive<u16>>,
    /// Every profile, resolved; `default` first.
    templates: Vec<Template>,
    /// Whether engines run a Spark UI the proxy reaches.
    ui: bool,
    /// Spark, Python and Java, found at the first start that needs them.
    spark: OnceCell<SparkEnv>,
    /// The running engines that serve a key.
    engines: DashMap<BackendId, Arc<Engine>>,
    /// One slot per key.
    slots: DashMap<String, Slot>,
    capacity: Arc<Mutex<Capacity>>,
    next_id: AtomicU64,
    /// Warm engines: ready and unassigned, and how many are starting, per profile.
    warm: warm::WarmPool,
    /// Post-mortems of engines that ended on their own, newest last.
    graveyard: Mutex<VecDeque<(BackendId, PostMortem)>>,
    /// Per key: when its engines failed lately, and the last reason.
    failures: Mutex<HashMap<String, (VecDeque<Instant>, String)>>,
    /// Set by `shutdown`: nothing new starts.
    shut: AtomicBool,
}

impl LaunchProvider {
    /// Builds the provider, checking the spec's values (nothing is looked up or started yet;
    /// see [`check`](Self::check)). Errors name the bad key.
    pub fn new(name: impl Into<String>, spec: LaunchSpec) -> Result<Self, ProviderError> {
        spec.validate()?;
        let ports = spec.ports()?;
        Ok(LaunchProvider {
            shared: Arc::new(Shared {
                name: name.into(),
                templates: profile::resolve(&spec),
                ui: spark::has_ui(&spec),
                spec,
                ports,
                spark: OnceCell::new(),
                engines: DashMap::new(),
                slots: DashMap::new(),
                capacity: Arc::new(Mutex::new(Capacity::default())),
                next_id: AtomicU64::new(1),
                warm: warm::WarmPool::default(),
                graveyard: Mutex::new(VecDeque::new()),
                failures: Mutex::new(HashMap::new()),
                shut: AtomicBool::new(false),
            }),
        })
    }

    /// The spec the provider runs with.
    pub fn spec(&self) -> &LaunchSpec {
        &self.shared.spec
    }

    /// Checks up front what the first start would otherwise find out: that Spark (and Java)
    /// can be found when the command needs them, that a custom command's program exists, and
    /// that the work directory can be created.
    pub async fn check(&self) -> Result<(), ProviderError> {
        let shared = &self.shared;
        if spark::needs_spark(&shared.spec) {
            shared.spark_env().await?;
        }
        if let Some(program) = shared.spec.command.as_ref().and_then(|c| c.first())
            && !program.contains('{')
            && !spark::program_exists(program)
        {
            return Err(ProviderError::Config(format!(
                "backend_provider.spec.command[0] '{program}' is not an executable file or a program on PATH"
            )));
        }
        std::fs::create_dir_all(&shared.spec.work_dir).map_err(|e| {
            ProviderError::Config(format!(
                "backend_provider.spec.work_dir {}: {e}",
                shared.spec.work_dir.display()
            ))
        })?;
        Ok(())
    }

    /// Warm engines ready now, over all profiles.
    pub fn warm_engines(&self) -> usize {
        self.shared.warm.ready()
    }
}

impl Shared {
    async fn spark_env(&self) -> Result<&SparkEnv, ProviderError> {
        self.spark
            .get_or_try_init(|| spark::resolve(&self.spec))
            .await
    }

    fn template(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name == name)
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

    /// Records why an engine that ended on its own is gone: kept for its sessions, counted as
    /// a failure of its key, logged.
    fn bury(&self, engine: &Engine, status: std::process::ExitStatus) -> PostMortem {
        let post_mortem = engine::post_mortem(engine.backend.id.as_str(), status, &engine.log);
        warn!(engine = %engine.backend.id, key = %engine.key, cause = post_mortem.cause.as_str(), reason = %post_mortem.reason, "engine ended on its own");
        self.record_failure(&engine.key, &post_mortem.reason);
        let mut graveyard = self.graveyard.lock().unwrap_or_else(|e| e.into_inner());
        graveyard.push_back((engine.backend.id.clone(), post_mortem.clone()));
        while graveyard.len() > GRAVEYARD {
            graveyard.pop_front();
        }
        post_mortem
    }

    /// Forgets every engine (serving or warm) whose process has ended, burying it.
    fn reap(&self) {
        let exited: Vec<(BackendId, std::process::ExitStatus)> = self
            .engines
            .iter()
            .filter_map(|e| {
                e.process
                    .exit_status()
                    .map(|status| (e.key().clone(), status))
            })
            .collect();
        for (id, status) in exited {
            if let Some(engine) = self.forget(&id) {
                self.bury(&engine, status);
            }
        }
        for (engine, status) in self.warm.reap() {
            engine.reservation.release();
            self.bury(&engine, status);
        }
    }

    /// The post-mortem of an engine whose process ended, if it did (burying it now if need be).
    fn post_mortem_of(&self, id: &BackendId) -> Option<PostMortem> {
        if let Some(engine) = self.engines.get(id).map(|e| e.value().clone()) {
            let status = engine.process.exit_status()?;
            // Whoever forgets it buries it, once.
            if self.forget(id).is_some() {
                return Some(self.bury(&engine, status));
            }
        }
        let graveyard = self.graveyard.lock().unwrap_or_else(|e| e.into_inner());
        graveyard
            .iter()
            .rev()
            .find(|(dead, _)| dead == id)
            .map(|(_, post_mortem)| post_mortem.clone())
    }

    fn record_failure(&self, key: &str, reason: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (times, last) = failures.entry(key.to_owned()).or_default();
        times.push_back(Instant::now());
        *last = reason.to_owned();
    }

    /// Whether a new engine may be launched for `key`: not when restarts are off and one
    /// failed, nor in a crash loop. The error says why and until when.
    fn may_launch(&self, key: &str) -> Result<(), ProviderError> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some((times, last)) = failures.get_mut(key) else {
            return Ok(());
        };
        let crash_loop = self.spec.crash_loop;
        let now = Instant::now();
        if self.spec.restart == RestartPolicy::Never && !times.is_empty() {
            return Err(ProviderError::NotRestarting(format!(
                "the engine for '{key}' failed and backend_provider.spec.restart is never: no other engine is started for it until the proxy is restarted or reloaded; it failed because: {last}"
            )));
        }
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= crash_loop.window)
        {
            times.pop_front();
        }
        if times.len() < crash_loop.failures as usize {
            return Ok(());
        }
        let again = times
            .front()
            .map(|t| crash_loop.window.saturating_sub(now.duration_since(*t)))
            .unwrap_or_default();
        Err(ProviderError::NotRestarting(format!(
            "the engines for '{key}' failed {} times within {} (backend_provider.spec.crash_loop): a crash loop, so no new engine is started for it for another {}; the last failure: {last}",
            times.len(),
            humantime::format_duration(crash_loop.window),
            humantime::format_duration(Duration::from_secs(again.as_secs() + 1)),
        )))
    }

    /// Launches one engine of `template` for `key` and waits until it answers.
    async fn launch(&self, key: &str, template: &Template) -> Result<Arc<Engine>, ProviderError> {
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
            self.ui,
        )?;
        let port = reservation.port();
        let seq = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = BackendId::new(format!("engine-{seq}"));
        let dir = self.engine_dir(&id)?;
        let log = dir.join("server.log");

        let command = match &self.spec.command {
            Some(command) => command.clone(),
            None => spark::default_command(&template.conf, self.ui),
        };
        let mut argv = spark::expand(
            &command,
            &spark::Vars {
                port,
                host: &self.spec.host,
                engine_id: id.as_str(),
                spark_home: spark.map(|s| s.spark_home.as_path()),
                work_dir: &dir,
                master: &template.master,
                ui_port: reservation.ui_port(),
                profile: &template.name,
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
        let token = template.conf.get(TOKEN_CONF).cloned();

        let process = Process::spawn(&argv, &env, &dir, &log).map_err(|e| {
            ProviderError::StartFailed(format!(
                "cannot run '{}' for engine {id} (backend_provider.spec.command): {e}",
                argv.first().map(String::as_str).unwrap_or_default()
            ))
        })?;
        info!(engine = %id, key, profile = %template.name, master = %template.master, port, ui_port = reservation.ui_port(), pid = process.pid(), log = %log.display(), "engine starting");

        let started = Instant::now();
        let deadline = started + self.spec.start_timeout;
        let mut last_error = String::from("not probed yet");
        loop {
            if let Some(status) = process.exit_status() {
                let post_mortem = engine::post_mortem(id.as_str(), status, &log);
                return Err(ProviderError::StartFailed(format!(
                    "engine {id} could not start: {}; {}",
                    post_mortem.reason,
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
            let warm_up = key.starts_with(warm::WARM_KEY_PREFIX);
            match engine::probe(
                &endpoint,
                &self.spec.host,
                port,
                token.as_deref(),
                budget,
                warm_up,
            )
            .await
            {
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
        if let Some(ui_port) = reservation.ui_port() {
            backend = backend.with_ui_url(self::endpoint(&self.spec.host, ui_port)?);
        }
        Ok(Arc::new(Engine {
            backend,
            key: key.to_owned(),
            profile: template.name.clone(),
            idle_timeout: template.idle_timeout,
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
        engine.reservation.release();
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

    /// Returns the engine serving the session's key, or gives it a warm one, or launches one.
    async fn start(self: &Arc<Self>, request: &StartRequest) -> Result<Backend, ProviderError> {
        if self.shut.load(Ordering::Relaxed) {
            return Err(ProviderError::StartFailed(
                "the proxy is shutting down".into(),
            ));
        }
        let template = profile::choose(&self.templates, request)?;
        let key = format!("{}|{}", template.name, self.spec.share_level.key(request));
        let slot: Slot = self.slots.entry(key.clone()).or_default().clone();
        let mut held = slot.lock().await;
        if let Some(engine) = held.as_ref() {
            if self.engines.contains_key(&engine.backend.id) && engine.is_running() {
                return Ok(engine.backend.clone());
            }
            let engine = engine.clone();
            *held = None;
            if let Some(status) = engine.process.exit_status()
                && self.forget(&engine.backend.id).is_some()
            {
                self.bury(&engine, status);
            }
        }
        self.may_launch(&key)?;
        let engine = match self.warm.take(&template.name) {
            Some(engine) => {
                let engine = engine.assign(&key);
                info!(engine = %engine.backend.id, key, "warm engine assigned");
                engine
            }
            None => match self.launch(&key, template).await {
                Ok(engine) => engine,
                Err(e) => {
                    if !matches!(e, ProviderError::Config(_)) {
                        self.record_failure(&key, &e.to_string());
                    }
                    return Err(e);
                }
            },
        };
        self.engines
            .insert(engine.backend.id.clone(), engine.clone());
        let backend = engine.backend.clone();
        *held = Some(engine);
        drop(held);
        warm::refill(self);
        Ok(backend)
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
        &self.shared.name
    }

    fn can_start(&self) -> bool {
        true
    }

    /// Placement is the provider's: every session goes to the engine of its key.
    fn default_policy(&self) -> Option<&str> {
        Some("ON_DEMAND")
    }

    /// Warm engines ready now, when any profile keeps some.
    fn status(&self) -> ProviderStatus {
        let status = ProviderStatus::default();
        if self.shared.templates.iter().any(|t| t.warm_engines > 0) {
            status.with_warm_backends(self.shared.warm.ready())
        } else {
            status
        }
    }

    /// The default profile and every one of `spec.profiles`.
    fn profiles(&self) -> Vec<String> {
        self.shared
            .templates
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    /// The profile must exist and be open to the caller.
    fn check_request(&self, request: &StartRequest) -> Result<(), ProviderError> {
        profile::choose(&self.shared.templates, request).map(|_| ())
    }

    /// The running engines that serve a key (warm ones are not listed), oldest first. The
    /// first call also starts filling the warm pool.
    async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
        let shared = &self.shared;
        shared.reap();
        warm::refill(shared);
        let mut engines: Vec<Arc<Engine>> =
            shared.engines.iter().map(|e| e.value().clone()).collect();
        engines.sort_by_key(|e| e.seq);
        Ok(engines.iter().map(|e| e.backend.clone()).collect())
    }

    async fn get(&self, id: &BackendId) -> Result<Option<Backend>, ProviderError> {
        self.shared.reap();
        Ok(self.shared.engines.get(id).map(|e| e.backend.clone()))
    }

    /// Returns the engine running for the session's key, or a warm one, or launches one.
    async fn start(&self, request: &StartRequest) -> Result<Backend, ProviderError> {
        self.shared.start(request).await
    }

    /// Stops an engine: SIGTERM to its process group, SIGKILL after `stop_timeout`.
    async fn stop(&self, id: &BackendId) -> Result<(), ProviderError> {
        let shared = &self.shared;
        let Some(engine) = shared.engines.get(id).map(|e| e.value().clone()) else {
            return Err(ProviderError::NotFound(id.to_string()));
        };
        // Unbind the key first, so a start for it launches a new engine instead of this one.
        if let Some(slot) = shared.slots.get(&engine.key).map(|s| s.value().clone()) {
            let mut held = slot.lock().await;
            if held.as_ref().is_some_and(|e| e.backend.id == *id) {
                *held = None;
            }
        }
        if shared.forget(id).is_none() {
            // Another stop got there first.
            return Ok(());
        }
        shared.terminate(&engine).await
    }

    fn idle_timeout(&self) -> Option<Duration> {
        Some(self.shared.spec.engine_idle_timeout)
    }

    /// The idle timeout of the engine's profile.
    fn idle_timeout_for(&self, id: &BackendId) -> Option<Duration> {
        let timeout = self.shared.engines.get(id).map(|e| e.idle_timeout);
        Some(timeout.unwrap_or(self.shared.spec.engine_idle_timeout))
    }

    /// How the engine's process ended (status or signal, and the first telling line of its
    /// log), once it has.
    async fn post_mortem(&self, backend: &Backend) -> Option<PostMortem> {
        self.shared.post_mortem_of(&backend.id)
    }

    /// The tail of an engine's `server.log`; an engine that has exited keeps its log until its
    /// id is used again.
    async fn logs(&self, id: &BackendId, lines: usize) -> Result<Option<String>, ProviderError> {
        let shared = &self.shared;
        let path = match shared.engines.get(id) {
            Some(engine) => engine.log.clone(),
            None if is_engine_id(id.as_str()) => {
                let path = shared.spec.work_dir.join(id.as_str()).join("server.log");
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

    /// Stops every engine, warm ones too, concurrently; nothing starts afterwards.
    async fn shutdown(&self) {
        let shared = &self.shared;
        shared.shut.store(true, Ordering::Relaxed);
        let ids: Vec<BackendId> = shared.engines.iter().map(|e| e.key().clone()).collect();
        let stops = ids.iter().map(|id| async move {
            match self.stop(id).await {
                Ok(()) | Err(ProviderError::NotFound(_)) => {}
                Err(e) => warn!(engine = %id, error = %e, "engine did not stop"),
            }
        });
        futures_util::future::join_all(stops).await;
        let warm = shared.warm.drain();
        let stops = warm.iter().map(|engine| async move {
            if let Err(e) = shared.terminate(engine).await {
                warn!(engine = %engine.backend.id, error = %e, "warm engine did not stop");
            }
        });
        futures_util::future::join_all(stops).await;
    }

    /// [`Unhealthy`](Health::Unhealthy) for an engine whose process has exited (or that this
    /// provider no longer runs); otherwise [`Unknown`](Health::Unknown), leaving it to the
    /// router's probes.
    async fn health(&self, backend: &Backend) -> Health {
        let running = self
            .shared
            .engines
            .get(&backend.id)
            .map(|e| e.is_running())
            .unwrap_or(false);
        if running {
            Health::Unknown
        } else {
            self.shared.reap();
            Health::Unhealthy
        }
    }
}
