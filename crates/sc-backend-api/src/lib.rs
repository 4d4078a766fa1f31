//! The contract between the Spark Connect proxy and the providers of its backends.
//!
//! A *backend* is one Spark Connect server (a driver) the proxy forwards sessions to. A
//! [`BackendProvider`] knows which backends exist and, if it can, starts and stops them: the
//! PREDEFINED provider reads a static list, others launch servers on demand. A [`LoadPolicy`]
//! decides where a new session goes. Both are ordinary traits, so a provider or a policy is an
//! ordinary crate linked into the proxy binary.
//!
//! # Writing a provider
//!
//! ```
//! use async_trait::async_trait;
//! use sc_backend_api::{Backend, BackendId, BackendProvider, ProviderError};
//!
//! /// Serves one fixed Spark Connect server.
//! struct SingleServer {
//!     backend: Backend,
//! }
//!
//! #[async_trait]
//! impl BackendProvider for SingleServer {
//!     fn name(&self) -> &str {
//!         "single"
//!     }
//!
//!     async fn list(&self) -> Result<Vec<Backend>, ProviderError> {
//!         Ok(vec![self.backend.clone()])
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = SingleServer {
//!     backend: Backend::new(BackendId::new("spark-1"), "http://127.0.0.1:15002".parse()?),
//! };
//! assert_eq!(provider.list().await?.len(), 1);
//! // Starting is optional: by default a provider says it cannot.
//! assert!(matches!(
//!     provider.start(&Default::default()).await,
//!     Err(ProviderError::Unsupported { .. })
//! ));
//! # Ok(())
//! # }
//! ```
//!
//! A provider reaches the proxy through a [`Registry`]: the crate offers a factory from the
//! provider's configured name and [`Spec`] to the provider, and a proxy binary registers it under
//! a type name (see [`registry`](Registry)). The runnable crate `examples/custom-provider` is
//! such a binary: the stock proxy with one more provider type, and `docs/providers.md` walks
//! through writing one.

#![forbid(unsafe_code)]

mod authenticate;
mod backend;
mod error;
mod identity;
mod policy;
mod provider;
mod registry;

pub use authenticate::CallAuthenticator;
pub use backend::{Backend, BackendId, BackendTls, ui_proxy_base};
pub use error::ProviderError;
pub use identity::{AuthMethod, Identity};
pub use policy::{BackendLoad, LoadPolicy, Placement};
pub use provider::{BackendProvider, DeathCause, Health, PostMortem, ProviderStatus, StartRequest};
pub use registry::{PolicyFactory, ProviderFactory, Registry, Spec};
