//! The records every backend stores. Secrets inside them are always [`Sealed`].

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, CallId, CampaignId, DeliveryId, MessageId, WebhookId};
use crate::model::{Call, CallCompleted, CallFinished, Contact, HttpMethod};
use crate::secrets::Sealed;
use crate::validate::IgnoredKey;

/// An inbound webhook: a secret slug bound to a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundWebhook {
    /// The id.
    pub id: WebhookId,
    /// The owning account.
    pub account: AccountId,
    /// The secret slug: `POST /{slug}` triggers a call.
    pub slug: String,
    /// The bound campaign; `None` until "Create Campaign".
    pub campaign_id: Option<CampaignId>,
    /// Disabled webhooks answer 404, like unknown slugs.
    pub enabled: bool,
    /// The response webhook configured on it, an [`Endpoint`] of kind
    /// [`EndpointKind::Response`].
    pub response_endpoint: Option<WebhookId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Outbound webhook, or the response webhook of an inbound one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum EndpointKind {
    /// Gets every `call.finished` of its account.
    Outbound,
    /// Gets `call.completed` for calls its inbound webhook triggered.
    Response {
        /// The inbound webhook it is configured on.
        inbound: WebhookId,
    },
}

/// A custom header: the name in clear, the value sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedHeader {
    /// Lowercase header name.
    pub name: String,
    /// The sealed value (associated data: the endpoint id and the header name).
    pub value: Sealed,
}

/// A signing secret, sealed. During a rotation the previous secret stays valid until
/// `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    /// The sealed `whsec_…` bytes (associated data: endpoint id and `signing-secret:<n>`).
    pub value: Sealed,
    /// Sequence number of the secret for this endpoint (1, 2, …), part of the sealing
    /// context.
    pub seq: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops being used to sign; `None` for the current secret.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where deliveries go: an outbound webhook or a response webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The id.
    pub id: WebhookId,
    /// The owning account.
    pub account: AccountId,
    /// Outbound or response.
    pub kind: EndpointKind,
    /// Destination URL.
    pub url: String,
    /// POST or GET.
    pub method: HttpMethod,
    /// Custom headers, values sealed.
    pub headers: Vec<SealedHeader>,
    /// Signing secrets, the current one first.
    pub secrets: Vec<SealedSecret>,
    /// A label such as "Zapier": such webhooks are read-only through the user-facing API.
    pub managed_by: Option<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled (by the user, by `410 Gone`, or for failing too long).
    pub disabled_reason: Option<String>,
    /// Last successful delivery.
    pub last_success_at: Option<DateTime<Utc>>,
    /// First failure since the last success; `None` while healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where a call came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum CallOrigin {
    /// Triggered by `POST /{slug}`.
    InboundWebhook {
        /// The inbound webhook.
        webhook: WebhookId,
    },
    /// Dialed by an outbound campaign.
    OutboundCampaign,
    /// A test call from the portal.
    TestCall,
}

/// A call's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Stored, not yet handed to the launcher.
    Queued,
    /// Handed to the launcher; waiting for its result.
    Dialing,
    /// Never placed (inactive campaign, no prompt, out of credits); see `cancel_reason`.
    Cancelled,
    /// Completed: the result holds `finished`, `missed` or `failed`.
    Completed,
}

impl CallState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Queued => "queued",
            CallState::Dialing => "dialing",
            CallState::Cancelled => "cancelled",
            CallState::Completed => "completed",
        }
    }
}

/// A call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// The id.
    pub id: CallId,
    /// The owning account.
    pub account: AccountId,
    /// The campaign whose settings it uses; `None` when its inbound webhook had no
    /// campaign bound (the call is then cancelled).
    pub campaign_id: Option<CampaignId>,
    /// The settings version it ran with (0 when there was no campaign).
    pub settings_version: u32,
    /// Where it came from.
    pub origin: CallOrigin,
    /// Who to call; `phone_number` in E.164.
    pub contact: Contact,
    /// Lifecycle state.
    pub state: CallState,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// The result once completed (status, summary, transcript, analysis, …).
    pub result: Option<Box<Call>>,
    /// Action items extracted from the call (not part of the events' payload).
    pub action_items: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt (or leased by a worker right now).
    Pending,
    /// Delivered (a 2xx).
    Succeeded,
    /// Retries exhausted, endpoint gone or disabled: a dead letter, redeliverable.
    Dead,
}

impl DeliveryState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Dead => "dead",
        }
    }
}

/// An event type's name as the records hold it: borrowed for `call.finished` and
/// `call.completed`, so that leasing a delivery or logging an attempt copies no string.
#[must_use]
pub fn event_type(name: &str) -> Cow<'static, str> {
    match name {
        CallFinished::TYPE => Cow::Borrowed(CallFinished::TYPE),
        CallCompleted::TYPE => Cow::Borrowed(CallCompleted::TYPE),
        other => Cow::Owned(other.to_owned()),
    }
}

