//! The typed wire contract: the inbound `calls.execute` request and the `call.finished` /
//! `call.completed` events, exactly as the product documentation shows them.
//!
//! - Every seed example parses and re-serialises to the same JSON value.
//! - Keys are camelCase except `analysis.lead_warmth`; `timestamp` is epoch milliseconds;
//!   transcript `when` is `2024-04-30T14:00:03.000Z`; absent optional keys stay absent.
//! - Enums keep unknown values in an `Other` variant (receivers are forward compatible);
//!   unknown keys are ignored.
//! - [`CallFinished`] always carries every field of the field reference.
//!
//! ```
//! use atllas_webhooks::fixtures::CALL_FINISHED_JSON;
//! use atllas_webhooks::model::{CallEvent, CallStatus, LeadWarmth};
//!
//! let event = CallEvent::from_slice(CALL_FINISHED_JSON.as_bytes()).unwrap();
//! assert_eq!(event.event_type(), "call.finished");
//! assert_eq!(event.call().status, CallStatus::Finished);
//! assert_eq!(event.call().analysis.as_ref().unwrap().lead_warmth, LeadWarmth::Hot);
//! ```

mod enums;
mod event;
mod execute;
mod tag;
pub mod time;

pub use enums::{CallStatus, HttpMethod, LeadWarmth, Sentiment, Speaker, WebhookKind};
pub use event::{
    Analysis, Call, CallCompleted, CallEvent, CallFinished, CampaignRef, Recipient, TranscriptTurn,
    WebhookRef,
};
pub use execute::{CallsExecute, Contact};

/// Errors of parsing an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The bytes are not JSON of the expected shape.
    #[error("invalid event JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The event has no `type` key.
    #[error("the event has no \"type\" key")]
    MissingType,
    /// `type` is not a string.
    #[error("the event's \"type\" is not a string")]
    TypeNotString,
    /// `type` is neither `call.finished` nor `call.completed`.
    #[error("unknown event type {0:?} (expected \"call.finished\" or \"call.completed\")")]
    UnknownEventType(String),
}
