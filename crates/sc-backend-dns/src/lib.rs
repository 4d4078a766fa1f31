//! The DNS backend provider: Spark Connect servers discovered from DNS records, as they run
//! behind a Kubernetes headless Service (a StatefulSet's pods) or under Consul.
//!
//! ```yaml
//! backend_provider:
//!   name: spark pods
//!   type: DNS
//!   spec:
//!     name: spark.analytics.svc.cluster.local   # its A/AAAA records are the servers
//!     port: 15002
//!     refresh_interval: 10s                     # default
//!     # nameserver: 10.96.0.10:53               # default: /etc/resolv.conf
//!     # timeout: 2s                             # one DNS query
//!     # tls: {ca_file: /etc/spark/ca.pem}        # https to every server
//!     # token_env: SPARK_CONNECT_TOKEN          # the servers' pre-shared token
//! ```
//!
//! A name that starts with `_` is looked up as SRV records (`_spark-connect._tcp.spark.service.consul`):
//! each record's target is resolved, on the record's port, and `port` is not given.
//!
//! Each refresh resolves the name again with [hickory-resolver](hickory_resolver). Every
//! address is one backend with the id `<name>@<ip>:<port>` (`[ip]` for IPv6), stable for as
//! long as the address is listed. [`changed`](BackendProvider::changed) completes when the set
//! of addresses differs from the one last [`list`](BackendProvider::list)ed: the router then
//! lists again, new addresses take new sessions and vanished ones drain (their sessions carry
//! on while the server answers).
//!
//! While DNS fails (a timeout, SERVFAIL, NXDOMAIN, no records, the nameserver down) the last
//! known backends stay listed, so the proxy keeps serving and stays ready; a warning is logged
//! once per streak of failures, and [`status`](BackendProvider::status) counts the failed
//! refreshes and carries the last error (the proxy exports them as
//! `sc_proxy_provider_refresh_failures_total`).
//!
//! # When the name is first resolved
//!
//! Building the provider checks the spec and reads `/etc/resolv.conf` (when no `nameserver`
//! is given), but sends no query and starts no task. The first resolution happens when the
//! provider is first listed, i.e. when the proxy starts or a reload brings the provider in. If
//! it fails, `list` fails with the reason: the proxy refuses to start (or the reload is refused
//! and the old configuration stays in force) with an error naming the DNS name and what the
//! nameserver said, rather than serving with no backend and a misspelt name, or draining every
//! backend of the old configuration because of a typo or an outage at reload time. Once a
//! first answer was had, failures only keep the last list.
//!
//! Refreshes run inside [`changed`](BackendProvider::changed) (and in `list` when the last one
//! is older than `refresh_interval`): the provider owns no task, so nothing runs once it is
//! dropped or no longer watched, and a provider kept alive only by draining sessions after a
//! reload sends no queries.
//!
//! [`register`] adds the type to a proxy's [`Registry`]; the crate uses nothing of the proxy
//! but `sc-backend-api`'s public API.

#![forbid(unsafe_code)]

mod error;
mod resolve;
mod spec;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
#[cfg(test)]
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use http::Uri;
use sc_backend_api::{
    Backend, BackendId, BackendProvider, BackendTls, ProviderError, ProviderStatus, Registry, Spec,
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use error::DnsError;
pub use spec::{DnsSpec, MIN_REFRESH_INTERVAL, TlsSpec};

use resolve::Found;
use spec::Checked;

/// The provider type's name in configuration (`backend_provider.type`).
pub const TYPE: &str = "DNS";

/// Registers the DNS type with [`factory`].
pub fn register(registry: &mut Registry) {
    registry.register_provider(TYPE, factory);
}

/// Builds a DNS provider from its configured name and spec. Errors name the offending key
/// (`backend_provider.spec.port: ...`).
pub fn factory(name: &str, spec: &Spec) -> Result<Arc<dyn BackendProvider>, ProviderError> {
    if spec.is_empty() {
        return Err(ProviderError::Config(format!(
            "{}: the DNS provider needs at least `name` (the DNS name of the Spark Connect servers) and `port`",
            spec.key()
        )));
    }
    let parsed: DnsSpec = spec.parse()?;
    Ok(Arc::new(DnsProvider::build(name, &parsed, spec.key())?))
}

/// A provider whose backends are the addresses a DNS name resolves to.
pub struct DnsProvider {
    name: String,
    settings: Checked,
    resolver: TokioResolver,
    state: Mutex<State>,
    /// One resolution at a time; callers that waited for it find it done.
    refreshing: tokio::sync::Mutex<()>,
}

/// What the provider knows from its last resolutions.
#[derive(Debug, Default)]
struct State {
    /// The backends of the last successful resolution; `None` until one succeeded.
    backends: Option<Vec<Backend>>,
    /// Bumped whenever `backends` changes.
    generation: u64,
    /// The generation `list` last returned.
    listed: Option<u64>,
    /// When the last resolution (successful or not) ended.
    last_attempt: Option<Instant>,
    /// Failed resolutions since the provider was built.
    failures: u64,
    /// The last failure, while failing.
    last_error: Option<DnsError>,
}

impl fmt::Debug for DnsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsProvider")
            .field("name", &self.name)
            .field("dns_name", &self.settings.display_name)
            .field("query", &self.settings.query)
            .field("refresh_interval", &self.settings.refresh_interval)
            .field("nameserver", &self.settings.nameserver)
            .finish_non_exhaustive()
    }
}

