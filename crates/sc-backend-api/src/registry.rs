//! Provider types and load policies by name: how configuration becomes providers and a policy.
//!
//! A proxy binary holds one [`Registry`]. Every provider crate offers a factory — a function
//! from the provider's `name` and its [`Spec`] to the provider — and the binary registers it
//! under the `type` name configuration uses. The built-in providers (PREDEFINED, LAUNCH, DNS)
//! and policies (ROUND_ROBIN, ...) register through exactly this API, so a provider written as
//! an ordinary crate is configured, reloaded and served like them.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use sc_backend_api::{Backend, BackendId, BackendProvider, ProviderError, Registry, Spec};
//! use serde::Deserialize;
//!
//! /// `spec` of the `SINGLE` provider type.
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct SingleSpec {
//!     /// `host:port` of the one Spark Connect server.
//!     url: String,
//! }
//!
//! struct Single { name: String, backend: Backend }
//!
//! #[async_trait]
//! impl BackendProvider for Single {
//!     fn name(&self) -> &str { &self.name }
//!     async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
//!         Ok(vec![self.backend.clone()])
//!     }
//! }
//!
//! fn single(name: &str, spec: &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError> {
//!     let spec: SingleSpec = spec.parse()?;
//!     let endpoint = format!("http://{}", spec.url)
//!         .parse()
//!         .map_err(|e| ProviderError::Config(format!("url '{}': {e}", spec.url)))?;
//!     Ok(Arc::new(Single {
//!         name: name.to_owned(),
//!         backend: Backend::new(BackendId::new("single"), endpoint),
//!     }))
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_provider("SINGLE", single);
//! let spec = Spec::from_json("backend_provider.spec", serde_json::json!({"url": "localhost:15002"}));
//! let provider = registry.build_provider("single", "my spark", &spec).unwrap();
//! assert_eq!(provider.name(), "my spark");
//!
//! // An unknown type lists the registered ones; a bad spec names its key.
//! let e = registry.build_provider("KUBERNETES", "x", &spec).err().unwrap().to_string();
//! assert!(e.contains("SINGLE"), "{e}");
//! let bad = Spec::from_json("backend_provider.spec", serde_json::json!({"ulr": "x"}));
//! let e = registry.build_provider("SINGLE", "x", &bad).err().unwrap().to_string();
//! assert!(e.contains("backend_provider.spec") && e.contains("ulr"), "{e}");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::{BackendProvider, LoadPolicy, ProviderError};

/// The settings a factory receives: the `spec` of a provider or the `params` of a policy, as
/// written in configuration, with the configuration key it came from.
///
/// The factory turns it into its own typed struct with [`Spec::parse`] (declare the struct with
/// `#[serde(deny_unknown_fields)]`, so a misspelt key is an error, not ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    key: String,
    value: serde_json::Value,
}

impl Spec {
    /// An empty spec (no `spec` in the configuration) found at `key`.
    pub fn empty(key: impl Into<String>) -> Self {
        Spec {
            key: key.into(),
            value: serde_json::Value::Null,
        }
    }

    /// A spec holding `value`, found at `key` (e.g. `backend_provider.spec`).
    pub fn from_json(key: impl Into<String>, value: serde_json::Value) -> Self {
        Spec {
            key: key.into(),
            value,
        }
    }

    /// A spec from any serializable value (e.g. a configuration library's own value type).
    pub fn from_value<T: serde::Serialize>(key: impl Into<String>, value: &T) -> Self {
        let key = key.into();
        match serde_json::to_value(value) {
            Ok(value) => Spec { key, value },
            // Values read from configuration always serialize; keep the failure visible anyway.
            Err(e) => Spec {
                value: serde_json::Value::String(format!("<unreadable: {e}>")),
                key,
            },
        }
    }

    /// The configuration key the spec was found at, for error messages.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the configuration gave no spec (or an empty one).
    pub fn is_empty(&self) -> bool {
        match &self.value {
            serde_json::Value::Null => true,
            serde_json::Value::Object(map) => map.is_empty(),
            _ => false,
        }
    }

    /// The raw value, for factories that read it without a typed struct.
    pub fn as_json(&self) -> &serde_json::Value {
        &self.value
    }

    /// Deserializes the spec into the factory's typed struct. An empty spec deserializes as an
    /// empty map, so a struct whose fields all have defaults accepts it. The error names the
    /// full key of the offending field (`backend_provider.spec.endpoints[0].url: ...`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        let value = match &self.value {
            serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
            other => other.clone(),
        };
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." || path.is_empty() {
                self.key.clone()
            } else {
                format!("{}.{path}", self.key)
            };
            ProviderError::Config(format!("{key}: {}", e.inner()))
        })
    }

    /// A configuration error about `field` of this spec (`backend_provider.spec.port: why`).
    pub fn invalid(&self, field: &str, why: impl fmt::Display) -> ProviderError {
        ProviderError::Config(format!("{}.{field}: {why}", self.key))
    }
}