/// One event to one endpoint. Its `message_id` is the `webhook-id` header and never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The id.
    pub id: DeliveryId,
    /// The owning account.
    pub account: AccountId,
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// The message id, stable across retries and redeliveries.
    pub message_id: MessageId,
    /// `call.finished` or `call.completed` (borrowed: the stores hand out these two
    /// without allocating; see [`event_type`]).
    pub event_type: Cow<'static, str>,
    /// The exact JSON that is signed and sent.
    #[serde(with = "bytes_as_string")]
    pub payload: Bytes,
    /// The call it reports, if any.
    pub call_id: Option<CallId>,
    /// Pending, succeeded or dead.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: DateTime<Utc>,
    /// The last attempt's outcome, for display.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

mod bytes_as_string {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(Bytes::from(String::deserialize(d)?))
    }
}

/// A delivery a worker holds for one attempt, until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The delivery (its `attempts` counts attempts before this one).
    pub delivery: Delivery,
    /// Proof of holding the lease; completing with a stale token does nothing.
    pub token: u64,
    /// When the lease ends and the delivery becomes due again.
    pub lease_until: DateTime<Utc>,
}

/// What happened to a leased delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Delivered.
    Succeeded,
    /// Try again at `next_attempt_at`.
    Retry {
        /// When.
        next_attempt_at: DateTime<Utc>,
        /// What went wrong.
        error: String,
    },
    /// Give up: a dead letter.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// Selects deliveries in listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this endpoint.
    pub endpoint_id: Option<WebhookId>,
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only those created at or after.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (newest first); 0 means the backend's default (100).
    pub limit: usize,
}

/// How an attempt failed without an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportErrorKind {
    /// No response within the timeout.
    Timeout,
    /// Connection refused or reset.
    Connect,
    /// Name resolution failed.
    Dns,
    /// TLS handshake failed.
    Tls,
    /// The destination is refused by the SSRF rules.
    Blocked,
    /// Anything else (including a malformed response).
    Other,
}

impl TransportErrorKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportErrorKind::Timeout => "timeout",
            TransportErrorKind::Connect => "connect",
            TransportErrorKind::Dns => "dns",
            TransportErrorKind::Tls => "tls",
            TransportErrorKind::Blocked => "blocked",
            TransportErrorKind::Other => "other",
        }
    }
}

/// One HTTP try of a delivery, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// The owning account.
    pub account: AccountId,
    /// The endpoint (webhook) it went to.
    pub endpoint_id: WebhookId,
    /// The delivery; `None` for a Test button attempt of an unsaved configuration.
    pub delivery_id: Option<DeliveryId>,
    /// The message id (`webhook-id`).
    pub message_id: MessageId,
    /// `call.finished` or `call.completed` (borrowed: the stores hand out these two
    /// without allocating; see [`event_type`]).
    pub event_type: Cow<'static, str>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// The HTTP status, or `None` when it errored.
    pub status: Option<u16>,
    /// The transport error kind when it errored.
    pub error: Option<TransportErrorKind>,
    /// A human-readable error message.
    pub error_message: Option<String>,
    /// The response body, truncated.
    pub response_body: String,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether it counted as delivered (2xx).
    pub success: bool,
    /// A Test button attempt (never retried).
    pub test: bool,
}

/// What became of an inbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestOutcome {
    /// A call was placed.
    Placed,
    /// Accepted (201) but the call was recorded as cancelled.
    Cancelled,
    /// A repeat of an earlier request with the same `Idempotency-Key`.
    Replayed,
    /// Refused with a 4xx.
    Rejected,
}

/// One inbound request in the request log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestLogEntry {
    /// The account, when the slug was known; `None` for unknown slugs.
    pub account: Option<AccountId>,
    /// The inbound webhook, when known.
    pub webhook_id: Option<WebhookId>,
    /// The slug as requested (cut to 64 characters); `None` when there was none.
    pub slug: Option<String>,
    /// Whether the slug matched an inbound webhook (enabled or not).
    pub slug_known: bool,
    /// When.
    pub at: DateTime<Utc>,
    /// The HTTP status answered.
    pub status: u16,
    /// What became of it.
    pub outcome: RequestOutcome,
    /// The error code, if any (one of the inbound path's fixed codes when the handler wrote
    /// the entry).
    pub code: Option<Cow<'static, str>>,
    /// What happened, in words (e.g. "insufficient funds"). Borrowed for the handler's fixed
    /// messages ("call placed"), so logging an accepted request allocates no text.
    pub message: Cow<'static, str>,
    /// Keys that were ignored, with suggestions.
    pub ignored_keys: Vec<IgnoredKey>,
    /// The call, if one was recorded.
    pub call_id: Option<CallId>,
}
