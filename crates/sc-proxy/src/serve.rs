//! Assembles the router and the control plane from a [`ProxyConfig`] and serves them.

use std::future::Future;
use std::net::SocketAddr;

use sc_control::ControlState;
use sc_router::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{ConfigError, ProxyConfig, Validated};
use crate::listen::{ChannelListener, IdleTimeout, WithPeerInfo, accept_plain};
use crate::tls::{self, ReloadableTls};
use crate::workers::Workers;

/// Why the proxy could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The router could not be assembled.
    #[error("cannot start the router: {0}")]
    Router(#[from] sc_router::RouterError),
    /// A listener could not be bound.
    #[error("cannot listen on {key} '{addr}': {source}")]
    Bind {
        /// The configuration key.
        key: &'static str,
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS files could not be read or used.
    #[error("cannot set up TLS on the gRPC port: {0}")]
    Tls(String),
    /// A server failed while running.
    #[error("server failed: {0}")]
    Server(String),
    /// Logging could not be set up (the audit file cannot be opened, say).
    #[error("cannot set up logging: {0}")]
    Logging(String),
}

impl ServeError {
    /// The process exit code for this error, as [`main`](crate::main) uses it: 2 for a
    /// configuration error (fix the file, the environment or the command line), 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Config(_) => 2,
            _ => 1,
        }
    }
}

/// A proxy whose listeners are bound and whose router is ready, not yet serving.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    authenticator: Option<std::sync::Arc<sc_auth::Authenticator>>,
    /// The file SIGHUP and `POST /control/reload` re-read, and the registry that builds it.
    reload: Option<(std::path::PathBuf, sc_backend_api::Registry)>,
    router: Router,
    grpc: TcpListener,
    control: TcpListener,
    /// The span exporter, when traces are on.
    exporter: Option<crate::telemetry::Exporter>,
}

async fn bind(key: &'static str, addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            key,
            addr: addr.to_owned(),
            source,
        })
}

impl Proxy {
    /// Builds the router from a validated configuration and binds both ports.
    pub async fn bind(validated: Validated) -> Result<Proxy, ServeError> {
        let Validated {
            config,
            provider,
            policy,
            authenticator,
        } = validated;
        let store = sc_store::open(&config.store)
            .await
            .map_err(|e| ServeError::Router(e.into()))?;
        if let Some(store) = &store {
            info!(
                store = store.name(),
                "sessions are kept in the session store"
            );
        }
        // One backend connection per gRPC worker thread (see `workers`).
        let mut settings = config.router.clone();
        settings.connection_lanes = config.server.threads();
        let (telemetry, exporter) =
            crate::telemetry::start(&config.telemetry, env!("CARGO_PKG_VERSION"))
                .map_err(|e| ServeError::Config(ConfigError::Invalid(e)))?
                .unzip();
        let router = Router::builder()
            .settings(settings)
            .provider(provider)
            .policy(policy)
            .admin_group(config.auth.admin_group.clone())
            .store(store)
            .telemetry(telemetry)
            .build()
            .await?;
        let grpc = bind("server.listen_addr", &config.server.listen_addr).await?;
        let control = bind("control.listen_addr", &config.control.listen_addr).await?;
        Ok(Proxy {
            config,
            authenticator,
            reload: None,
            router,
            grpc,
            control,
            exporter,
        })
    }

    /// Remembers the file the configuration came from, so SIGHUP and `POST /control/reload`
    /// can re-read it and build it with `registry`.
    pub fn with_config_file(
        mut self,
        path: Option<std::path::PathBuf>,
        registry: sc_backend_api::Registry,
    ) -> Self {
        self.reload = path.map(|path| (path, registry));
        self
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.local_addr().ok()
    }

