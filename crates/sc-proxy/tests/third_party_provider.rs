//! A provider type and a load policy written as a third party would write them (module
//! `fixed`, which sees `sc-backend-api` only), registered into the stock registry from outside
//! the built-ins, configured from YAML, built and served by the whole proxy (`Proxy`), rebuilt
//! by a reload through the same registry; and an unknown `type` or policy answered with the list
//! of the registered ones, the custom ones included.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;

use sc_proxy::{Proxy, ProxyConfig};
use sc_testkit::{backend_of, client, spawn_backend};
use tokio::sync::oneshot;

/// What a provider crate of someone else's looks like: a typed spec, a provider, a policy and a
/// `register` function, written against `sc-backend-api` alone.
mod fixed {
    use std::sync::Arc;

    use sc_backend_api::{
        Backend, BackendId, BackendLoad, BackendProvider, LoadPolicy, Placement, ProviderError,
        Registry, Spec,
    };
    use serde::Deserialize;

    /// `backend_provider.spec` of the `FIXED` type.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FixedSpec {
        /// `host:port` of each server.
        servers: Vec<String>,
        /// Backend ids are `<id_prefix>-<index>`.
        #[serde(default = "default_prefix")]
        id_prefix: String,
    }

    fn default_prefix() -> String {
        "fixed".into()
    }

    struct Fixed {
        name: String,
        backends: Vec<Backend>,
    }

    #[async_trait::async_trait]
    impl BackendProvider for Fixed {
        fn name(&self) -> &str {
            &self.name
        }

        async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
            Ok(self.backends.clone())
        }
    }

    fn provider(name: &str, spec: &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError> {
        let parsed: FixedSpec = spec.parse()?;
        let mut backends = Vec::new();
        for (i, server) in parsed.servers.iter().enumerate() {
            let endpoint = format!("http://{server}")
                .parse()
                .map_err(|e| spec.invalid(&format!("servers[{i}]"), e))?;
            let id = BackendId::new(format!("{}-{i}", parsed.id_prefix));
            backends.push(Backend::new(id, endpoint));
        }
        Ok(Arc::new(Fixed {
            name: name.to_owned(),
            backends,
        }))
    }

    /// `FIRST_AVAILABLE`: every new session on the first available backend.
    struct FirstAvailable;

    impl LoadPolicy for FirstAvailable {
        fn name(&self) -> &str {
            "FIRST_AVAILABLE"
        }

        fn choose(&self, backends: &[BackendLoad<'_>]) -> Placement {
            match backends.iter().find(|b| b.available) {
                Some(b) => Placement::Existing(b.id.clone()),
                None => Placement::Exhausted("no backend is available".into()),
            }
        }

        fn starts_backends(&self) -> bool {
            false
        }
    }

    /// Adds the `FIXED` provider type and the `FIRST_AVAILABLE` policy.
    pub(super) fn register(registry: &mut Registry) {
        registry
            .register_provider("FIXED", provider)
            .register_policy("FIRST_AVAILABLE", |params: &Spec| {
                if !params.is_empty() {
                    return Err(params.invalid("", "FIRST_AVAILABLE takes no params"));
                }
                Ok(Arc::new(FirstAvailable) as Arc<dyn LoadPolicy>)
            });
    }
}

/// The stock registry plus the third party's types.
fn registry() -> sc_backend_api::Registry {
    let mut registry = sc_proxy::builtins();
    fixed::register(&mut registry);
    registry
}

fn yaml(servers: &[SocketAddr], id_prefix: &str) -> String {
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "backend_provider:\n  name: third party\n  type: fixed\n  spec:\n    servers: [{}]\n    id_prefix: {id_prefix}\n\
         load_policy:\n  type: FIRST_AVAILABLE\n\
         store:\n  type: memory\nserver:\n  listen_addr: 127.0.0.1:0\ncontrol:\n  listen_addr: 127.0.0.1:0\n",
        servers.join(", ")
    )
}

