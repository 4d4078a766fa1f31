//! Engine profiles: the spec's own settings (the `default` profile) and the named templates
//! over it, resolved into what one engine runs with, and who may ask for which.

use std::collections::BTreeMap;
use std::time::Duration;

use sc_backend_api::{Identity, ProviderError, StartRequest};

use crate::spec::{DEFAULT_PROFILE, LaunchSpec};

/// Spark keys the provider sets itself (or that have their own setting), which `spark_conf`
/// may not hold: the key, and what to use instead.
const RESERVED: [(&str, &str); 7] = [
    ("spark.master", "set `master` instead"),
    (
        "spark.submit.deployMode",
        "engines run in client deploy mode: the driver must stay where the proxy reaches it",
    ),
    (
        "spark.connect.grpc.binding.port",
        "the provider gives each engine a port from `port_range`",
    ),
    (
        "spark.connect.grpc.binding.address",
        "engines listen on `host`",
    ),
    (
        "spark.ui.port",
        "the provider gives each engine's UI a port from `port_range`",
    ),
    (
        "spark.ui.proxyBase",
        "the provider points it at the control plane's /control/backends/{id}/ui",
    ),
    ("spark.ui.enabled", "set `spark_ui` instead"),
];

/// One level of engine settings: the spec's, or a profile's over it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level<'a> {
    pub(crate) master: Option<&'a str>,
    pub(crate) spark_conf: &'a BTreeMap<String, String>,
    pub(crate) driver_memory: Option<&'a str>,
    pub(crate) driver_cores: Option<u32>,
    pub(crate) executor_memory: Option<&'a str>,
    pub(crate) executor_cores: Option<u32>,
    pub(crate) executor_instances: Option<u32>,
    pub(crate) max_cores: Option<u32>,
}

impl Level<'_> {
    /// The typed settings as Spark keys, with the setting each came from.
    fn typed(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut out = Vec::new();
        let mut put = |field, key, value: Option<String>| {
            if let Some(value) = value {
                out.push((field, key, value));
            }
        };
        put(
            "driver_memory",
            "spark.driver.memory",
            self.driver_memory.map(str::to_owned),
        );
        put(
            "driver_cores",
            "spark.driver.cores",
            self.driver_cores.map(|n| n.to_string()),
        );
        put(
            "executor_memory",
            "spark.executor.memory",
            self.executor_memory.map(str::to_owned),
        );
        put(
            "executor_cores",
            "spark.executor.cores",
            self.executor_cores.map(|n| n.to_string()),
        );
        put(
            "executor_instances",
            "spark.executor.instances",
            self.executor_instances.map(|n| n.to_string()),
        );
        put(
            "max_cores",
            "spark.cores.max",
            self.max_cores.map(|n| n.to_string()),
        );
        out
    }

    /// Puts this level's settings over `conf`.
    fn apply(&self, conf: &mut BTreeMap<String, String>) {
        for (_, key, value) in self.typed() {
            conf.insert(key.to_owned(), value);
        }
        for (key, value) in self.spark_conf {
            conf.insert(key.clone(), value.clone());
        }
    }
}

/// Checks one level; errors name the key under `at` (e.g. `backend_provider.spec`).
pub(crate) fn check_level(at: &str, level: &Level<'_>) -> Result<(), ProviderError> {
    let bad = |msg: String| Err(ProviderError::Config(msg));
    if let Some(master) = level.master {
        check_master(master).map_err(|why| ProviderError::Config(format!("{at}.master {why}")))?;
    }
    for key in level.spark_conf.keys() {
        if key.trim().is_empty() || key.contains(['=', ' ']) {
            return bad(format!(
                "{at}.spark_conf has an invalid key '{key}': Spark keys look like spark.sql.shuffle.partitions"
            ));
        }
        if let Some((_, instead)) = RESERVED.iter().find(|(k, _)| k == key) {
            return bad(format!("{at}.spark_conf may not set {key}: {instead}"));
        }
    }
    for (field, key, _) in level.typed() {
        if level.spark_conf.contains_key(key) {
            return bad(format!(
                "{at} sets both {field} and spark_conf.{key}; keep one"
            ));
        }
    }
    for (field, value) in [
        ("driver_memory", level.driver_memory),
        ("executor_memory", level.executor_memory),
    ] {
        if let Some(value) = value
            && !is_memory(value)
        {
            return bad(format!(
                "{at}.{field} '{value}' is not a JVM memory size; write e.g. 512m or 2g"
            ));
        }
    }
    Ok(())
}

