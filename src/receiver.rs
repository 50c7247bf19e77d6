//! For endpoint owners: verify a delivery's signature, then parse it into a
//! [`CallEvent`]. Both `call.finished` (real outbound deliveries) and `call.completed`
//! (response webhooks, and the Test button) are accepted.
//!
//! ```
//! use atllas_webhooks::receiver::Receiver;
//! use atllas_webhooks::signing::{self, SigningSecret};
//! use atllas_webhooks::fixtures::CALL_FINISHED_JSON;
//!
//! let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")?;
//! let now = chrono::Utc::now();
//! let body = CALL_FINISHED_JSON.as_bytes();
//! let mut headers = http::HeaderMap::new();
//! headers.insert("webhook-id", "msg_1".parse()?);
//! headers.insert("webhook-timestamp", now.timestamp().into());
//! headers.insert("webhook-signature", signing::sign(&secret, "msg_1", now.timestamp(), body).to_string().parse()?);
//!
//! let received = Receiver::new(secret).receive(&headers, body, now)?;
//! assert_eq!(received.id, "msg_1");
//! assert_eq!(received.event.event_type(), "call.finished");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::model::{CallEvent, ModelError};
use crate::signing::{SigningError, SigningSecret, Verifier};

/// Errors of receiving an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiverError {
    /// The signature headers are missing, malformed, stale or do not match: answer 401.
    #[error("signature verification failed: {0}")]
    Signature(#[from] SigningError),
    /// Signed correctly but not an event this crate knows: answer 400.
    #[error("invalid event: {0}")]
    Event(#[from] ModelError),
    /// A GET delivery without the `payload` query parameter.
    #[error("the request has no payload query parameter")]
    MissingPayload,
}

/// A verified, parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message id (`webhook-id`): deduplicate on it, retries reuse it.
    pub id: String,
    /// `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
    /// The event.
    pub event: CallEvent,
}

/// Verifies and parses deliveries for one webhook.
#[derive(Debug, Clone)]
pub struct Receiver {
    verifier: Verifier,
}

impl Receiver {
    /// A receiver for a webhook's signing secret.
    pub fn new(secret: SigningSecret) -> Self {
        Receiver {
            verifier: Verifier::new(secret),
        }
    }

    /// A receiver that accepts any of several secrets (during a rotation).
    pub fn with_secrets(secrets: Vec<SigningSecret>) -> Self {
        Receiver {
            verifier: Verifier::with_secrets(secrets),
        }
    }

    /// Uses another timestamp tolerance (default 5 minutes both ways).
    pub fn tolerance(mut self, tolerance: std::time::Duration) -> Self {
        self.verifier = self.verifier.tolerance(tolerance);
        self
    }

    /// Verifies a POST delivery (the body is the JSON) and parses it.
    pub fn receive(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Received, ReceiverError> {
        let verified = self.verifier.verify(headers, body, now)?;
        let event = CallEvent::from_slice(body)?;
        Ok(Received {
            id: verified.id,
            timestamp: verified.timestamp,
            event,
        })
    }

    /// Verifies a GET delivery (the JSON is the `payload` query parameter of `uri`) and
    /// parses it.
    pub fn receive_get(
        &self,
        headers: &HeaderMap,
        uri: &http::Uri,
        now: DateTime<Utc>,
    ) -> Result<Received, ReceiverError> {
        let query = uri.query().unwrap_or_default();
        let payload = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "payload")
            .map(|(_, v)| v.into_owned())
            .ok_or(ReceiverError::MissingPayload)?;
        self.receive(headers, payload.as_bytes(), now)
    }

    /// Verifies any request: GET reads the `payload` parameter, anything else the body.
    pub fn receive_request(
        &self,
        request: &http::Request<bytes::Bytes>,
        now: DateTime<Utc>,
    ) -> Result<Received, ReceiverError> {
        if request.method() == http::Method::GET {
            self.receive_get(request.headers(), request.uri(), now)
        } else {
            self.receive(request.headers(), request.body(), now)
        }
    }
}
