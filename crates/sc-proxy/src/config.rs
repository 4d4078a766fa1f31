//! The proxy's configuration: one serde tree, read from YAML and `SC_*` environment variables,
//! validated once at start-up.
//!
//! The Go spark-connect-proxy's file format is accepted unchanged:
//!
//! ```yaml
//! backend_provider:
//!   name: manual spark
//!   type: PREDEFINED
//!   spec:
//!     endpoints:
//!       - url: localhost:15002
//! log_level: debug
//! load_policy:
//!   type: ROUND_ROBIN        # `name` is accepted too
//!   params:
//!     max_size: "5"          # MAX_SESSIONS only; a string or a number
//! server:
//!   listen_addr: "localhost:8080"
//! ```
//!
//! Beyond it: `control.listen_addr` (default `127.0.0.1:8081`), `control.public_host`,
//! `server.shutdown_grace`, the `router` section ([`sc_router::RouterSettings`]), `auth`,
//! `audit`, and `store` ([`sc_store::StoreSettings`]). Without a `backend_provider`, the LAUNCH
//! provider starts Spark Connect servers on demand, one per user.
//! Environment variables override the file: `SC_LOG_LEVEL=info`,
//! `SC_SERVER__LISTEN_ADDR=0.0.0.0:8080` (`__` separates nested keys).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format as _, Yaml};
use sc_backend_api::{BackendProvider, LoadPolicy, Registry, Spec};
use sc_router::RouterSettings;
use serde::Deserialize;

/// The registry of the stock proxy: the provider types PREDEFINED, LAUNCH and DNS and the built-in
/// load policies, registered through the same API a provider crate of your own uses. A custom
/// proxy binary starts from it and registers more (see `docs/providers.md`).
pub fn builtins() -> Registry {
    let mut registry = Registry::new();
    sc_backend_predefined::register(&mut registry);
    sc_backend_launch::register(&mut registry);
    sc_backend_dns::register(&mut registry);
    sc_router::policy::register(&mut registry);
    registry
}

/// A configuration that passed [`ProxyConfig::validate`], with what it describes built once.
#[derive(Clone)]
pub struct Validated {
    /// The configuration itself.
    pub config: ProxyConfig,
    /// The backend provider.
    pub provider: Arc<dyn BackendProvider>,
    /// The load policy.
    pub policy: Arc<dyn LoadPolicy>,
    /// The authenticator, or `None` when authentication is off.
    pub authenticator: Option<Arc<sc_auth::Authenticator>>,
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validated")
            .field("config", &self.config)
            .field("provider", &self.provider.name())
            .field("policy", &self.policy.name())
            .field("authenticator", &self.authenticator.is_some())
            .finish()
    }
}

/// A configuration problem, naming the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or does not fit the schema.
    #[error("configuration error: {0}")]
    Load(String),
    /// A value is out of range or inconsistent.
    #[error("configuration error: {0}")]
    Invalid(String),
}

/// Every setting of the proxy.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Where backends come from.
    #[serde(default)]
    pub backend_provider: ProviderConfig,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// How new sessions are spread over backends.
    #[serde(default)]
    pub load_policy: PolicyConfig,
    /// The gRPC (Spark Connect) listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// The HTTP control plane listener.
    #[serde(default)]
    pub control: ControlConfig,
    /// Forwarding settings.
    #[serde(default)]
    pub router: RouterSettings,
    /// Authentication of callers on both ports. Without it the proxy only listens on loopback
    /// addresses (set `auth.anonymous: true` to expose it without authentication).
    #[serde(default)]
    pub auth: sc_auth::AuthSettings,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Where the session table is kept: `embedded` (a file, the default), `redis` (shared by
    /// replicas) or `memory`.
    #[serde(default)]
    pub store: sc_store::StoreSettings,
    /// Traces over OpenTelemetry (off unless `telemetry.otlp.endpoint` is set).
    #[serde(default)]
    pub telemetry: crate::telemetry::TelemetryConfig,
}

/// `audit`: where security events go (session create/delete, authentication failures,
/// permission denials), one JSON object per line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Append audit lines to this file; without it they go to the log (stderr) only.
    pub file: Option<PathBuf>,
}