fn validate(yaml: &str) -> Result<sc_proxy::Validated, sc_proxy::ConfigError> {
    ProxyConfig::from_yaml(yaml)?.validate(&registry())
}

/// Serves the proxy configured by the file at `path` (which reloads read), until dropped.
async fn serve(path: &Path) -> (SocketAddr, SocketAddr, oneshot::Sender<()>) {
    let config = ProxyConfig::load(Some(path))
        .unwrap()
        .validate(&registry())
        .unwrap();
    let proxy = Proxy::bind(config)
        .await
        .unwrap()
        .with_config_file(Some(path.to_owned()), registry());
    let (grpc, control) = (proxy.grpc_addr().unwrap(), proxy.control_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(proxy.serve(async move {
        let _ = stopped.await;
    }));
    (grpc, control, stop)
}

async fn control_json(method: reqwest::Method, url: String) -> serde_json::Value {
    let response = reqwest::Client::new()
        .request(method, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_type_registered_from_outside_is_built_served_and_reloaded() {
    let (a, _) = spawn_backend("third-a").await;
    let (b, _) = spawn_backend("third-b").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, yaml(&[a, b], "one")).unwrap();
    let (grpc, control, _stop) = serve(&path).await;

    let listed = control_json(
        reqwest::Method::GET,
        format!("http://{control}/control/backends"),
    )
    .await;
    assert_eq!(listed["policy"], "FIRST_AVAILABLE", "{listed}");
    let ids: Vec<(&str, &str)> = listed["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap(), b["provider"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [("one-0", "third party"), ("one-1", "third party")],
        "{listed}"
    );

    // The custom policy places every new session on the first server.
    let mut c = client(grpc).await;
    for i in 1..=3 {
        let session = format!("00000000-0000-4000-8000-00000000000{i}");
        assert_eq!(backend_of(&mut c, &session, "u").await, "third-a");
    }

    // A reload builds the new file with the same registry: the custom type again.
    std::fs::write(&path, yaml(&[b], "two")).unwrap();
    let report = control_json(
        reqwest::Method::POST,
        format!("http://{control}/control/reload"),
    )
    .await;
    assert_eq!(
        report["backends_added"],
        serde_json::json!(["two-0"]),
        "{report}"
    );
    assert_eq!(
        report["backends_removed"],
        serde_json::json!(["one-0", "one-1"]),
        "{report}"
    );
    let session = "00000000-0000-4000-8000-000000000009";
    assert_eq!(backend_of(&mut c, session, "u").await, "third-b");
}

#[test]
fn unknown_types_and_policies_list_the_registered_ones_custom_included() {
    let addr: SocketAddr = "127.0.0.1:15002".parse().unwrap();
    let good = yaml(&[addr], "x");
    let v = validate(&good).unwrap();
    assert_eq!(v.provider.name(), "third party");
    assert_eq!(v.policy.name(), "FIRST_AVAILABLE");

    let e = validate(&good.replace("type: fixed", "type: KUBERNETES"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("backend_provider.type 'KUBERNETES'")
            && e.contains("use one of DNS, FIXED, LAUNCH, PREDEFINED"),
        "{e}"
    );
    let e = validate(&good.replace("type: FIRST_AVAILABLE", "type: FASTEST"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("load_policy.type 'FASTEST'") && e.contains("FIRST_AVAILABLE"),
        "{e}"
    );
    // The stock registry alone does not know the custom type.
    let e = ProxyConfig::from_yaml(&good)
        .unwrap()
        .validate(&sc_proxy::builtins())
        .unwrap_err()
        .to_string();
    assert!(e.contains("'fixed'") && !e.contains("FIXED,"), "{e}");

    // The custom spec's errors name their key.
    let e = validate(&good.replace("id_prefix:", "id_prefx:"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("backend_provider.spec") && e.contains("id_prefx"),
        "{e}"
    );
    let e = validate(&good.replace("\"127.0.0.1:15002\"", "\"bad host:1\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("backend_provider.spec.servers[0]"), "{e}");
}
