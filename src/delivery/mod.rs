//! The delivery engine: pushes `call.finished` and `call.completed` events out.
//!
//! - Each delivery has a message id (`msg_…`) that is its `webhook-id` header and stays the
//!   same across retries and redeliveries, so receivers can deduplicate. Delivery is at
//!   least once; ordering is not guaranteed.
//! - A request carries `webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard
//!   Webhooks; one signature per valid secret during a rotation), `content-type:
//!   application/json` and `user-agent`, then the custom headers. POST sends the JSON body;
//!   GET sends no body and the exact JSON in the query parameter `payload`, signed over
//!   that JSON. A GET URL longer than [`DeliveryConfig::max_get_url`] (8 KiB) is not sent:
//!   the delivery becomes a dead letter whose error says to use POST.
//! - Only 2xx is success. Failures retry on the [`RetrySchedule`] (immediately, 5 s, 5 min,
//!   30 min, 2 h, 5 h, 10 h, 10 h, ±20 % jitter); `Retry-After` on any failed answer is
//!   honoured up to [`DeliveryConfig::retry_after_max`]; `410 Gone` disables the webhook.
//!   A webhook without a success for [`DeliveryConfig::disable_after`] (5 days) while its
//!   deliveries keep failing is disabled, and the delivery log says so; re-enable it with
//!   [`WebhookRegistry::set_endpoint_enabled`](crate::registry::WebhookRegistry::set_endpoint_enabled).
//!   Disabling turns the webhook's pending deliveries into dead letters.
//! - Dead letters stay queryable and can be redelivered one by one or all since a time.
//! - Every attempt lands in the webhook's delivery log: time, attempt number, message id,
//!   event type, HTTP status or `errored` with its kind, the response body truncated
//!   (1 KiB), duration, success.

mod client;
mod engine;
#[cfg(feature = "client")]
mod hyper_client;
mod request;
mod retry;
#[cfg(feature = "worker")]
mod timer;
#[cfg(feature = "worker")]
mod worker;

pub use client::{HttpClient, HttpResponse, TransportError, TransportErrorKind};
pub use engine::{
    AttemptClass, AttemptReport, DeliveryConfig, DeliveryEngine, TestConfig, TestReport, classify,
};
#[cfg(feature = "client")]
pub use hyper_client::{ClientConfig, HyperClient};
pub use request::{BuildError, Outgoing, build_request};
pub use retry::{RetrySchedule, ScheduleError, retry_after};
#[cfg(feature = "worker")]
pub use worker::{Waker, WorkerStats};

use crate::registry::RegistryError;
use crate::store::StoreError;

/// Errors of the delivery engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A registry operation failed (unsealing, a rule of the Test button's input).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The engine's configuration is invalid.
    #[error("invalid delivery configuration: {0}")]
    Config(String),
}
