//! What a customer's endpoint looks like: verifies every delivery's signature, accepts
//! `call.finished` and `call.completed` (POST, or GET with the `payload` parameter), prints
//! one line per call, answers 401 to a bad signature.
//!
//! ```sh
//! cargo run --example receiver -- --secret whsec_… [--listen 127.0.0.1:9000]
//! ```

#[path = "support/http.rs"]
mod http_support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use atllas_webhooks::receiver::{Receiver, ReceiverError};
use atllas_webhooks::signing::SigningSecret;
use http::StatusCode;

const USAGE: &str = "usage: receiver --secret whsec_… [--listen ADDR]";

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("receiver: {e}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut secret = None;
    let mut listen = "127.0.0.1:9000".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secret" => secret = args.next(),
            "--listen" => listen = args.next().ok_or(USAGE)?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other}; {USAGE}").into()),
        }
    }
    let secret = SigningSecret::parse(&secret.ok_or(USAGE)?)?;
    let receiver = Arc::new(Receiver::new(secret));
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (listener, addr) = http_support::bind(&listen).await?;
    println!("listening: http://{addr}");
    http_support::serve(
        listener,
        1 << 20,
        move |req| {
            let receiver = receiver.clone();
            let seen = seen.clone();
            async move {
                match receiver.receive_request(&req, chrono::Utc::now()) {
                    Ok(r) => {
                        let first = seen
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(r.id.clone());
                        let call = r.event.call();
                        println!(
                            "{} {} status={} warmth={} duration={}s{}",
                            r.event.event_type(),
                            call.id,
                            call.status,
                            call.analysis
                                .as_ref()
                                .map_or("-".to_owned(), |a| a.lead_warmth.to_string()),
                            call.duration.unwrap_or(0),
                            if first { "" } else { " (duplicate, ignored)" },
                        );
                        http_support::json(StatusCode::OK, r#"{"ok":true}"#)
                    }
                    Err(ReceiverError::Signature(e)) => {
                        println!("refused: bad signature ({e})");
                        http_support::json(StatusCode::UNAUTHORIZED, r#"{"error":"bad signature"}"#)
                    }
                    Err(e) => {
                        println!("refused: {e}");
                        http_support::json(StatusCode::BAD_REQUEST, r#"{"error":"bad event"}"#)
                    }
                }
            }
        },
        shutdown(),
    )
    .await;
    Ok(())
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
