//! The ENV backend provider: Spark Connect servers listed in an environment variable, written as
//! an ordinary provider crate against `sc-backend-api` alone.
//!
//! ```yaml
//! backend_provider:
//!   name: env sparks
//!   type: ENV
//!   spec:
//!     variable: SPARK_BACKENDS   # holds host:port,host:port
//! ```
//!
//! The variable is read when the provider is built: at start-up and on every reload (SIGHUP,
//! `POST /control/reload`). Its servers get the ids `env-0`, `env-1`, ... in the order listed.
//! An unset variable, an empty list or an entry that is not `host:port` is a configuration
//! error naming `backend_provider.spec.variable` and the variable.
//!
//! A proxy binary adds the type with [`register`] (see `src/main.rs`); `docs/providers.md`
//! walks through writing a provider like this one.

#![forbid(unsafe_code)]

use std::sync::Arc;

use async_trait::async_trait;
use http::Uri;
use sc_backend_api::{Backend, BackendId, BackendProvider, ProviderError, Registry, Spec};
use serde::Deserialize;

/// The provider type's name in configuration (`backend_provider.type`).
pub const TYPE: &str = "ENV";

/// Registers the ENV provider type with [`factory`].
pub fn register(registry: &mut Registry) {
    registry.register_provider(TYPE, factory);
}

/// The `spec` of an ENV provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// The environment variable that lists the Spark Connect servers: `host:port` entries
    /// separated by commas (`spark-1:15002,spark-2:15002`; white space around an entry and
    /// empty entries are ignored).
    pub variable: String,
}

/// Builds an ENV provider from its configured name and spec, reading the variable now. Errors
/// name the key (`backend_provider.spec.variable`) and the variable.
pub fn factory(name: &str, spec: &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError> {
    let parsed: EnvSpec = spec.parse()?;
    if parsed.variable.is_empty() {
        return Err(spec.invalid(
            "variable",
            "is empty; name the environment variable that lists the servers, e.g. SPARK_BACKENDS",
        ));
    }
    let value = match std::env::var(&parsed.variable) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(spec.invalid(
                "variable",
                format!(
                    "environment variable {} is not valid UTF-8",
                    parsed.variable
                ),
            ));
        }
    };
    let backends = backends(&parsed.variable, value.as_deref())
        .map_err(|why| spec.invalid("variable", why))?;
    Ok(Arc::new(EnvProvider {
        name: name.to_owned(),
        backends,
    }))
}

/// The servers `value` lists, as the content of environment variable `variable` (`None`: the
/// variable is not set), or why it lists none that can be used.
fn backends(variable: &str, value: Option<&str>) -> Result<Vec<Backend>, String> {
    let value = value.ok_or_else(|| {
        format!(
            "environment variable {variable} is not set; set it to the Spark Connect servers as host:port,host:port"
        )
    })?;
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    if entries.is_empty() {
        return Err(format!(
            "environment variable {variable} lists no server; set it to host:port,host:port"
        ));
    }
    let mut backends: Vec<Backend> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let endpoint = endpoint(entry).map_err(|why| {
            format!(
                "environment variable {variable}: entry '{entry}' {why}; write host:port, e.g. spark-1:15002"
            )
        })?;
        if backends.iter().any(|b| b.endpoint == endpoint) {
            return Err(format!(
                "environment variable {variable} lists '{entry}' twice"
            ));
        }
        backends.push(Backend::new(BackendId::new(format!("env-{i}")), endpoint));
    }
    Ok(backends)
}

