//! The Spark Connect protocol for the proxy and the SDK.
//!
//! * [`spark::connect`]: the messages and the `SparkConnectService` client and server, generated at
//!   build time from the vendored Spark 4.2 `.proto` files (see `proto/README.md`) with pure Rust.
//! * [`wire`]: readers that pick the routing fields (`session_id`, `user_context.user_id`,
//!   `operation_id`, `new_session_id`, `server_side_session_id`) out of raw message bytes without
//!   decoding anything else, plus gRPC length-prefix framing helpers.
//! * [`codec`]: a tonic codec that moves message bytes through untouched.
//! * [`RpcMethod`]: the service's methods and where each keeps its routing fields.

#![forbid(unsafe_code)]
// The generated items carry the .proto comments, whose `[X](X)` links rustdoc cannot resolve
// once the items are re-exported; the lint cannot be scoped to them, so it is off for this crate.
#![allow(rustdoc::broken_intra_doc_links)]

pub mod codec;
mod method;
pub mod wire;

pub use method::RpcMethod;

/// Generated code, quarantined: nothing hand-written lives here.
mod generated {
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        clippy::pedantic,
        rust_2018_idioms
    )]
    #[rustfmt::skip]
    pub mod spark_connect {
        include!(concat!(env!("OUT_DIR"), "/spark.connect.rs"));
    }
}

/// The `spark` protobuf package.
pub mod spark {
    /// The `spark.connect` protobuf package: every message, enum and the service.
    pub mod connect {
        pub use crate::generated::spark_connect::*;
    }
}

/// The fully qualified gRPC service name, as it appears in request paths.
pub const SERVICE_NAME: &str = "spark.connect.SparkConnectService";
