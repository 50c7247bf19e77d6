//! The delivery engine.

mod client;
#[cfg(feature = "client")]
mod hyper_client;

pub use client::{HttpClient, HttpResponse, TransportError, TransportErrorKind};
#[cfg(feature = "client")]
pub use hyper_client::{ClientConfig, HyperClient};
