//! The delivery engine.

mod client;

pub use client::{HttpClient, HttpResponse, TransportError, TransportErrorKind};
