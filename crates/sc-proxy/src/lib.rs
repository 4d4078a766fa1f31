//! The Spark Connect proxy as an application: one configuration tree ([`config`]), validated once,
//! turned into a backend provider, a load policy, a [`sc_router::Router`] and the control plane,
//! and served on two ports until shutdown ([`Proxy::serve`]).
//!
//! The `spark-connect-proxy` binary only parses flags, sets up logging and calls this crate.

#![forbid(unsafe_code)]

pub mod config;
mod listen;
mod serve;
mod tls;
mod workers;

pub use config::{ConfigError, ProxyConfig, Validated, builtins};
pub use serve::{Proxy, ServeError};