    /// The bound control-plane address.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.local_addr().ok()
    }

    /// The router (for embedding and tests).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Serves until `shutdown` completes, then stops accepting and lets running calls finish for
    /// up to `server.shutdown_grace`.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Proxy {
            config,
            authenticator,
            reload,
            router,
            grpc,
            control,
            exporter,
        } = self;
        let reload_hook =
            reload.map(|(path, registry)| reload_hook(router.clone(), path, registry));
        if let Some(hook) = &reload_hook {
            tokio::spawn(reload_on_hangup(hook.clone()));
        }
        let grpc_addr = grpc.local_addr().ok();
        let control_addr = control.local_addr().ok();
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let tls = &config.server.tls;
        if let Some(auth) = &authenticator {
            if auth.allows_anonymous() {
                warn!(
                    "AUTHENTICATION IS OPEN: auth.anonymous is true, so anyone who can reach the proxy may use it as user 'anonymous'"
                );
            }
        } else {
            info!("authentication is off; the proxy listens on loopback addresses only");
        }
        // The gRPC port is served by the router's HTTP/2 relay, which authenticates each call.
        let relay = router.relay(
            authenticator
                .clone()
                .map(|a| a as std::sync::Arc<dyn sc_backend_api::CallAuthenticator>),
        );
        let idle_timeout = config.server.idle_timeout;
        let mut reloadable = Vec::new();
        let grpc_tls = if tls.enabled {
            let grpc_tls = ReloadableTls::new(tls, &[b"h2"])?;
            reloadable.push(grpc_tls.clone());
            Some(grpc_tls)
        } else {
            None
        };
        let threads = config.server.threads();
        let workers =
            Workers::start(threads, &relay, grpc_tls, idle_timeout, &stop_rx).map_err(|e| {
                ServeError::Server(format!("cannot start the gRPC worker threads: {e}"))
            })?;
        let grpc_task = tokio::spawn(workers.serve(grpc, stop_rx.clone()));

        let state = ControlState {
            router: router.clone(),
            grpc_port: grpc_addr.map_or(8080, |a| a.port()),
            public_host: config.control.public_host.clone(),
            grpc_tls: tls.enabled,
            auth: authenticator,
            reload: reload_hook,
            about: sc_control::About {
                otlp_endpoint: config.telemetry.otlp.endpoint.clone(),
                ..sc_control::About::default()
            },
            ui_passes: Default::default(),
        };
        // Each request carries its connection's address (for the audit log) and, over TLS, its
        // client certificate (an identity with `auth.mtls`, as on the gRPC port).
        let app = WithPeerInfo(sc_control::app(state));
        // The control plane's connections close after `server.idle_timeout` of silence too
        // (slow-loris clients, half-sent headers).
        let local = control
            .local_addr()
            .map_err(|e| ServeError::Server(e.to_string()))?;
        let accepted = accept_plain(control, move |stream| {
            IdleTimeout::new(stream, idle_timeout)
        });
        let control_task = if config.control.tls {
            let control_tls = ReloadableTls::new(tls, &[b"h2", b"http/1.1"])?;
            reloadable.push(control_tls.clone());
            let listener = ChannelListener::new(tls::handshake_each(accepted, control_tls), local);
            let server =
                axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
            tokio::spawn(async move { server.await })
        } else {
            let listener = ChannelListener::new(accepted, local);
            let server =
                axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
            tokio::spawn(async move { server.await })
        };
        if !reloadable.is_empty() {
            tokio::spawn(watch_tls(reloadable));
        }

        info!(
            grpc = ?grpc_addr,
            control = ?control_addr,
            policy = router.policy_name(),
            backends = router.backends().len(),
            tls = tls.enabled,
            worker_threads = threads,
            "spark connect proxy serving"
        );

        let grace = config.server.shutdown_grace;
        tokio::spawn(async move {
            shutdown.await;
            info!(grace = ?grace, "shutting down: no new connections, running calls may finish");
            let _ = stop_tx.send(true);
        });

        let mut stop_rx_wait = stop_rx.clone();
        let finished = async { tokio::join!(grpc_task, control_task) };
        tokio::pin!(finished);
        let (g, c) = tokio::select! {
            result = &mut finished => result,
            () = async {
                let _ = stop_rx_wait.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {
                warn!("shutdown grace period over; cutting the calls still running");
                router.shutdown().await;
                if let Some(exporter) = exporter {
                    exporter.shutdown().await;
                }
                return Ok(());
            }
        };
        // Launched engines must not outlive the proxy; the session table is written out, and
        // the last spans.
        router.shutdown().await;
        if let Some(exporter) = exporter {
            exporter.shutdown().await;
        }
        match (g, c) {
            (Ok(Ok(())), Ok(Ok(()))) => Ok(()),
            (Ok(Err(e)), _) => Err(ServeError::Server(format!("gRPC server: {e}"))),
            (_, Ok(Err(e))) => Err(ServeError::Server(format!("control plane: {e}"))),
            (Err(e), _) | (_, Err(e)) => Err(ServeError::Server(e.to_string())),
        }
    }
}

/// Reloads TLS files on SIGHUP, and when they change on disk (checked every few seconds).
async fn watch_tls(reloadable: Vec<std::sync::Arc<ReloadableTls>>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            () = hup => reloadable.iter().for_each(|t| t.reload("SIGHUP")),
            _ = tick.tick() => reloadable.iter().for_each(|t| t.reload_if_changed()),
        }
    }
}

/// Re-reads the configuration file and applies what can change while running: backends (added
/// ones take new sessions, removed ones drain), the load policy and the limits. Listeners, TLS
/// files (reloaded on their own), authentication and the store need a restart; a change to them
/// is reported, not applied.
fn reload_hook(
    router: Router,
    path: std::path::PathBuf,
    registry: sc_backend_api::Registry,
) -> sc_control::ReloadHook {
    let registry = std::sync::Arc::new(registry);
    std::sync::Arc::new(move || {
        let router = router.clone();
        let path = path.clone();
        let registry = registry.clone();
        Box::pin(async move {
            let validated = ProxyConfig::load(Some(&path))
                .and_then(|config| config.validate(&registry))
                .map_err(|e| e.to_string())?;
            router
                .reconfigure(
                    vec![validated.provider],
                    validated.policy,
                    validated.config.router.limits.clone(),
                )
                .await
                .map_err(|e| e.to_string())
        })
    })
}

/// Applies the configuration file again on every SIGHUP.
async fn reload_on_hangup(hook: sc_control::ReloadHook) {
    #[cfg(unix)]
    {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangup.recv().await.is_some() {
            match hook().await {
                Ok(report) => {
                    info!(added = ?report.backends_added, removed = ?report.backends_removed, policy = %report.policy, "configuration reloaded on SIGHUP")
                }
                Err(e) => {
                    warn!(error = %e, "configuration not reloaded on SIGHUP; the old one stays in force")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = hook;
}
