//! Parses the seed's three example payloads with the crate's typed models and prints what
//! they hold, then validates an inbound request that uses snake_case keys.
//!
//! ```sh
//! cargo run --example fixtures
//! ```

use atllas_webhooks::fixtures::{
    CALL_COMPLETED_TEST_JSON, CALL_FINISHED_JSON, CALLS_EXECUTE_JSON, FakeData,
};
use atllas_webhooks::model::CallEvent;
use atllas_webhooks::validate::{ParseOptions, parse_calls_execute};

fn main() -> Result<(), atllas_webhooks::Error> {
    let request = parse_calls_execute(CALLS_EXECUTE_JSON.as_bytes(), &ParseOptions::default())?;
    let contact = &request.request.data;
    println!(
        "calls.execute  -> call {} ({} {}, {})",
        request.phone,
        contact.first_name.as_deref().unwrap_or("?"),
        contact.last_name.as_deref().unwrap_or("?"),
        contact.company_name.as_deref().unwrap_or("no company"),
    );

    for json in [CALL_FINISHED_JSON, CALL_COMPLETED_TEST_JSON] {
        let event = CallEvent::from_slice(json.as_bytes())?;
        let call = event.call();
        let analysis = call.analysis.as_ref();
        println!(
            "{:<14} -> webhook {} ({}), call {} {}, {} s, warmth {}, sentiment {}, campaign {:?}",
            event.event_type(),
            event.webhook().id,
            event.webhook().kind,
            call.id,
            call.status,
            call.duration.unwrap_or(0),
            analysis.map_or("-".into(), |a| a.lead_warmth.to_string()),
            analysis.map_or("-".into(), |a| a.sentiment.to_string()),
            event.campaign().name,
        );
    }

    let snake = br#"{"type":"calls.execute","data":{"phoneNumber":"+1 (555) 010-2030","first_name":"Jane","company":"Acme"}}"#;
    let parsed = parse_calls_execute(snake, &ParseOptions::default())?;
    println!(
        "snake_case     -> call {} with first name {:?}",
        parsed.phone, parsed.request.data.first_name
    );
    for key in &parsed.ignored {
        println!("  ignored: {key}");
    }

    let fake = FakeData::new(42).call_finished();
    println!(
        "fake event     -> {}",
        serde_json::to_string(&fake).unwrap_or_default()
    );
    Ok(())
}
