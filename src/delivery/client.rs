//! The HTTP client the engine sends with: a small trait, so the transport is pluggable
//! (a production client behind the `client` feature, or anything else).

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

pub use crate::store::TransportErrorKind;

/// A response, with its body read up to the client's bound.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, at most the client's bound.
    pub body: Bytes,
    /// Whether the body was longer than the bound and was cut.
    pub body_truncated: bool,
}

/// A failure without an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}", kind = kind.as_str())]
pub struct TransportError {
    /// Timeout, connect, dns, tls, blocked or other.
    pub kind: TransportErrorKind,
    /// What happened.
    pub message: String,
}

impl TransportError {
    /// A transport error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// No complete response within `limit`: the one wording of a timeout, whether the
    /// client's own or the worker's.
    #[cfg(any(feature = "client", feature = "worker"))]
    pub(crate) fn timed_out(limit: std::time::Duration) -> Self {
        Self::new(
            TransportErrorKind::Timeout,
            format!("no complete response within {} ms", limit.as_millis()),
        )
    }
}

/// Sends one request. Implementations must not follow redirects (a 3xx is returned as
/// is), must bound how much of the body they read, and should refuse destinations the
/// [`DestinationPolicy`](crate::destination::DestinationPolicy) forbids at connect time,
/// answering [`TransportErrorKind::Blocked`].
///
/// The engine's requests come from [`build_request`](super::build_request): `host` and
/// `content-length` are already set (a client that rewrites the URI, a proxy say, must set
/// `host` again itself).
#[async_trait]
pub trait HttpClient: Send + Sync {
    /// Sends `request` and returns the response or a transport error.
    async fn send(&self, request: Request<Bytes>) -> Result<HttpResponse, TransportError>;

    /// [`send`](Self::send) for a caller that bounds the exchange itself: the delivery
    /// worker drops the future once its
    /// [`request_timeout`](super::DeliveryConfig::request_timeout) has run out, so a client
    /// may leave its own total timeout out here ([`HyperClient`](super::HyperClient) does:
    /// one timer per attempt fewer). By default, `send`.
    ///
    /// The bound works by dropping the future at whatever await point it is: a client must
    /// be safe to drop there (hyper's is: the connection is closed, not reused) and must
    /// not block its thread, or no timeout can end it.
    async fn send_bounded(&self, request: Request<Bytes>) -> Result<HttpResponse, TransportError> {
        self.send(request).await
    }
}