/// Builds a provider from its configured `name` and [`Spec`].
pub type ProviderFactory =
    Arc<dyn Fn(&str, &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError> + Send + Sync>;

/// Builds a load policy from its [`Spec`] (`load_policy.params`).
pub type PolicyFactory =
    Arc<dyn Fn(&Spec) -> Result<Arc<dyn LoadPolicy>, ProviderError> + Send + Sync>;

/// Provider types and load policies by name. Names are matched without regard to case and
/// kept upper-case (`PREDEFINED`, `ROUND_ROBIN`).
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<String, ProviderFactory>,
    policies: BTreeMap<String, PolicyFactory>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a provider type. A later registration of the same name replaces the earlier
    /// one, so a binary may override a built-in type.
    pub fn register_provider<F>(&mut self, type_name: &str, factory: F) -> &mut Self
    where
        F: Fn(&str, &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError>
            + Send
            + Sync
            + 'static,
    {
        self.providers
            .insert(type_name.to_ascii_uppercase(), Arc::new(factory));
        self
    }

    /// Registers a load policy. A later registration of the same name replaces the earlier one.
    pub fn register_policy<F>(&mut self, name: &str, factory: F) -> &mut Self
    where
        F: Fn(&Spec) -> Result<Arc<dyn LoadPolicy>, ProviderError> + Send + Sync + 'static,
    {
        self.policies
            .insert(name.to_ascii_uppercase(), Arc::new(factory));
        self
    }

    /// The registered provider types, sorted.
    pub fn provider_types(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// The registered load policies, sorted.
    pub fn policy_names(&self) -> Vec<&str> {
        self.policies.keys().map(String::as_str).collect()
    }

    /// Whether a provider type of this name is registered.
    pub fn has_provider(&self, type_name: &str) -> bool {
        self.providers.contains_key(&type_name.to_ascii_uppercase())
    }

    /// Builds a provider of `type_name` named `name`. An unknown type is an error that lists
    /// the registered ones.
    pub fn build_provider(
        &self,
        type_name: &str,
        name: &str,
        spec: &Spec,
    ) -> Result<Arc<dyn BackendProvider>, ProviderError> {
        let factory = self
            .providers
            .get(&type_name.to_ascii_uppercase())
            .ok_or_else(|| {
                ProviderError::Config(format!(
                    "provider type '{type_name}' is not registered in this proxy; registered types: {}",
                    list(self.providers.keys())
                ))
            })?;
        factory(name, spec)
    }

    /// Builds the load policy `name`. An unknown name is an error that lists the registered
    /// ones.
    pub fn build_policy(
        &self,
        name: &str,
        params: &Spec,
    ) -> Result<Arc<dyn LoadPolicy>, ProviderError> {
        let factory = self
            .policies
            .get(&name.to_ascii_uppercase())
            .ok_or_else(|| {
                ProviderError::Config(format!(
                    "load policy '{name}' is not registered in this proxy; registered policies: {}",
                    list(self.policies.keys())
                ))
            })?;
        factory(params)
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{BackendLoad, Placement};

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Params {
        #[serde(default)]
        size: Option<u32>,
        #[serde(default)]
        #[allow(dead_code)]
        nested: Vec<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        port: u16,
    }

    struct Fixed;

    impl LoadPolicy for Fixed {
        fn name(&self) -> &str {
            "FIXED"
        }

        fn choose(&self, _: &[BackendLoad<'_>]) -> Placement {
            Placement::StartNew
        }
    }

    #[test]
    fn specs_name_the_key_of_a_bad_field() {
        let spec = Spec::from_json("load_policy.params", serde_json::json!({"size": "x"}));
        let e = spec.parse::<Params>().unwrap_err().to_string();
        assert!(e.contains("load_policy.params.size"), "{e}");
        let spec = Spec::from_json(
            "backend_provider.spec",
            serde_json::json!({"nested": [{"port": 1}, {"port": 70000}]}),
        );
        let e = spec.parse::<Params>().unwrap_err().to_string();
        assert!(e.contains("backend_provider.spec.nested[1].port"), "{e}");
        let spec = Spec::from_json("k", serde_json::json!({"sise": 1}));
        let e = spec.parse::<Params>().unwrap_err().to_string();
        assert!(e.contains("sise") && e.contains("size"), "{e}");
        // No spec at all is an empty map.
        let params: Params = Spec::empty("k").parse().unwrap();
        assert!(params.size.is_none());
        assert!(Spec::empty("k").is_empty());
        assert!(Spec::from_json("k", serde_json::json!({})).is_empty());
        assert_eq!(
            Spec::empty("k").invalid("port", "too big").to_string(),
            "invalid backend provider configuration: k.port: too big"
        );
    }

    #[test]
    fn policies_are_built_by_name_and_unknown_names_list_the_known() {
        let mut registry = Registry::new();
        registry.register_policy("fixed", |params: &Spec| {
            let _: Params = params.parse()?;
            Ok(Arc::new(Fixed) as Arc<dyn LoadPolicy>)
        });
        assert_eq!(registry.policy_names(), ["FIXED"]);
        let policy = registry.build_policy("Fixed", &Spec::empty("p")).unwrap();
        assert_eq!(policy.name(), "FIXED");
        let e = registry
            .build_policy("FASTEST", &Spec::empty("p"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("'FASTEST'") && e.contains("FIXED"), "{e}");
        let e = Registry::new()
            .build_provider("X", "x", &Spec::empty("s"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("registered types: none"), "{e}");
    }
}
