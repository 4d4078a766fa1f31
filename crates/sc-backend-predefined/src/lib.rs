//! The PREDEFINED backend provider: a static list of Spark Connect endpoints from configuration.
//!
//! ```yaml
//! backend_provider:
//!   name: manual spark
//!   type: PREDEFINED
//!   spec:
//!     endpoints:
//!       - url: localhost:15002
//!       - url: https://spark-2.internal:15002
//!         id: spark-2             # optional; default backend-<index>
//!         ca_file: /etc/ca.pem    # optional, for https endpoints
//!         server_name: spark-2    # optional, for https endpoints
//!         ui_url: http://spark-2.internal:4040  # optional: its Spark UI, served by the proxy
//! ```
//!
//! It cannot start or stop servers: policies that want a new backend are told so. Without a
//! `spec`, it serves one server at `localhost:15002`.
//!
//! [`register`] adds the type to a proxy's [`Registry`].

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use http::Uri;
use sc_backend_api::{
    Backend, BackendId, BackendProvider, BackendTls, ProviderError, Registry, Spec,
};
use serde::Deserialize;

/// The provider type's name in configuration (`backend_provider.type`).
pub const TYPE: &str = "PREDEFINED";

/// Registers the PREDEFINED type with [`factory`].
pub fn register(registry: &mut Registry) {
    registry.register_provider(TYPE, factory);
}

/// Builds a PREDEFINED provider from its configured name and spec.
pub fn factory(name: &str, spec: &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError> {
    let parsed = if spec.is_empty() {
        PredefinedSpec {
            endpoints: vec![EndpointSpec::new("localhost:15002")],
        }
    } else {
        spec.parse()?
    };
    Ok(Arc::new(PredefinedProvider::build(
        name,
        &parsed,
        spec.key(),
    )?))
}

/// The `spec` of a PREDEFINED provider.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PredefinedSpec {
    /// The Spark Connect servers, in order.
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
}

/// One endpoint of a PREDEFINED provider.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// `host:port`, `http://host:port` or `https://host:port` (`sc://host:port` is accepted too).
    pub url: String,
    /// The backend's id; `backend-<index>` when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// CA bundle for an `https` endpoint; system roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to verify in an `https` endpoint's certificate; the host when absent.
    #[serde(default)]
    pub server_name: Option<String>,
    /// File holding the server's pre-shared token (`spark.connect.authenticate.token`); the proxy
    /// sends it to this backend on every call.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the pre-shared token (instead of `token_file`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The server's Spark UI (`http://host:port`), which the control plane then serves at
    /// `/control/backends/{id}/ui/` to admins and the users with a session there. For its
    /// links to work, start the server with `spark.ui.proxyBase=/control/backends/{id}/ui`.
    #[serde(default)]
    pub ui_url: Option<String>,
}

/// A provider that serves a fixed list of backends.
#[derive(Debug, Clone)]
pub struct PredefinedProvider {
    name: String,
    backends: Vec<Backend>,
}

impl EndpointSpec {
    /// An endpoint with only its URL set.
    pub fn new(url: impl Into<String>) -> Self {
        EndpointSpec {
            url: url.into(),
            ..Default::default()
        }
    }
}

impl PredefinedProvider {
    /// Builds the provider, checking every endpoint. Errors name the offending entry
    /// (`spec.endpoints[i].url`) and say what a valid value looks like.
    pub fn new(name: impl Into<String>, spec: &PredefinedSpec) -> Result<Self, ProviderError> {
        Self::build(name, spec, "spec")
    }

