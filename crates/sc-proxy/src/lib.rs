//! The Spark Connect proxy as an application: one configuration tree ([`config`]), validated once
//! into a backend provider, a load policy and an authenticator (built by a [`Registry`] of
//! provider types and policies), turned into a [`sc_router::Router`] and the control plane, and
//! served on two ports until shutdown ([`Proxy::serve`]).
//!
//! A proxy binary is one call: [`main`] with a registry, which parses the command line, sets up
//! logging, runs the proxy and answers the exit code. The stock `spark-connect-proxy` passes
//! [`builtins`]; a binary of your own registers its provider types first (see
//! `docs/providers.md` and `examples/custom-provider`).
//!
//! With the `mimalloc` feature (on by default), mimalloc is the global allocator of every binary
//! built on this crate: the forwarding path allocates and frees many short-lived buffers on
//! several threads, and glibc's allocator spent about 7% of streaming CPU in page faults
//! (docs/benchmarks.md). A binary with an allocator of its own turns the feature off
//! (`default-features = false`).
//!
//! [`Registry`]: sc_backend_api::Registry

#![forbid(unsafe_code)]

mod cli;
pub mod config;
mod listen;
mod serve;
pub mod telemetry;
mod tls;
mod workers;

pub use cli::{Args, LogFormat, main, run};
pub use config::{ConfigError, ProxyConfig, Validated, builtins};
pub use serve::{Proxy, ServeError};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
