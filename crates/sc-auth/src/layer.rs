//! A tower layer that authenticates every gRPC call.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};
use tracing::warn;

use sc_backend_api::CallAuthenticator as _;

use crate::Authenticator;

/// Wraps a gRPC service so that every call is authenticated first.
#[derive(Debug, Clone)]
pub struct GrpcAuthLayer {
    authenticator: Arc<Authenticator>,
}

impl GrpcAuthLayer {
    /// A layer using `authenticator`.
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        GrpcAuthLayer { authenticator }
    }
}

impl<S> Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service made by [`GrpcAuthLayer`]: rejects unauthenticated calls with `UNAUTHENTICATED`,
/// puts the caller's [`Identity`](crate::Identity) into the request's extensions, and removes the
/// `authorization` header so the client's credentials never travel further.
#[derive(Debug, Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S, B> Service<http::Request<B>> for GrpcAuth<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, std::future::Ready<Result<http::Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let extensions = request.extensions();
        let certificate = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
        let peer = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.get_ref().remote_addr())
            .or_else(|| {
                extensions
                    .get::<TcpConnectInfo>()
                    .and_then(|i| i.remote_addr())
            });
        let verdict = self.authenticator.authenticate_call(
            request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
            certificate.as_deref(),
            peer,
            request.uri().path(),
        );
        match verdict {
            Ok(identity) => {
                request.headers_mut().remove(http::header::AUTHORIZATION);
                request.extensions_mut().insert(identity);
                Either::Left(self.inner.call(request))
            }
            Err(message) => {
                let status = tonic::Status::unauthenticated(message);
                Either::Right(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// The one place a gRPC call is authenticated, for the tower layer above and for transports
/// without layers (the proxy's HTTP/2 relay): a refusal writes one `auth_failure` audit line.
impl sc_backend_api::CallAuthenticator for Authenticator {
    fn authenticate_call(
        &self,
        authorization: Option<&[u8]>,
        certificate: Option<&[u8]>,
        peer: Option<std::net::SocketAddr>,
        path: &str,
    ) -> Result<crate::Identity, String> {
        self.authenticate(authorization, certificate).map_err(|error| {
            let peer = peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
            warn!(target: "audit", event = "auth_failure", plane = "grpc", peer = %peer, path, reason = %error, "authentication failed");
            error.to_string()
        })
    }
}
