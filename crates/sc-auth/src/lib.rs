//! Authentication for the Spark Connect proxy.
//!
//! One identity model ([`Identity`]) for every way of proving who you are: static bearer tokens
//! mapped to users and groups, JSON Web Tokens (HS256, RS256, ES256; a key file or a JWKS file;
//! `iss`, `aud`, `exp` and `nbf` checked with a configurable clock skew; a configurable user
//! claim), and client certificates (the subject's common name). Anonymous access exists only when
//! configured explicitly.
//!
//! [`Authenticator`] does the checking; [`GrpcAuthLayer`] applies it to every gRPC call and puts
//! the [`Identity`] into the request's extensions; the control plane calls
//! [`Authenticator::authenticate`] directly. Tokens are never logged: [`fingerprint`] gives a
//! stable, non-reversible name for one.

#![forbid(unsafe_code)]

mod authenticator;
mod jwt;
mod layer;
mod settings;

pub use authenticator::{AuthError, Authenticator, fingerprint};
pub use layer::{GrpcAuth, GrpcAuthLayer};
pub use sc_backend_api::{AuthMethod, Identity};
pub use settings::{AuthSettings, JwtSettings, MtlsSettings, TokenEntry};