/// The log level.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Per-call details.
    Debug,
    /// Lifecycle events (default).
    #[default]
    Info,
    /// Problems only.
    Warn,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The level as a tracing filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `backend_provider`: a provider type and its `spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Free text, shown in logs and the control plane.
    #[serde(default = "default_provider_name")]
    pub name: String,
    /// The provider type: `LAUNCH` (start Spark Connect servers on this host on demand; the
    /// default), `PREDEFINED` (a static list), `DNS` (the addresses a DNS name resolves to), or
    /// one a custom binary registered.
    #[serde(rename = "type")]
    pub kind: String,
    /// The type's own settings.
    #[serde(default)]
    pub spec: Option<figment::value::Value>,
}

fn default_provider_name() -> String {
    "default".into()
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            name: "local spark".into(),
            kind: "LAUNCH".into(),
            spec: None,
        }
    }
}

/// `load_policy`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy, as registered (`ROUND_ROBIN`, `ONE_TO_ONE`, `MAX_SESSIONS`, `LEAST_SESSIONS`,
    /// `ON_DEMAND`, or one a custom binary registered). Without it: the provider's preferred
    /// policy (ON_DEMAND for LAUNCH), else ROUND_ROBIN.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The same, as the Go proxy's code reads it.
    #[serde(default)]
    pub name: Option<String>,
    /// The policy's own parameters (MAX_SESSIONS: `max_size`), read by the policy's factory.
    #[serde(default)]
    pub params: Option<figment::value::Value>,
}

/// `server`: the gRPC listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port` to listen on.
    pub listen_addr: String,
    /// TLS on the gRPC port.
    pub tls: TlsConfig,
    /// How long running calls may go on after a shutdown signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A connection from which nothing has been received for this long is closed (half-open
    /// or slow-loris connections). Honest HTTP/2 clients answer the proxy's keep-alive pings
    /// (`router.keepalive_interval`), so this must be longer than that interval.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Threads serving gRPC connections, each with its own single-threaded runtime and its own
    /// connection to every backend, so a call never changes threads. 0: one per CPU.
    pub worker_threads: usize,
    /// The Go spark-connect-proxy's place for the control plane's address; the same as
    /// `control.listen_addr`.
    pub control_api: Option<ControlApiConfig>,
}

/// `server.control_api` (the Go spark-connect-proxy's key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlApiConfig {
    /// `host:port` of the control plane.
    pub listen_addr: String,
}

impl ServerConfig {
    /// The number of gRPC worker threads: `worker_threads`, or one per CPU.
    pub fn threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen_addr: "127.0.0.1:8080".into(),
            tls: TlsConfig::default(),
            shutdown_grace: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            worker_threads: 0,
            control_api: None,
        }
    }
}

/// `server.tls`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve TLS.
    pub enabled: bool,
    /// PEM certificate chain.
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// Accepted for compatibility with the Go proxy's files; the certificate decides the name.
    pub server_name: Option<String>,
    /// PEM bundle of CAs whose client certificates are accepted (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: refuse connections without a client certificate.
    pub require_client_cert: bool,
}

/// `control`: the HTTP control plane listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// `host:port` to listen on.
    pub listen_addr: String,
    /// Host name put in the connection strings the control plane hands out; the request's
    /// `Host` header when unset.
    pub public_host: Option<String>,
    /// Serve the control plane over TLS too, with `server.tls`'s certificate (and client CA).
    pub tls: bool,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            listen_addr: "127.0.0.1:8081".into(),
            public_host: None,
            tls: false,
        }
    }
}

/// The top-level keys, so unrelated `SC_*` variables (e.g. a test's) are not taken as settings.
const SECTIONS: [&str; 10] = [
    "telemetry",
    "audit",
    "store",
    "backend_provider",
    "log_level",
    "load_policy",
    "server",
    "control",
    "router",
    "auth",
];

