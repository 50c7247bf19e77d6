//! # atllas-webhooks
//!
//! The webhook layer of an AI phone-calling service, as a library: the typed wire contract
//! of Custom Webhooks (the inbound `calls.execute` trigger and the `call.finished` /
//! `call.completed` events), its validation rules, fixtures for test suites, and Standard
//! Webhooks signing.
//!
//! ```
//! use atllas_webhooks::fixtures;
//! use atllas_webhooks::model::{CallEvent, LeadWarmth};
//! use atllas_webhooks::validate::{parse_calls_execute, ParseOptions};
//!
//! // An inbound request, validated the way the inbound path does it.
//! let parsed = parse_calls_execute(fixtures::CALLS_EXECUTE_JSON.as_bytes(), &ParseOptions::default())?;
//! assert_eq!(parsed.phone.as_str(), "+15551234567");
//!
//! // An outbound event, as a receiver parses it.
//! let event = CallEvent::from_slice(fixtures::CALL_FINISHED_JSON.as_bytes())?;
//! assert_eq!(event.call().analysis.as_ref().map(|a| &a.lead_warmth), Some(&LeadWarmth::Hot));
//! # Ok::<(), atllas_webhooks::Error>(())
//! ```
//!
//! ## Modules
//! | module | job |
//! | --- | --- |
//! | [`model`] | wire types and enums |
//! | [`validate`] | E.164 phone numbers, camelCase-only `calls.execute` parsing |
//! | [`fixtures`] | the seed's examples verbatim and typed, deterministic fake data |
//! | [`signing`] | Standard Webhooks signer and verifier |
//! | [`secrets`] | AES-256-GCM sealing of header values and signing secrets, key rotation |
//! | [`destination`] | URL rules and address classification against SSRF |
//! | [`ids`] | typed random identifiers and slugs |
//! | [`clock`] | the injected clock |
//! | [`campaign`] | campaigns, their settings versions and the outbound lock |
//! | [`store`] | storage traits, the in-memory backend and (feature `sqlite`) the SQLite one |
//! | [`registry`] | campaigns, inbound, outbound and response webhooks over any store |
//! | [`calls`] | the call lifecycle: launcher, credits, completion with its outbox |
//! | [`inbound`] | the `POST /{slug}` handler, request log, idempotency, rate limit |
//! | [`delivery`] | the engine: signed deliveries, retries, logs, the Test button, redelivery; the `HttpClient` trait and (feature `client`) `HyperClient` |
//! | [`receiver`] | verify and parse deliveries, for endpoint owners |
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod calls;
pub mod campaign;
pub mod clock;
pub mod delivery;
pub mod destination;
pub mod fixtures;
pub mod ids;
pub mod inbound;
pub mod model;
pub mod receiver;
pub mod registry;
pub mod secrets;
pub mod signing;
pub mod store;
pub mod validate;

mod error;

pub use error::Error;