    /// [`PredefinedProvider::new`] for a spec found at configuration key `key`.
    fn build(
        name: impl Into<String>,
        spec: &PredefinedSpec,
        key: &str,
    ) -> Result<Self, ProviderError> {
        if spec.endpoints.is_empty() {
            return Err(ProviderError::Config(format!(
                "{key}.endpoints is empty: list at least one Spark Connect server, e.g. `- url: localhost:15002`"
            )));
        }
        let mut backends: Vec<Backend> = Vec::with_capacity(spec.endpoints.len());
        for (i, ep) in spec.endpoints.iter().enumerate() {
            let endpoint = parse_endpoint(&ep.url).map_err(|why| {
                ProviderError::Config(format!(
                    "{key}.endpoints[{i}].url '{}' is not a valid endpoint: {why}; write host:port, e.g. localhost:15002",
                    ep.url
                ))
            })?;
            let id = BackendId::new(ep.id.clone().unwrap_or_else(|| format!("backend-{i}")));
            if backends.iter().any(|b| b.id == id) {
                return Err(ProviderError::Config(format!(
                    "{key}.endpoints[{i}].id '{id}' is used twice: backend ids must be unique"
                )));
            }
            let mut backend = Backend::new(id, endpoint);
            if backend.endpoint.scheme_str() == Some("https") {
                backend = backend.with_tls(BackendTls {
                    ca_file: ep.ca_file.clone(),
                    server_name: ep.server_name.clone(),
                });
            } else if ep.ca_file.is_some() || ep.server_name.is_some() {
                return Err(ProviderError::Config(format!(
                    "{key}.endpoints[{i}] sets ca_file or server_name but its url is not https://"
                )));
            }
            let token = match (&ep.token_file, &ep.token_env) {
                (Some(_), Some(_)) => {
                    return Err(ProviderError::Config(format!(
                        "{key}.endpoints[{i}] sets both token_file and token_env; keep one"
                    )));
                }
                (Some(path), None) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| {
                            ProviderError::Config(format!(
                                "{key}.endpoints[{i}].token_file {}: {e}",
                                path.display()
                            ))
                        })?
                        .trim()
                        .to_owned(),
                ),
                (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                    ProviderError::Config(format!(
                        "{key}.endpoints[{i}].token_env: environment variable {var} is not set"
                    ))
                })?),
                (None, None) => None,
            };
            if let Some(token) = token {
                if token.is_empty() {
                    return Err(ProviderError::Config(format!(
                        "{key}.endpoints[{i}]: the backend token is empty"
                    )));
                }
                backend = backend.with_auth_token(token);
            }
            if let Some(ui_url) = &ep.ui_url {
                let ui = parse_ui_url(ui_url).map_err(|why| {
                    ProviderError::Config(format!(
                        "{key}.endpoints[{i}].ui_url '{ui_url}' is not a valid URL: {why}; write http://host:port"
                    ))
                })?;
                backend = backend.with_ui_url(ui);
            }
            backends.push(backend);
        }
        Ok(PredefinedProvider {
            name: name.into(),
            backends,
        })
    }

    /// The backends, in configuration order.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }
}

/// A Spark UI's address: `http://host:port` (or `host:port`); plaintext only.
fn parse_ui_url(url: &str) -> Result<Uri, String> {
    let url = url.trim();
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let uri: Uri = full.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// UIs can be served".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(uri)
}

/// Turns `host:port`, `sc://host:port`, `http://host:port` or `https://host:port` into a URI.
pub fn parse_endpoint(url: &str) -> Result<Uri, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("it is empty".into());
    }
    let with_scheme = if let Some(rest) = url.strip_prefix("sc://") {
        format!("http://{}", rest.split(['/', ';']).next().unwrap_or(rest))
    } else if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let uri: Uri = with_scheme.parse().map_err(|e| format!("{e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "scheme '{other}' is not supported (use http or https)"
            ));
        }
        None => return Err("it has no scheme".into()),
    }
    let Some(authority) = uri.authority() else {
        return Err("it has no host".into());
    };
    if authority.port_u16().is_none() {
        return Err("it has no port".into());
    }
    if authority.host().is_empty() {
        return Err("it has no host".into());
    }
    Ok(uri)
}

