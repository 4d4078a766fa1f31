//! The `spec` of a LAUNCH provider: what to run, where, how many, and who shares an engine.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sc_backend_api::{ProviderError, StartRequest};
use serde::Deserialize;

/// The placeholders a [`LaunchSpec::command`] may use.
pub const PLACEHOLDERS: [&str; 8] = [
    "{port}",
    "{host}",
    "{engine_id}",
    "{spark_home}",
    "{work_dir}",
    "{master}",
    "{ui_port}",
    "{profile}",
];

/// The `spec` of a LAUNCH provider. Every field has a default, so an empty spec launches Spark's
/// own Spark Connect server (from `SPARK_HOME` or a pip-installed pyspark) per user.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LaunchSpec {
    /// The command that starts one engine, as an argv list. Every argument may contain the
    /// placeholders `{port}`, `{host}`, `{engine_id}`, `{spark_home}` and `{work_dir}` (the
    /// engine's own directory, absolute). For Sail:
    /// `["sail", "spark", "server", "--ip", "{host}", "--port", "{port}"]`.
    ///
    /// When absent, Spark's own Spark Connect server runs through `{spark_home}/bin/spark-submit`
    /// with `local[2]`, an in-memory catalog, and the engine's directory for scratch and
    /// warehouse, plus [`spark_conf`](Self::spark_conf).
    pub command: Option<Vec<String>>,
    /// The Spark installation for the default command (and `{spark_home}`). When absent:
    /// `$SPARK_HOME`, else the directory of the pyspark package that [`python`](Self::python)
    /// imports. It must hold `bin/spark-submit` and `jars/spark-connect_*.jar` (Spark >= 4.0).
    pub spark_home: Option<PathBuf>,
    /// The Python used to find pyspark and given to Spark as `PYSPARK_PYTHON`. When absent:
    /// `$VIRTUAL_ENV/bin/python`, else `.venv/bin/python` if it exists, else `python3`.
    pub python: Option<PathBuf>,
    /// Extra Spark configuration for the default command, passed as `--conf key=value`.
    /// When it sets `spark.connect.authenticate.token`, the proxy sends that token to the engine.
    pub spark_conf: BTreeMap<String, String>,
    /// The address engines listen on (and the proxy connects to).
    pub host: String,
    /// Ports to give engines, e.g. `"15200-15299"`. When absent the operating system picks a free
    /// port for each engine.
    pub port_range: Option<String>,
    /// Which sessions share one engine.
    pub share_level: ShareLevel,
    /// How long an engine may have no sessions before it is stopped.
    #[serde(with = "humantime_serde")]
    pub engine_idle_timeout: Duration,
    /// How long an engine may take to answer Spark Connect calls before its start fails.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// How long a stopping engine may take to exit after SIGTERM before it gets SIGKILL.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// The most engines running at once; starting one more fails.
    pub max_engines: usize,
    /// The directory under which each engine gets `<engine_id>/` with its `server.log` and
    /// scratch space (relative paths are relative to the proxy's working directory). It must not
    /// be shared by two proxies.
    pub work_dir: PathBuf,
    /// The cluster manager engines run their executors on, in client deploy mode (the engine,
    /// Spark's driver, stays on this host where the proxy reaches it): `local[N]`,
    /// `spark://host:port` (standalone), `yarn`, `k8s://https://host:port`. A `spark.master` in
    /// `spark_conf` is refused: this is the one place to say it.
    pub master: String,
    /// The engine's (driver's) memory, e.g. `2g` (`spark.driver.memory`).
    pub driver_memory: Option<String>,
    /// The engine's (driver's) cores (`spark.driver.cores`).
    pub driver_cores: Option<u32>,
    /// Memory of each executor, e.g. `2g` (`spark.executor.memory`).
    pub executor_memory: Option<String>,
    /// Cores of each executor (`spark.executor.cores`).
    pub executor_cores: Option<u32>,
    /// Executors to ask for (`spark.executor.instances`; YARN and Kubernetes).
    pub executor_instances: Option<u32>,
    /// The most cores an engine takes from a standalone cluster (`spark.cores.max`; without it
    /// the first engine takes them all).
    pub max_cores: Option<u32>,
    /// Whether engines run the Spark UI (on a port from `port_range`), which the control plane
    /// serves at `/control/backends/{id}/ui/` to admins and to the users with a session there.
    pub spark_ui: bool,
    /// Named engine templates a session may ask for (`POST /control/sessions {"profile": ...}`
    /// or `x-spark-connect-profile`); the spec itself is the `default` profile.
    pub profiles: BTreeMap<String, ProfileSpec>,
    /// Engines of the default profile kept started and unassigned, so a new user's first
    /// session takes one at once (a replacement starts in the background). They count against
    /// `max_engines`.
    pub warm_engines: usize,
    /// Whether the next session of a key whose engine failed (exited on its own, or could not
    /// start) may start a fresh one.
    pub restart: RestartPolicy,
    /// When a key's engines failed this often within `crash_loop.window`, no more are launched
    /// for it until the oldest failure leaves the window.
    pub crash_loop: CrashLoopSpec,
}