impl ProxyConfig {
    /// Reads the file (when given), then `SC_*` environment variables. The result is checked and
    /// built by [`ProxyConfig::validate`].
    pub fn load(file: Option<&Path>) -> Result<ProxyConfig, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Yaml::file_exact(path));
        }
        let env = Env::prefixed("SC_").split("__").filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            SECTIONS
                .iter()
                .any(|s| key == *s || key.starts_with(&format!("{s}.")))
        });
        Self::from_figment(figment.merge(env))
    }

    /// Reads a YAML document (for tests and embedding). Like [`ProxyConfig::load`], it only
    /// reads: [`ProxyConfig::validate`] checks and builds.
    pub fn from_yaml(yaml: &str) -> Result<ProxyConfig, ConfigError> {
        Self::from_figment(Figment::new().merge(Yaml::string(yaml)))
    }

    fn from_figment(figment: Figment) -> Result<ProxyConfig, ConfigError> {
        let mut config: ProxyConfig = figment.extract().map_err(|errors| {
            let all: Vec<String> = errors.into_iter().map(|e| describe(&e)).collect();
            ConfigError::Load(all.join("; "))
        })?;
        config.apply_go_forms()?;
        Ok(config)
    }

    /// The Go spark-connect-proxy's spellings: `server.control_api.listen_addr` for the control
    /// plane's address, and `:port` for a port on every interface.
    fn apply_go_forms(&mut self) -> Result<(), ConfigError> {
        if let Some(api) = self.server.control_api.take() {
            let default = ControlConfig::default().listen_addr;
            if self.control.listen_addr != default && self.control.listen_addr != api.listen_addr {
                return Err(ConfigError::Invalid(format!(
                    "control.listen_addr '{}' and server.control_api.listen_addr '{}' disagree; keep one of them",
                    self.control.listen_addr, api.listen_addr
                )));
            }
            self.control.listen_addr = api.listen_addr;
        }
        for addr in [&mut self.server.listen_addr, &mut self.control.listen_addr] {
            if addr.starts_with(':') {
                *addr = format!("0.0.0.0{addr}");
            }
        }
        Ok(())
    }

    /// Checks everything, and builds once what the configuration describes: the provider (by
    /// its registered type), the load policy and the authenticator. Serving and reloading use
    /// what this returns; nothing is built twice. The error names the key.
    pub fn validate(self, registry: &Registry) -> Result<Validated, ConfigError> {
        self.check()?;
        let provider = self.provider(registry)?;
        let policy = self.policy(registry, provider.as_ref())?;
        let authenticator = self.authenticator()?;
        Ok(Validated {
            config: self,
            provider,
            policy,
            authenticator,
        })
    }

    /// The checks that need nothing built.
    fn check(&self) -> Result<(), ConfigError> {
        self.router.validate().map_err(ConfigError::Invalid)?;
        self.telemetry.check()?;
        check_addr("server.listen_addr", &self.server.listen_addr)?;
        check_addr("control.listen_addr", &self.control.listen_addr)?;
        if self.server.worker_threads > 1024 {
            return Err(ConfigError::Invalid(format!(
                "server.worker_threads is {}; use 0 (one per CPU) or a number up to 1024",
                self.server.worker_threads
            )));
        }
        if !self.auth.enabled() {
            for (key, addr) in [
                ("server.listen_addr", &self.server.listen_addr),
                ("control.listen_addr", &self.control.listen_addr),
            ] {
                if !is_loopback(addr) {
                    return Err(ConfigError::Invalid(format!(
                        "{key} '{addr}' is reachable from other hosts but no authentication is configured; configure auth.tokens, auth.jwt or auth.mtls, or set auth.anonymous: true to allow anyone who can reach it"
                    )));
                }
            }
        }
        if self.server.idle_timeout <= self.router.keepalive_interval {
            return Err(ConfigError::Invalid(format!(
                "server.idle_timeout ({:?}) must be longer than router.keepalive_interval ({:?}), or honest idle clients would be cut",
                self.server.idle_timeout, self.router.keepalive_interval
            )));
        }
        let tls = &self.server.tls;
        if self.auth.mtls.is_some() && tls.client_ca_file.is_none() {
            return Err(ConfigError::Invalid(
                "auth.mtls needs server.tls.enabled with server.tls.client_ca_file (the CAs of accepted client certificates)".into(),
            ));
        }
        if self.control.tls && !tls.enabled {
            return Err(ConfigError::Invalid(
                "control.tls uses server.tls's certificate: set server.tls.enabled with cert_file and key_file".into(),
            ));
        }
        if tls.enabled && (tls.cert_file.is_none() || tls.key_file.is_none()) {
            return Err(ConfigError::Invalid(
                "server.tls.enabled is true but server.tls.cert_file or server.tls.key_file is missing; give both PEM files".into(),
            ));
        }
        Ok(())
    }

    /// The configured backend provider, built by its registered type's factory.
    fn provider(&self, registry: &Registry) -> Result<Arc<dyn BackendProvider>, ConfigError> {
        let p = &self.backend_provider;
        let spec = match &p.spec {
            Some(value) => Spec::from_value("backend_provider.spec", value),
            None => Spec::empty("backend_provider.spec"),
        };
        if !registry.has_provider(&p.kind) {
            return Err(ConfigError::Invalid(format!(
                "backend_provider.type '{}' is not known; use one of {}",
                p.kind,
                registry.provider_types().join(", ")
            )));
        }
        registry
            .build_provider(&p.kind, &p.name, &spec)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The configured load policy, built by its registered factory. Without one, the provider's
    /// preferred policy (ON_DEMAND for LAUNCH), else ROUND_ROBIN.
    fn policy(
        &self,
        registry: &Registry,
        provider: &dyn BackendProvider,
    ) -> Result<Arc<dyn LoadPolicy>, ConfigError> {
        let lp = &self.load_policy;
        let (key, name) = match (&lp.kind, &lp.name) {
            (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
                return Err(ConfigError::Invalid(format!(
                    "load_policy.type '{a}' and load_policy.name '{b}' disagree; set one of them"
                )));
            }
            (Some(a), _) => ("load_policy.type", a.clone()),
            (None, Some(a)) => ("load_policy.name", a.clone()),
            (None, None) => (
                "load_policy.type",
                provider
                    .default_policy()
                    .unwrap_or("ROUND_ROBIN")
                    .to_owned(),
            ),
        };
        let params = match &lp.params {
            Some(value) => Spec::from_value("load_policy.params", value),
            None => Spec::empty("load_policy.params"),
        };
        if !registry
            .policy_names()
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&name))
        {
            return Err(ConfigError::Invalid(format!(
                "{key} '{name}' is not known; use one of {}",
                registry.policy_names().join(", ")
            )));
        }
        registry
            .build_policy(&name, &params)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