/// `host:port` as a plaintext endpoint.
fn endpoint(entry: &str) -> Result<Uri, String> {
    if entry.contains(['/', '?', '#', '@']) {
        return Err("is not host:port (no scheme, path or user)".into());
    }
    let Some((host, port)) = entry.rsplit_once(':') else {
        return Err("has no port".into());
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if !port.parse::<u16>().is_ok_and(|port| port > 0) {
        return Err(format!(
            "is not host:port: its port '{port}' is not a number from 1 to 65535"
        ));
    }
    format!("http://{entry}")
        .parse()
        .map_err(|e| format!("is not host:port ({e})"))
}

/// Backends listed in an environment variable.
#[derive(Debug, Clone)]
pub struct EnvProvider {
    name: String,
    backends: Vec<Backend>,
}

#[async_trait]
impl BackendProvider for EnvProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
        Ok(self.backends.clone())
    }

    // Every other method keeps its documented default: the list changes only on reload
    // (`changed` never completes), servers cannot be started (`can_start` is false, `start`
    // refuses) or stopped, health is left to the router's probes, and the policy is the
    // proxy's default (ROUND_ROBIN) unless configured.
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(value: Option<&str>) -> String {
        backends("SPARK_BACKENDS", value).unwrap_err()
    }

    #[test]
    fn servers_are_listed_in_order_with_ids() {
        let list = backends("V", Some(" spark-1:15002, 127.0.0.1:15003 ,[::1]:15004,")).unwrap();
        let got: Vec<(String, String)> = list
            .iter()
            .map(|b| (b.id.to_string(), b.endpoint.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("env-0".to_owned(), "http://spark-1:15002/".to_owned()),
                ("env-1".to_owned(), "http://127.0.0.1:15003/".to_owned()),
                ("env-2".to_owned(), "http://[::1]:15004/".to_owned()),
            ]
        );
    }

    #[test]
    fn an_unset_variable_an_empty_list_and_bad_entries_are_named() {
        let e = err(None);
        assert!(e.contains("SPARK_BACKENDS is not set"), "{e}");
        for empty in ["", " ", ",, ,"] {
            let e = err(Some(empty));
            assert!(e.contains("SPARK_BACKENDS lists no server"), "{e}");
        }
        for (value, entry, why) in [
            ("spark-1:15002,spark-2", "spark-2", "has no port"),
            ("spark-1:x", "spark-1:x", "not host:port"),
            ("spark-1:70000", "spark-1:70000", "not host:port"),
            ("spark-1:0", "spark-1:0", "not host:port"),
            (":15002", ":15002", "has no host"),
            ("sc://spark-1:15002", "sc://spark-1:15002", "no scheme"),
            ("spark-1:15002/x", "spark-1:15002/x", "not host:port"),
            ("me@spark-1:15002", "me@spark-1:15002", "not host:port"),
        ] {
            let e = err(Some(value));
            assert!(
                e.contains("SPARK_BACKENDS")
                    && e.contains(&format!("'{entry}'"))
                    && e.contains(why),
                "{value}: {e}"
            );
        }
        let e = err(Some("a:1,b:2,a:1"));
        assert!(e.contains("'a:1' twice"), "{e}");
    }

    #[test]
    fn spec_errors_name_the_key() {
        let build = |value: serde_json::Value| {
            let spec = Spec::from_json("backend_provider.spec", value);
            factory("env", &spec).err().unwrap().to_string()
        };
        let e = build(serde_json::json!({}));
        assert!(
            e.contains("backend_provider.spec") && e.contains("variable"),
            "{e}"
        );
        let e = build(serde_json::json!({"variabel": "X"}));
        assert!(
            e.contains("backend_provider.spec") && e.contains("variabel"),
            "{e}"
        );
        let e = build(serde_json::json!({"variable": 7}));
        assert!(e.contains("backend_provider.spec.variable"), "{e}");
        let e = build(serde_json::json!({"variable": ""}));
        assert!(
            e.contains("backend_provider.spec.variable: is empty"),
            "{e}"
        );
        // A variable nobody sets: the key and the variable are both named.
        let unset = "SC_EXAMPLE_ENV_PROVIDER_NEVER_SET";
        let e = build(serde_json::json!({ "variable": unset }));
        assert!(
            e.contains("backend_provider.spec.variable")
                && e.contains(&format!("{unset} is not set")),
            "{e}"
        );
    }

    #[test]
    fn the_type_registers_by_name() {
        let mut registry = Registry::new();
        register(&mut registry);
        assert_eq!(registry.provider_types(), ["ENV"]);
        let e = registry
            .build_provider("env", "x", &Spec::empty("backend_provider.spec"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("variable"), "{e}");
    }
}