/// A named engine template (`backend_provider.spec.profiles.<name>`). What it leaves out is
/// the spec's; its `spark_conf` is merged over the spec's.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileSpec {
    /// What the profile is for, shown in errors that list profiles.
    pub description: Option<String>,
    /// The cluster manager (see [`LaunchSpec::master`]).
    pub master: Option<String>,
    /// Extra Spark configuration, merged over the spec's `spark_conf`.
    pub spark_conf: BTreeMap<String, String>,
    /// See [`LaunchSpec::driver_memory`].
    pub driver_memory: Option<String>,
    /// See [`LaunchSpec::driver_cores`].
    pub driver_cores: Option<u32>,
    /// See [`LaunchSpec::executor_memory`].
    pub executor_memory: Option<String>,
    /// See [`LaunchSpec::executor_cores`].
    pub executor_cores: Option<u32>,
    /// See [`LaunchSpec::executor_instances`].
    pub executor_instances: Option<u32>,
    /// See [`LaunchSpec::max_cores`].
    pub max_cores: Option<u32>,
    /// How long an engine of this profile may have no sessions before it is stopped.
    #[serde(with = "humantime_serde")]
    pub engine_idle_timeout: Option<Duration>,
    /// Only members of these groups (of an authenticated identity) may use the profile; empty:
    /// everyone.
    pub allowed_groups: Vec<String>,
    /// Engines of this profile kept warm (see [`LaunchSpec::warm_engines`]).
    pub warm_engines: usize,
}

/// `backend_provider.spec.restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// The next session of a failed engine's key starts a fresh engine (unless in a crash loop).
    #[default]
    OnFailure,
    /// A key whose engine failed gets no other engine until the proxy is restarted or reloaded.
    Never,
}

/// `backend_provider.spec.crash_loop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrashLoopSpec {
    /// Failures of one key's engines within `window` that stop relaunching.
    pub failures: u32,
    /// The window failures are counted in.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for CrashLoopSpec {
    fn default() -> Self {
        CrashLoopSpec {
            failures: 3,
            window: Duration::from_secs(600),
        }
    }
}

impl Default for LaunchSpec {
    fn default() -> Self {
        LaunchSpec {
            command: None,
            spark_home: None,
            python: None,
            spark_conf: BTreeMap::new(),
            host: "127.0.0.1".into(),
            port_range: None,
            share_level: ShareLevel::User,
            engine_idle_timeout: Duration::from_secs(600),
            start_timeout: Duration::from_secs(180),
            stop_timeout: Duration::from_secs(20),
            max_engines: 8,
            work_dir: PathBuf::from(".local/engines"),
            master: DEFAULT_MASTER.into(),
            driver_memory: None,
            driver_cores: None,
            executor_memory: None,
            executor_cores: None,
            executor_instances: None,
            max_cores: None,
            spark_ui: true,
            profiles: BTreeMap::new(),
            warm_engines: 0,
            restart: RestartPolicy::OnFailure,
            crash_loop: CrashLoopSpec::default(),
        }
    }
}

