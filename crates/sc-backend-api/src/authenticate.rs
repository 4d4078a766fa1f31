//! How a transport asks the proxy's authentication who is calling.

use std::net::SocketAddr;

use crate::Identity;

/// Turns a call's credentials into an [`Identity`], or refuses it.
///
/// The proxy's authentication (crate `sc-auth`) implements it; a transport that serves gRPC
/// without tower layers (the proxy's own HTTP/2 relay) calls it once per call.
pub trait CallAuthenticator: Send + Sync + 'static {
    /// Verifies a call: the value of its `authorization` header, and the leaf certificate (DER)
    /// its connection presented in a verified TLS handshake, if any. On failure it writes the
    /// audit line itself (`peer` and `path` name the call there) and returns the message the
    /// client receives with `UNAUTHENTICATED`.
    fn authenticate_call(
        &self,
        authorization: Option<&[u8]>,
        certificate: Option<&[u8]>,
        peer: Option<SocketAddr>,
        path: &str,
    ) -> Result<Identity, String>;
}