/// Whether `master` is one Spark takes, in a shape this provider can run in client mode.
fn check_master(master: &str) -> Result<(), String> {
    let ok = master.starts_with("local")
        || master
            .strip_prefix("spark://")
            .is_some_and(|rest| !rest.is_empty())
        || master == "yarn"
        || master
            .strip_prefix("k8s://")
            .is_some_and(|rest| !rest.is_empty());
    if ok && !master.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!(
            "'{master}' is not a cluster manager Spark knows; use local[N], spark://host:port (standalone), yarn or k8s://https://host:port"
        ))
    }
}

fn is_memory(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            unit.to_ascii_lowercase().as_str(),
            "" | "k" | "kb" | "m" | "mb" | "g" | "gb" | "t" | "tb"
        )
}

/// What one engine runs with: a profile resolved over the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    /// The profile's name (`default` for the spec itself).
    pub(crate) name: String,
    /// The cluster manager.
    pub(crate) master: String,
    /// The Spark configuration: the spec's settings, then the profile's.
    pub(crate) conf: BTreeMap<String, String>,
    /// How long an engine may have no sessions.
    pub(crate) idle_timeout: Duration,
    /// Who may use it (empty: everyone).
    pub(crate) allowed_groups: Vec<String>,
    /// Engines kept warm.
    pub(crate) warm_engines: usize,
}

/// Every profile of a spec, resolved: `default` first, then the named ones in name order.
pub(crate) fn resolve(spec: &LaunchSpec) -> Vec<Template> {
    let mut base = BTreeMap::new();
    spec.level().apply(&mut base);
    let mut all = vec![Template {
        name: DEFAULT_PROFILE.to_owned(),
        master: spec.master.clone(),
        conf: base.clone(),
        idle_timeout: spec.engine_idle_timeout,
        allowed_groups: Vec::new(),
        warm_engines: spec.warm_engines,
    }];
    for (name, profile) in &spec.profiles {
        let mut conf = base.clone();
        profile.level().apply(&mut conf);
        all.push(Template {
            name: name.clone(),
            master: profile
                .master
                .clone()
                .unwrap_or_else(|| spec.master.clone()),
            conf,
            idle_timeout: profile
                .engine_idle_timeout
                .unwrap_or(spec.engine_idle_timeout),
            allowed_groups: profile.allowed_groups.clone(),
            warm_engines: profile.warm_engines,
        });
    }
    all
}

impl Template {
    /// Whether `identity` may use this profile: everyone when it names no groups; else only a
    /// verified member of one of them.
    fn open_to(&self, identity: Option<&Identity>) -> bool {
        self.allowed_groups.is_empty()
            || identity.is_some_and(|i| self.allowed_groups.iter().any(|g| i.in_group(g)))
    }
}