/// The master engines run with when the spec names none.
pub const DEFAULT_MASTER: &str = "local[2]";

/// The name of the profile the spec itself describes.
pub const DEFAULT_PROFILE: &str = "default";

/// Which sessions share one engine (Kyuubi's share levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ShareLevel {
    /// Every session gets its own engine.
    Connection,
    /// The sessions of one user share an engine.
    #[default]
    User,
    /// The sessions of one group (the caller's first group) share an engine.
    Group,
    /// All sessions share one engine.
    Server,
}

impl ShareLevel {
    /// The configuration spelling (`CONNECTION`, `USER`, `GROUP`, `SERVER`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShareLevel::Connection => "CONNECTION",
            ShareLevel::User => "USER",
            ShareLevel::Group => "GROUP",
            ShareLevel::Server => "SERVER",
        }
    }

    /// The engine key of a session: sessions with equal keys share an engine.
    pub(crate) fn key(self, request: &StartRequest) -> String {
        let user = || {
            request
                .user
                .clone()
                .or_else(|| request.identity.as_ref().map(|i| i.user.clone()))
                .unwrap_or_else(|| "anonymous".to_owned())
        };
        match self {
            ShareLevel::Connection => format!(
                "connection:{}",
                request
                    .session_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
            ),
            ShareLevel::User => format!("user:{}", user()),
            ShareLevel::Group => match request.identity.as_ref().and_then(|i| i.groups.first()) {
                Some(group) => format!("group:{group}"),
                None => format!("user:{}", user()),
            },
            ShareLevel::Server => "server".to_owned(),
        }
    }
}

impl fmt::Display for ShareLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShareLevel {
    type Err = String;