// === impl DnsProvider ===

impl DnsProvider {
    /// Builds the provider from a spec (errors name `spec.<field>`). Sends no query and spawns
    /// nothing; call inside or outside a tokio runtime.
    pub fn new(name: impl Into<String>, spec: &DnsSpec) -> Result<Self, ProviderError> {
        Self::build(name, spec, "spec")
    }

    fn build(name: impl Into<String>, spec: &DnsSpec, key: &str) -> Result<Self, ProviderError> {
        let settings = spec.check(key)?;
        let resolver = resolve::resolver(&settings)
            .map_err(|e| ProviderError::Config(format!("{key}: {e}")))?;
        Ok(DnsProvider {
            name: name.into(),
            settings,
            resolver,
            state: Mutex::new(State::default()),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The DNS name resolved, as configured (without a final dot).
    pub fn dns_name(&self) -> &str {
        &self.settings.display_name
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves the name now unless `skip` says the state no longer needs it (another caller
    /// resolved while this one waited for its turn).
    async fn refresh_unless(&self, skip: impl Fn(&State) -> bool) {
        let _turn = self.refreshing.lock().await;
        if skip(&self.state()) {
            return;
        }
        let result = resolve::resolve(&self.resolver, &self.settings.query).await;
        let mut state = self.state();
        state.last_attempt = Some(Instant::now());
        match result {
            Ok(found) => {
                let backends: Vec<Backend> = found.iter().filter_map(|f| self.backend(f)).collect();
                if let Some(error) = state.last_error.take() {
                    info!(provider = %self.name, dns_name = %self.settings.display_name, backends = backends.len(), failures = state.failures, last_error = %error, "DNS name resolves again");
                }
                if state.backends.as_ref() != Some(&backends) {
                    let old = state.backends.as_deref().unwrap_or_default();
                    let added = ids_missing_from(&backends, old);
                    let removed = ids_missing_from(old, &backends);
                    info!(provider = %self.name, dns_name = %self.settings.display_name, ?added, ?removed, backends = backends.len(), "DNS records changed");
                    state.backends = Some(backends);
                    state.generation += 1;
                }
            }
            Err(error) => {
                state.failures += 1;
                let kept = state.backends.as_ref().map_or(0, Vec::len);
                if state.last_error.is_none() {
                    warn!(provider = %self.name, dns_name = %self.settings.display_name, %error, kept, "DNS resolution failed; the last known backends stay in force until it succeeds again");
                } else {
                    debug!(provider = %self.name, dns_name = %self.settings.display_name, %error, failures = state.failures, "DNS resolution still failing");
                }
                state.last_error = Some(error);
            }
        }
    }

    /// The backend for one address found (`None` if it makes no valid URI, which a socket
    /// address cannot fail to).
    fn backend(&self, found: &Found) -> Option<Backend> {
        let id = BackendId::new(format!("{}@{}", self.settings.display_name, found.addr));
        let scheme = if self.settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let endpoint = match format!("{scheme}://{}", found.addr).parse::<Uri>() {
            Ok(endpoint) => endpoint,
            Err(error) => {
                warn!(provider = %self.name, address = %found.addr, %error, "address left out: it makes no valid endpoint");
                return None;
            }
        };
        let mut backend = Backend::new(id, endpoint);
        if let Some(tls) = &self.settings.tls {
            backend = backend.with_tls(BackendTls {
                ca_file: tls.ca_file.clone(),
                server_name: Some(
                    tls.server_name
                        .clone()
                        .unwrap_or_else(|| found.host.clone()),
                ),
            });
        }
        if let Some(token) = &self.settings.token {
            backend = backend.with_auth_token(token.clone());
        }
        Some(backend)
    }

    fn stale(&self, state: &State) -> bool {
        state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.settings.refresh_interval)
    }
}

/// The ids of `backends` that `other` lacks.
fn ids_missing_from(backends: &[Backend], other: &[Backend]) -> Vec<String> {
    backends
        .iter()
        .filter(|b| !other.iter().any(|o| o.id == b.id))
        .map(|b| b.id.to_string())
        .collect()
}

#[async_trait]
impl BackendProvider for DnsProvider {
    fn name(&self) -> &str {
        &self.name
    }

    /// The backends of the last successful resolution. Resolves first when none succeeded yet
    /// or the last one is older than `refresh_interval`; fails only while no resolution ever
    /// succeeded.
    async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
        let needed = {
            let state = self.state();
            state.backends.is_none() || self.stale(&state)
        };
        if needed {
            self.refresh_unless(|state| state.backends.is_some() && !self.stale(state))
                .await;
        }
        let mut state = self.state();
        let generation = state.generation;
        match &state.backends {
            Some(backends) => {
                let backends = backends.clone();
                state.listed = Some(generation);
                Ok(backends)
            }
            None => Err(ProviderError::Other(format!(
                "DNS provider '{}': {}; check `name`{} and that the nameserver answers",
                self.name,
                state.last_error.as_ref().map_or_else(
                    || format!("'{}' was not resolved", self.settings.display_name),
                    ToString::to_string
                ),
                if self.settings.nameserver.is_some() {
                    " and `nameserver`"
                } else {
                    ""
                },
            ))),
        }
    }

    /// Resolves the name every `refresh_interval` until the set of backends differs from the
    /// one last listed.
    async fn changed(&self) {
        loop {
            let due = {
                let state = self.state();
                if state.backends.is_some() && state.listed != Some(state.generation) {
                    return;
                }
                state
                    .last_attempt
                    .map_or_else(Instant::now, |at| at + self.settings.refresh_interval)
            };
            tokio::time::sleep_until(due).await;
            self.refresh_unless(|state| {
                state
                    .last_attempt
                    .is_some_and(|at| at + self.settings.refresh_interval > Instant::now())
            })
            .await;
        }
    }

    fn status(&self) -> ProviderStatus {
        let state = self.state();
        ProviderStatus::new(
            state.failures,
            state.last_error.as_ref().map(ToString::to_string),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn build(spec: serde_json::Value) -> Result<Arc<dyn BackendProvider>, String> {
        let mut registry = Registry::new();
        register(&mut registry);
        registry
            .build_provider(
                "dns",
                "pods",
                &Spec::from_json("backend_provider.spec", spec),
            )
            .map_err(|e| e.to_string())
    }

    fn error(spec: serde_json::Value) -> String {
        build(spec.clone())
            .err()
            .unwrap_or_else(|| panic!("{spec} was accepted"))
    }

    #[test]
    fn spec_errors_name_the_key_and_the_fix() {
        use serde_json::json;
        let cases = [
            (
                json!(null),
                "backend_provider.spec: the DNS provider needs at least `name`",
            ),
            (
                json!({"port": 15002}),
                "backend_provider.spec: missing field `name`",
            ),
            (
                json!({"name": "spark.test"}),
                "backend_provider.spec.port: is missing",
            ),
            (
                json!({"name": "spark.test", "port": "x"}),
                "backend_provider.spec.port: invalid type",
            ),
            (
                json!({"name": "spark.test", "port": 70000}),
                "backend_provider.spec.port: invalid value",
            ),
            (
                json!({"name": "spark.test", "port": 0}),
                "backend_provider.spec.port: must be between 1 and 65535",
            ),
            (
                json!({"name": "_spark._tcp.test", "port": 1}),
                "backend_provider.spec.port: '_spark._tcp.test' is an SRV name",
            ),
            (
                json!({"name": "", "port": 1}),
                "backend_provider.spec.name: is empty",
            ),
            (
                json!({"name": "10.0.0.5", "port": 1}),
                "backend_provider.spec.name: '10.0.0.5' is an IP address",
            ),
            (
                json!({"name": "a..b", "port": 1}),
                "backend_provider.spec.name: 'a..b' is not a valid DNS name",
            ),
            (
                json!({"name": "spark.test", "port": 1, "prot": 2}),
                "backend_provider.spec.prot: unknown field `prot`",
            ),
            (
                json!({"name": "spark.test", "port": 1, "refresh_interval": "10"}),
                "backend_provider.spec.refresh_interval:",
            ),
            (
                json!({"name": "spark.test", "port": 1, "refresh_interval": "5ms"}),
                "backend_provider.spec.refresh_interval: 5ms is too short",
            ),
            (
                json!({"name": "spark.test", "port": 1, "timeout": "0s"}),
                "backend_provider.spec.timeout: must be longer than 0s",
            ),
            (
                json!({"name": "spark.test", "port": 1, "nameserver": "dns.internal:53"}),
                "backend_provider.spec.nameserver: 'dns.internal:53' is not an IP address",
            ),
            (
                json!({"name": "spark.test", "port": 1, "tls": {"ca": "x"}}),
                "backend_provider.spec.tls.ca: unknown field `ca`",
            ),
            (
                json!({"name": "spark.test", "port": 1, "tls": {"ca_file": "/nonexistent/ca.pem"}}),
                "backend_provider.spec.tls.ca_file: /nonexistent/ca.pem",
            ),
            (
                json!({"name": "spark.test", "port": 1, "token_env": "SC_DNS_TEST_UNSET_TOKEN"}),
                "backend_provider.spec.token_env: environment variable SC_DNS_TEST_UNSET_TOKEN is not set",
            ),
            (
                json!({"name": "spark.test", "port": 1, "token_env": "X", "token_file": "/y"}),
                "backend_provider.spec.token_file: and token_env are both set",
            ),
        ];
        for (spec, want) in cases {
            let e = error(spec.clone());
            assert!(e.contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn a_valid_spec_builds_with_its_defaults_and_sends_nothing() {
        let provider = DnsProvider::new(
            "pods",
            &DnsSpec {
                nameserver: Some("127.0.0.1:9".into()),
                ..DnsSpec::new("spark.analytics.svc.cluster.local.", 15002)
            },
        )
        .unwrap();
        assert_eq!(provider.dns_name(), "spark.analytics.svc.cluster.local");
        assert_eq!(provider.settings.refresh_interval, Duration::from_secs(10));
        assert_eq!(provider.status(), ProviderStatus::default());
        assert!(!provider.can_start());
        // Built outside any runtime (as the proxy validates its configuration): no task.
        let built = build(serde_json::json!({
            "name": "_spark._tcp.consul", "nameserver": "127.0.0.1:8600", "refresh_interval": "1s",
            "tls": {}, "timeout": "2s",
        }))
        .unwrap();
        assert_eq!(built.name(), "pods");
    }

    #[test]
    fn backends_carry_tls_and_the_token() {
        let provider = DnsProvider::new(
            "pods",
            &DnsSpec {
                nameserver: Some("127.0.0.1:9".into()),
                tls: Some(TlsSpec {
                    ca_file: None,
                    server_name: Some("spark.internal".into()),
                }),
                token_env: Some("SC_DNS_TEST_TOKEN".into()),
                ..DnsSpec::new("spark.test", 15002)
            },
        );
        // The variable is unset in tests: the error names it.
        let e = provider.unwrap_err().to_string();
        assert!(e.contains("SC_DNS_TEST_TOKEN"), "{e}");
        let dir = std::env::temp_dir().join(format!("sc-dns-token-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let provider = DnsProvider::new(
            "pods",
            &DnsSpec {
                nameserver: Some("127.0.0.1:9".into()),
                tls: Some(TlsSpec::default()),
                token_file: Some(dir.clone()),
                ..DnsSpec::new("spark.test", 15002)
            },
        )
        .unwrap();
        let _ = std::fs::remove_file(&dir);
        let backend = provider
            .backend(&Found {
                addr: "10.0.0.5:15002".parse().unwrap(),
                host: "spark.test".into(),
            })
            .unwrap();
        assert_eq!(backend.id.as_str(), "spark.test@10.0.0.5:15002");
        assert_eq!(backend.endpoint.to_string(), "https://10.0.0.5:15002/");
        assert_eq!(backend.auth_token.as_deref(), Some("s3cret"));
        assert_eq!(
            backend.tls.unwrap().server_name.as_deref(),
            Some("spark.test")
        );
    }
}