/// The profile a request asks for, if it exists and the caller may use it.
pub(crate) fn choose<'a>(
    templates: &'a [Template],
    request: &StartRequest,
) -> Result<&'a Template, ProviderError> {
    let wanted = request.profile.as_deref().unwrap_or(DEFAULT_PROFILE);
    let Some(template) = templates.iter().find(|t| t.name == wanted) else {
        return Err(ProviderError::UnknownProfile {
            profile: wanted.to_owned(),
            available: templates.iter().map(|t| t.name.clone()).collect(),
        });
    };
    let identity = request.identity.as_ref();
    if !template.open_to(identity) {
        return Err(ProviderError::ProfileForbidden {
            profile: wanted.to_owned(),
            user: request
                .user
                .clone()
                .or_else(|| identity.map(|i| i.user.clone()))
                .unwrap_or_else(|| "anonymous".to_owned()),
            allowed_groups: template.allowed_groups.clone(),
            open: templates
                .iter()
                .filter(|t| t.open_to(identity))
                .map(|t| t.name.clone())
                .collect(),
        });
    }
    Ok(template)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sc_backend_api::AuthMethod;

    use super::*;
    use crate::spec::ProfileSpec;

    fn spec_with_profiles() -> LaunchSpec {
        let mut spec = LaunchSpec {
            master: "spark://127.0.0.1:17077".into(),
            driver_memory: Some("1g".into()),
            spark_conf: [("spark.sql.shuffle.partitions".to_owned(), "4".to_owned())].into(),
            ..Default::default()
        };
        spec.profiles.insert(
            "large".into(),
            ProfileSpec {
                driver_memory: Some("4g".into()),
                spark_conf: [("spark.sql.shuffle.partitions".to_owned(), "64".to_owned())].into(),
                engine_idle_timeout: Some(Duration::from_secs(60)),
                allowed_groups: vec!["analysts".into()],
                ..Default::default()
            },
        );
        spec.profiles.insert(
            "local".into(),
            ProfileSpec {
                master: Some("local[1]".into()),
                warm_engines: 1,
                ..Default::default()
            },
        );
        spec
    }

    #[test]
    fn profiles_resolve_over_the_spec() {
        let spec = spec_with_profiles();
        spec.validate().unwrap();
        let all = resolve(&spec);
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["default", "large", "local"]);
        let (default, large, local) = (&all[0], &all[1], &all[2]);
        assert_eq!(default.master, "spark://127.0.0.1:17077");
        assert_eq!(default.conf["spark.driver.memory"], "1g");
        assert_eq!(default.conf["spark.sql.shuffle.partitions"], "4");
        assert_eq!(large.master, default.master);
        assert_eq!(large.conf["spark.driver.memory"], "4g");
        assert_eq!(large.conf["spark.sql.shuffle.partitions"], "64");
        assert_eq!(large.idle_timeout, Duration::from_secs(60));
        assert_eq!(local.master, "local[1]");
        assert_eq!(local.conf, default.conf);
        assert_eq!(local.idle_timeout, spec.engine_idle_timeout);
        assert_eq!(local.warm_engines, 1);
    }

    #[test]
    fn unknown_and_forbidden_profiles_name_the_available_ones() {
        let all = resolve(&spec_with_profiles());
        let ask = |profile: Option<&str>, groups: Option<&[&str]>| StartRequest {
            user: Some("alice".into()),
            session_id: None,
            identity: groups.map(|g| Identity {
                user: "alice".into(),
                groups: g.iter().map(|s| (*s).to_owned()).collect(),
                method: AuthMethod::Token,
            }),
            profile: profile.map(str::to_owned),
        };
        assert_eq!(choose(&all, &ask(None, None)).unwrap().name, "default");
        assert_eq!(
            choose(&all, &ask(Some("local"), None)).unwrap().name,
            "local"
        );
        let e = choose(&all, &ask(Some("huge"), None)).unwrap_err();
        assert!(matches!(e, ProviderError::UnknownProfile { .. }));
        let text = e.to_string();
        assert!(
            text.contains("'huge'") && text.contains("default, large, local"),
            "{text}"
        );
        let e = choose(&all, &ask(Some("large"), Some(&["ops"]))).unwrap_err();
        assert!(matches!(e, ProviderError::ProfileForbidden { .. }));
        let text = e.to_string();
        assert!(
            text.contains("'large'")
                && text.contains("analysts")
                && text.contains("default, local"),
            "{text}"
        );
        // Without a verified identity nobody is in a group.
        assert!(choose(&all, &ask(Some("large"), None)).is_err());
        assert_eq!(
            choose(&all, &ask(Some("large"), Some(&["ops", "analysts"])))
                .unwrap()
                .name,
            "large"
        );
    }

    #[test]
    fn spark_conf_cannot_say_what_settings_say() {
        let bad = |spec: LaunchSpec, needle: &str| {
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        let conf = |k: &str, v: &str| [(k.to_owned(), v.to_owned())].into();
        bad(
            LaunchSpec {
                spark_conf: conf("spark.master", "yarn"),
                ..Default::default()
            },
            "set `master` instead",
        );
        bad(
            LaunchSpec {
                spark_conf: conf("spark.submit.deployMode", "cluster"),
                ..Default::default()
            },
            "client deploy mode",
        );
        bad(
            LaunchSpec {
                driver_memory: Some("2g".into()),
                spark_conf: conf("spark.driver.memory", "1g"),
                ..Default::default()
            },
            "both driver_memory and spark_conf.spark.driver.memory",
        );
        bad(
            LaunchSpec {
                master: "mesos://x".into(),
                ..Default::default()
            },
            "backend_provider.spec.master",
        );
        bad(
            LaunchSpec {
                executor_memory: Some("lots".into()),
                ..Default::default()
            },
            "executor_memory",
        );
        let mut spec = LaunchSpec::default();
        spec.profiles.insert(
            "x".into(),
            ProfileSpec {
                spark_conf: conf("spark.master", "local"),
                ..Default::default()
            },
        );
        bad(spec, "backend_provider.spec.profiles.x.spark_conf");
        let mut spec = LaunchSpec::default();
        spec.profiles
            .insert("default".into(), ProfileSpec::default());
        bad(spec, "is the spec itself");
        let mut spec = LaunchSpec {
            max_engines: 1,
            warm_engines: 1,
            ..Default::default()
        };
        spec.profiles.insert(
            "w".into(),
            ProfileSpec {
                warm_engines: 1,
                ..Default::default()
            },
        );
        bad(spec, "exceed max_engines");
        for master in ["local[2]", "spark://h:7077", "yarn", "k8s://https://k:6443"] {
            check_master(master).unwrap();
        }
    }
}