    /// Parses a share level, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CONNECTION" => Ok(ShareLevel::Connection),
            "USER" => Ok(ShareLevel::User),
            "GROUP" => Ok(ShareLevel::Group),
            "SERVER" => Ok(ShareLevel::Server),
            _ => Err(format!(
                "unknown share level '{s}': use CONNECTION, USER, GROUP or SERVER"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ShareLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl LaunchSpec {
    /// Checks the values without touching the file system; the error names the bad key
    /// (`backend_provider.spec.<key>`).
    pub fn validate(&self) -> Result<(), ProviderError> {
        let bad = |msg: String| Err(ProviderError::Config(msg));
        if let Some(command) = &self.command {
            match command.first() {
                None => {
                    return bad("backend_provider.spec.command is empty: give the program and its arguments, e.g. [\"sail\", \"spark\", \"server\", \"--port\", \"{port}\"], or remove the key to run Spark's own server".into());
                }
                Some(program) if program.trim().is_empty() => {
                    return bad("backend_provider.spec.command[0] is empty: it must name the program to run".into());
                }
                Some(_) => {}
            }
            if !command.iter().any(|arg| arg.contains("{port}")) {
                return bad("backend_provider.spec.command never uses {port}: the engine must listen on the port the provider picks".into());
            }
            if !self.spark_conf.is_empty() {
                return bad("backend_provider.spec.spark_conf applies only to the default Spark command; with a custom command, put the settings in backend_provider.spec.command".into());
            }
            for (name, profile) in &self.profiles {
                if !profile.spark_conf.is_empty() {
                    return bad(format!(
                        "backend_provider.spec.profiles.{name}.spark_conf applies only to the default Spark command; with a custom command, use {{master}} and {{profile}} in backend_provider.spec.command"
                    ));
                }
            }
        }
        if self.host.trim().is_empty() {
            return bad(
                "backend_provider.spec.host is empty: use an address to listen on, e.g. 127.0.0.1"
                    .into(),
            );
        }
        if self.host.contains(['/', ' ', '{', '}']) {
            return bad(format!(
                "backend_provider.spec.host '{}' is not a host name or IP address",
                self.host
            ));
        }
        self.ports()?;
        if self.max_engines == 0 {
            return bad("backend_provider.spec.max_engines must be at least 1".into());
        }
        if self.start_timeout.is_zero() {
            return bad(
                "backend_provider.spec.start_timeout must be greater than zero, e.g. 180s".into(),
            );
        }
        if self.work_dir.as_os_str().is_empty() {
            return bad("backend_provider.spec.work_dir is empty: use a directory for the engines' logs and scratch space, e.g. .local/engines".into());
        }
        crate::profile::check_level("backend_provider.spec", &self.level())?;
        for (name, profile) in &self.profiles {
            let key = format!("backend_provider.spec.profiles.{name}");
            if name == DEFAULT_PROFILE {
                return bad(format!(
                    "{key}: the name '{DEFAULT_PROFILE}' is the spec itself; give the profile another name"
                ));
            }
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return bad(format!(
                    "{key}: a profile name is 1 to 64 letters, digits, '-', '_' or '.'"
                ));
            }
            crate::profile::check_level(&key, &profile.level())?;
            if profile.engine_idle_timeout.is_some_and(|t| t.is_zero()) {
                return bad(format!(
                    "{key}.engine_idle_timeout must be greater than zero"
                ));
            }
        }
        let warm: usize = self.warm_engines
            + self
                .profiles
                .values()
                .map(|p| p.warm_engines)
                .sum::<usize>();
        if warm > self.max_engines {
            return bad(format!(
                "backend_provider.spec: {warm} warm engines (warm_engines, over all profiles) exceed max_engines ({}); warm engines count against it",
                self.max_engines
            ));
        }
        if self.crash_loop.failures == 0 || self.crash_loop.window.is_zero() {
            return bad("backend_provider.spec.crash_loop: failures and window must be greater than zero, e.g. {failures: 3, window: 10m}".into());
        }
        Ok(())
    }

    /// The spec's own engine settings, as a profile level.
    pub(crate) fn level(&self) -> crate::profile::Level<'_> {
        crate::profile::Level {
            master: Some(&self.master),
            spark_conf: &self.spark_conf,
            driver_memory: self.driver_memory.as_deref(),
            driver_cores: self.driver_cores,
            executor_memory: self.executor_memory.as_deref(),
            executor_cores: self.executor_cores,
            executor_instances: self.executor_instances,
            max_cores: self.max_cores,
        }
    }

    /// The port range, if one is configured.
    pub(crate) fn ports(&self) -> Result<Option<RangeInclusive<u16>>, ProviderError> {
        let Some(range) = &self.port_range else {
            return Ok(None);
        };
        parse_port_range(range).map(Some).map_err(|why| {
            ProviderError::Config(format!(
                "backend_provider.spec.port_range '{range}' {why}; write first-last, e.g. 15200-15299"
            ))
        })
    }
}

impl ProfileSpec {
    /// The profile's engine settings, as a level over the spec's.
    pub(crate) fn level(&self) -> crate::profile::Level<'_> {
        crate::profile::Level {
            master: self.master.as_deref(),
            spark_conf: &self.spark_conf,
            driver_memory: self.driver_memory.as_deref(),
            driver_cores: self.driver_cores,
            executor_memory: self.executor_memory.as_deref(),
            executor_cores: self.executor_cores,
            executor_instances: self.executor_instances,
            max_cores: self.max_cores,
        }
    }
}