#[async_trait]
impl BackendProvider for PredefinedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
        Ok(self.backends.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(urls: &[&str]) -> PredefinedSpec {
        PredefinedSpec {
            endpoints: urls.iter().map(|u| EndpointSpec::new(*u)).collect(),
        }
    }

    #[tokio::test]
    async fn lists_backends_in_order_with_default_ids() {
        let p = PredefinedProvider::new(
            "manual",
            &spec(&["localhost:15002", "http://10.0.0.2:15003", "sc://h:1/;x=y"]),
        )
        .unwrap();
        let list = p.list().await.unwrap();
        let ids: Vec<_> = list.iter().map(|b| b.id.to_string()).collect();
        assert_eq!(ids, ["backend-0", "backend-1", "backend-2"]);
        assert_eq!(list[0].endpoint.to_string(), "http://localhost:15002/");
        assert_eq!(list[2].endpoint.to_string(), "http://h:1/");
        assert!(p.start(&Default::default()).await.is_err());
        assert_eq!(
            p.get(&BackendId::new("backend-1"))
                .await
                .unwrap()
                .unwrap()
                .endpoint
                .port_u16(),
            Some(15003)
        );
    }

    #[test]
    fn rejects_bad_endpoints_naming_the_entry() {
        for bad in ["", "localhost", "ftp://x:1", "http://:99", "a b:1"] {
            let err = PredefinedProvider::new("p", &spec(&["localhost:1", bad]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("spec.endpoints[1].url"), "{bad}: {err}");
        }
        assert!(
            PredefinedProvider::new("p", &spec(&[]))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
    }

    #[test]
    fn an_endpoint_may_name_its_spark_ui() {
        let mut s = spec(&["localhost:1", "localhost:2"]);
        s.endpoints[0].ui_url = Some("127.0.0.1:4040".into());
        let p = PredefinedProvider::new("p", &s).unwrap();
        assert_eq!(
            p.backends()[0].ui_url.as_ref().map(|u| u.to_string()),
            Some("http://127.0.0.1:4040/".to_owned())
        );
        assert!(p.backends()[1].ui_url.is_none());
        for bad in ["ftp://x:1", "https://x:1", "http://"] {
            s.endpoints[1].ui_url = Some(bad.into());
            let e = PredefinedProvider::new("p", &s).unwrap_err().to_string();
            assert!(e.contains("spec.endpoints[1].ui_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn https_endpoints_get_tls_and_ids_are_unique() {
        let mut s = spec(&["https://spark:443", "localhost:2"]);
        s.endpoints[0].server_name = Some("spark.internal".into());
        let p = PredefinedProvider::new("p", &s).unwrap();
        assert_eq!(
            p.backends()[0].tls.as_ref().unwrap().server_name.as_deref(),
            Some("spark.internal")
        );
        assert!(p.backends()[1].tls.is_none());
        s.endpoints[1].id = Some("backend-0".into());
        assert!(
            PredefinedProvider::new("p", &s)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
    }

    #[test]
    fn the_factory_reads_its_spec_and_names_the_full_key() {
        let mut registry = Registry::new();
        register(&mut registry);
        let spec = Spec::from_json(
            "backend_provider.spec",
            serde_json::json!({"endpoints": [{"url": "localhost:1"}, {"url": "nowhere"}]}),
        );
        let e = registry
            .build_provider("predefined", "p", &spec)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("backend_provider.spec.endpoints[1].url"), "{e}");
        let spec = Spec::from_json(
            "backend_provider.spec",
            serde_json::json!({"endpoints": [{"uri": "x:1"}]}),
        );
        let e = registry
            .build_provider(TYPE, "p", &spec)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("backend_provider.spec.endpoints[0]") && e.contains("uri"),
            "{e}"
        );
        // No spec: one server on localhost:15002.
        let provider = registry
            .build_provider(TYPE, "p", &Spec::empty("backend_provider.spec"))
            .unwrap();
        assert_eq!(provider.name(), "p");
    }

    #[test]
    fn spec_rejects_unknown_keys() {
        let err =
            serde_json::from_str::<PredefinedSpec>(r#"{"endpoints":[{"uri":"x:1"}]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `uri`"), "{err}");
    }
}