/// Whether `host:port` names only loopback addresses.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl ProxyConfig {
    /// The configured authenticator, or `None` when authentication is off.
    fn authenticator(&self) -> Result<Option<Arc<sc_auth::Authenticator>>, ConfigError> {
        if !self.auth.enabled() {
            return Ok(None);
        }
        sc_auth::Authenticator::new(&self.auth)
            .map(|a| Some(Arc::new(a)))
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

fn check_addr(key: &str, addr: &str) -> Result<(), ConfigError> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{key} '{addr}' is not host:port; write e.g. 0.0.0.0:8080 or localhost:8080"
        )))
    }
}

/// A figment error as one line that names the key.
fn describe(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let source = error
        .metadata
        .as_ref()
        .and_then(|m| m.source.as_ref())
        .map(|s| format!(" (from {s})"))
        .unwrap_or_default();
    if key.is_empty() {
        format!("{}{source}", error.kind)
    } else {
        format!("key '{key}': {}{source}", error.kind)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Reads and validates with the stock registry.
    fn valid(yaml: &str) -> Validated {
        ProxyConfig::from_yaml(yaml)
            .unwrap()
            .validate(&builtins())
            .unwrap()
    }

    #[test]
    fn go_proxy_format_is_accepted() {
        let v = valid(
            r#"
backend_provider:
  name: manual spark
  type: PREDEFINED
  spec:
    endpoints:
      - url: localhost:15002
      - url: localhost:15003
log_level: debug
load_policy:
  type: MAX_SESSIONS
  params:
    max_size: "5"
server:
  listen_addr: "localhost:8080"
  tls:
    enabled: false
    cert_file: "certs/server.crt"
    key_file: "certs/server.key"
    server_name: "example.com"
"#,
        );
        assert_eq!(v.config.log_level, LogLevel::Debug);
        assert_eq!(v.policy.name(), "MAX_SESSIONS");
        assert_eq!(v.config.server.listen_addr, "localhost:8080");
        assert_eq!(v.provider.name(), "manual spark");

        // The Go proxy's docker configuration: `:port` and `server.control_api`. Listening on
        // every interface still needs authentication (or an explicit `auth.anonymous`).
        let go_docker = "backend_provider:\n  name: docker spark clusters\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: spark1:15002\nload_policy:\n  type: ROUND_ROBIN\nserver:\n  listen_addr: \":8080\"\n  control_api:\n    listen_addr: \"0.0.0.0:8081\"\n  tls:\n    enabled: false\n";
        let e = err(go_docker);
        assert!(
            e.contains("server.listen_addr '0.0.0.0:8080'") && e.contains("auth"),
            "{e}"
        );
        let c = valid(&format!("{go_docker}auth:\n  anonymous: true\n")).config;
        assert_eq!(c.server.listen_addr, "0.0.0.0:8080");
        assert_eq!(c.control.listen_addr, "0.0.0.0:8081");
        let e = err(
            "control:\n  listen_addr: 127.0.0.1:9001\nserver:\n  control_api:\n    listen_addr: 127.0.0.1:9002\n",
        );
        assert!(e.contains("disagree"), "{e}");
    }

    #[test]
    fn exposing_without_authentication_needs_an_explicit_choice() {
        let e = err("server:\n  listen_addr: 0.0.0.0:8080");
        assert!(e.contains("auth.anonymous"), "{e}");
        let v = valid("server:\n  listen_addr: 0.0.0.0:8080\nauth:\n  anonymous: true");
        assert!(v.authenticator.unwrap().allows_anonymous());
        valid("server:\n  listen_addr: '[::1]:8080'\ncontrol:\n  listen_addr: localhost:1");
        let v = valid(
            "server:\n  listen_addr: 0.0.0.0:8080\ncontrol:\n  listen_addr: 0.0.0.0:8081\nauth:\n  tokens:\n    - token: s3cret\n      user: alice",
        );
        assert!(v.authenticator.is_some());
        let e = err("auth:\n  tokens:\n    - user: alice");
        assert!(e.contains("auth.tokens[0]"), "{e}");
        let e = err("auth:\n  mtls: {}");
        assert!(e.contains("client_ca_file"), "{e}");
    }

    #[test]
    fn policy_name_key_is_accepted_and_defaults_apply() {
        let v = valid("load_policy:\n  name: ROUND_ROBIN\n");
        assert_eq!(v.policy.name(), "ROUND_ROBIN");
        // With no configuration, Spark Connect servers are launched on demand, one per user,
        // and sessions are kept in an embedded database file.
        let v = valid("{}");
        assert_eq!(v.config.backend_provider.kind, "LAUNCH");
        assert_eq!(v.provider.name(), "local spark");
        assert_eq!(v.policy.name(), "ON_DEMAND");
        assert_eq!(v.config.store.kind, sc_store::StoreKind::Embedded);
        let v = valid(
            "backend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: localhost:15002\n",
        );
        assert_eq!(v.policy.name(), "ROUND_ROBIN");
        let c = v.config;
        assert_eq!(c.server.listen_addr, "127.0.0.1:8080");
        assert_eq!(c.control.listen_addr, "127.0.0.1:8081");
        assert_eq!(c.router.max_message_size, 128 * 1024 * 1024);
        // The DNS type is built in; building it sends no query.
        let v = valid(
            "backend_provider:\n  name: spark pods\n  type: DNS\n  spec:\n    name: spark.analytics.svc.cluster.local\n    port: 15002\n    refresh_interval: 5s\n    nameserver: 127.0.0.1:53\n",
        );
        assert_eq!(v.provider.name(), "spark pods");
        assert_eq!(v.policy.name(), "ROUND_ROBIN");
    }

    fn err(yaml: &str) -> String {
        match ProxyConfig::from_yaml(yaml) {
            Err(e) => e.to_string(),
            Ok(config) => config.validate(&builtins()).unwrap_err().to_string(),
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        assert!(
            err("serverr: {}").contains("serverr"),
            "{}",
            err("serverr: {}")
        );
        let e = err("server:\n  listen: x");
        assert!(e.contains("listen"), "{e}");
        let e = err("load_policy:\n  type: FASTEST");
        assert!(e.contains("load_policy.type 'FASTEST'"), "{e}");
        let e = err("load_policy:\n  type: MAX_SESSIONS\n  params:\n    max_size: lots");
        assert!(e.contains("load_policy.params.max_size"), "{e}");
        let e = err("load_policy:\n  type: MAX_SESSIONS");
        assert!(e.contains("required"), "{e}");
        let e = err("server:\n  listen_addr: nowhere");
        assert!(e.contains("server.listen_addr"), "{e}");
        let e = err(
            "backend_provider:\n  type: PREDEFINED\n  spec:\n    endpoints:\n      - url: 'localhost'",
        );
        assert!(e.contains("spec.endpoints[0].url"), "{e}");
        let e = err("backend_provider:\n  type: PREDEFINED\n  spec:\n    endpointz: []");
        assert!(e.contains("endpointz"), "{e}");
        let e = err("backend_provider:\n  type: DNS\n  spec:\n    name: spark.test");
        assert!(e.contains("backend_provider.spec.port: is missing"), "{e}");
        let e = err(
            "backend_provider:\n  type: dns\n  spec:\n    name: spark.test\n    port: 15002\n    refresh: 1s",
        );
        assert!(e.contains("backend_provider.spec.refresh"), "{e}");
        let e = err("backend_provider:\n  type: KUBERNETES");
        assert!(
            e.contains("backend_provider.type 'KUBERNETES'")
                && e.contains("DNS, LAUNCH, PREDEFINED"),
            "{e}"
        );
        let e = err("log_level: loud");
        assert!(e.contains("log_level"), "{e}");
        let e = err("router:\n  max_message_size: 10");
        assert!(e.contains("router.max_message_size"), "{e}");
        let e = err("server:\n  tls:\n    enabled: true");
        assert!(e.contains("server.tls"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn environment_overrides_the_file_and_ignores_unrelated_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "log_level: debug\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SC_LOG_LEVEL", "warn");
            jail.set_env("SC_SERVER__LISTEN_ADDR", "127.0.0.1:9999");
            jail.set_env("SC_TEST_SOMETHING", "unrelated");
            let c = ProxyConfig::load(Some(&path)).unwrap();
            assert_eq!(c.log_level, LogLevel::Warn);
            assert_eq!(c.server.listen_addr, "127.0.0.1:9999");
            Ok(())
        });
        assert!(ProxyConfig::load(Some(Path::new("/nonexistent.yaml"))).is_err());
    }

    #[test]
    fn inconsistent_settings_are_refused_naming_the_keys() {
        let e = err("server:\n  worker_threads: 1025");
        assert!(e.contains("server.worker_threads is 1025"), "{e}");
        let c = valid("server:\n  worker_threads: 1024").config;
        assert_eq!(c.server.threads(), 1024);
        let c = valid("server:\n  worker_threads: 0").config;
        assert!(c.server.threads() >= 1, "0 means one per CPU");

        // The idle timeout must outlast the keep-alive pings that keep honest clients busy.
        let e = err("server:\n  idle_timeout: 10s\nrouter:\n  keepalive_interval: 10s");
        assert!(
            e.contains("server.idle_timeout") && e.contains("router.keepalive_interval"),
            "{e}"
        );
        valid("server:\n  idle_timeout: 11s\nrouter:\n  keepalive_interval: 10s");

        let e = err("control:\n  tls: true");
        assert!(e.contains("control.tls") && e.contains("server.tls"), "{e}");
        let e = err("server:\n  tls:\n    enabled: true\n    cert_file: c.pem");
        assert!(e.contains("server.tls.key_file"), "{e}");

        // Both places for the control plane's address are fine when they agree.
        let c = valid(
            "control:\n  listen_addr: 127.0.0.1:9001\nserver:\n  control_api:\n    listen_addr: 127.0.0.1:9001\n",
        )
        .config;
        assert_eq!(c.control.listen_addr, "127.0.0.1:9001");
        let e = err("control:\n  listen_addr: 127.0.0.1");
        assert!(e.contains("control.listen_addr '127.0.0.1'"), "{e}");
        // Any loopback address may listen without authentication; another may not.
        valid("server:\n  listen_addr: 127.0.0.2:8080");
        let e = err("control:\n  listen_addr: 10.1.2.3:8081");
        assert!(e.contains("control.listen_addr '10.1.2.3:8081'"), "{e}");
    }

    #[test]
    fn telemetry_is_off_by_default_and_checked_when_set() {
        let c = valid("{}").config;
        assert_eq!(c.telemetry.otlp.endpoint, None);
        assert!((c.telemetry.sample_ratio - 1.0).abs() < f64::EPSILON);
        let c = valid(
            "telemetry:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    timeout: 2s\n    headers: {x-api-key: k}\n  sample_ratio: 0.5\n  service_name: gw\n",
        )
        .config;
        assert_eq!(
            c.telemetry.otlp.endpoint.as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(c.telemetry.otlp.timeout, Duration::from_secs(2));
        let e = err("telemetry:\n  otlp:\n    endpoint: 127.0.0.1:4317\n");
        assert!(
            e.contains("telemetry.otlp.endpoint") && e.contains("http://"),
            "{e}"
        );
        let e = err("telemetry:\n  sample_ratio: 2\n");
        assert!(e.contains("telemetry.sample_ratio"), "{e}");
        let e = err("telemetry:\n  otlp:\n    headers: {'Bad Name': v}\n");
        assert!(e.contains("telemetry.otlp.headers.Bad Name"), "{e}");
        let e = err("telemetry:\n  otlp:\n    endpont: x\n");
        assert!(e.contains("endpont"), "{e}");
    }

    #[test]
    fn policy_spellings_and_params_are_checked() {
        // `type` and `name` may both be given if they agree (case aside).
        let v = valid("load_policy:\n  type: one_to_one\n  name: ONE_TO_ONE");
        assert_eq!(v.policy.name(), "ONE_TO_ONE");
        let e = err("load_policy:\n  type: ROUND_ROBIN\n  name: ONE_TO_ONE");
        assert!(e.contains("disagree"), "{e}");
        // max_size as a number, as a string, and out of place.
        let v = valid("load_policy:\n  type: MAX_SESSIONS\n  params:\n    max_size: 3");
        assert_eq!(v.policy.name(), "MAX_SESSIONS");
        valid("load_policy:\n  type: MAX_SESSIONS\n  params:\n    max_size: ' 7 '");
        let e = err("load_policy:\n  type: MAX_SESSIONS\n  params:\n    max_size: 0");
        assert!(e.contains("at least 1"), "{e}");
        let e = err("load_policy:\n  type: ROUND_ROBIN\n  params:\n    max_size: 3");
        assert!(
            e.contains("max_size applies only to MAX_SESSIONS, not ROUND_ROBIN"),
            "{e}"
        );
        let v = valid("load_policy:\n  type: least_sessions");
        assert_eq!(v.policy.name(), "LEAST_SESSIONS");
        // The provider type is case-insensitive; PREDEFINED without a spec is localhost:15002.
        let v = valid("backend_provider:\n  type: predefined");
        assert_eq!(v.config.backend_provider.name, "default");
        assert_eq!(v.policy.name(), "ROUND_ROBIN");
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn load_reads_the_file_and_names_an_unknown_key_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        // In a jail: the environment test sets SC_* variables that `load` reads.
        figment::Jail::expect_with(|_jail| {
            std::fs::write(&path, "log_level: error\naudit:\n  file: /tmp/audit.log\n").unwrap();
            let c = ProxyConfig::load(Some(&path)).unwrap();
            assert_eq!(c.log_level, LogLevel::Error);
            assert_eq!(c.audit.file.as_deref(), Some(Path::new("/tmp/audit.log")));
            std::fs::write(&path, "log_level: warn\nrouter:\n  max_mesage_size: 5\n").unwrap();
            let e = ProxyConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(e.contains("max_mesage_size"), "{e}");
            // A directory is not a configuration file.
            let e = ProxyConfig::load(Some(dir.path())).unwrap_err().to_string();
            assert!(e.contains("does not exist or is not a file"), "{e}");
            Ok(())
        });
    }
}