/// Parses `first-last` (or a single port) into an inclusive range of non-zero ports.
fn parse_port_range(range: &str) -> Result<RangeInclusive<u16>, String> {
    let (first, last) = match range.split_once('-') {
        Some((first, last)) => (first.trim(), last.trim()),
        None => (range.trim(), range.trim()),
    };
    let port = |s: &str| -> Result<u16, String> {
        match s.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("has '{s}', which is not a port (1-65535)")),
            Ok(p) => Ok(p),
        }
    };
    let (first, last) = (port(first)?, port(last)?);
    if first > last {
        return Err("ends before it starts".into());
    }
    Ok(first..=last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sc_backend_api::{AuthMethod, Identity};

    use super::*;

    #[test]
    fn defaults_and_yaml_shaped_input() {
        let spec: LaunchSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec, LaunchSpec::default());
        assert_eq!(spec.share_level, ShareLevel::User);
        assert_eq!(spec.engine_idle_timeout, Duration::from_secs(600));
        assert_eq!(spec.start_timeout, Duration::from_secs(180));
        assert_eq!(spec.max_engines, 8);
        spec.validate().unwrap();

        let spec: LaunchSpec = serde_json::from_str(
            r#"{"share_level":"connection","engine_idle_timeout":"90s","start_timeout":"2m",
                "port_range":"15200-15299","spark_conf":{"spark.driver.memory":"2g"}}"#,
        )
        .unwrap();
        assert_eq!(spec.share_level, ShareLevel::Connection);
        assert_eq!(spec.engine_idle_timeout, Duration::from_secs(90));
        assert_eq!(spec.start_timeout, Duration::from_secs(120));
        assert_eq!(spec.ports().unwrap(), Some(15200..=15299));
    }

    #[test]
    fn rejects_unknown_keys_and_share_levels() {
        let err = serde_json::from_str::<LaunchSpec>(r#"{"max_engine":3}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_engine`"),
            "{err}"
        );
        let err = serde_json::from_str::<LaunchSpec>(r#"{"share_level":"TEAM"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("CONNECTION, USER, GROUP or SERVER"),
            "{err}"
        );
        assert_eq!("Server".parse::<ShareLevel>().unwrap(), ShareLevel::Server);
    }

    #[test]
    fn validation_names_the_key() {
        let cases: Vec<(LaunchSpec, &str)> = vec![
            (
                LaunchSpec {
                    port_range: Some("15300-15200".into()),
                    ..Default::default()
                },
                "port_range",
            ),
            (
                LaunchSpec {
                    port_range: Some("0-10".into()),
                    ..Default::default()
                },
                "port_range",
            ),
            (
                LaunchSpec {
                    port_range: Some("abc".into()),
                    ..Default::default()
                },
                "port_range",
            ),
            (
                LaunchSpec {
                    max_engines: 0,
                    ..Default::default()
                },
                "max_engines",
            ),
            (
                LaunchSpec {
                    start_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "start_timeout",
            ),
            (
                LaunchSpec {
                    command: Some(vec![]),
                    ..Default::default()
                },
                "command",
            ),
            (
                LaunchSpec {
                    command: Some(vec!["sail".into(), "spark".into(), "server".into()]),
                    ..Default::default()
                },
                "{port}",
            ),
            (
                LaunchSpec {
                    command: Some(vec!["x".into(), "{port}".into()]),
                    spark_conf: [("a".to_owned(), "b".to_owned())].into(),
                    ..Default::default()
                },
                "spark_conf",
            ),
            (
                LaunchSpec {
                    host: String::new(),
                    ..Default::default()
                },
                "host",
            ),
        ];
        for (spec, key) in cases {
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        assert_eq!(parse_port_range("15002").unwrap(), 15002..=15002);
    }

    #[test]
    fn share_levels_key_sessions() {
        let req = |user: Option<&str>, session: Option<&str>, groups: &[&str]| StartRequest {
            user: user.map(str::to_owned),
            session_id: session.map(str::to_owned),
            identity: user.map(|u| Identity {
                user: u.to_owned(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                method: AuthMethod::Token,
            }),
            profile: None,
        };
        let a1 = req(Some("alice"), Some("s1"), &["eng", "ops"]);
        let a2 = req(Some("alice"), Some("s2"), &[]);
        let anon = req(None, None, &[]);
        assert_eq!(ShareLevel::User.key(&a1), ShareLevel::User.key(&a2));
        assert_eq!(ShareLevel::User.key(&anon), "user:anonymous");
        assert_ne!(
            ShareLevel::Connection.key(&a1),
            ShareLevel::Connection.key(&a2)
        );
        assert_ne!(
            ShareLevel::Connection.key(&anon),
            ShareLevel::Connection.key(&anon)
        );
        assert_eq!(ShareLevel::Group.key(&a1), "group:eng");
        assert_eq!(ShareLevel::Group.key(&a2), "user:alice");
        assert_eq!(ShareLevel::Server.key(&a1), ShareLevel::Server.key(&anon));
    }
}
