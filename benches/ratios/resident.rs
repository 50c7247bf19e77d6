//! `memory`: resident bytes per pending delivery in a [`MemoryStore`], over (payload size +
//! 512 B). Each run is a fresh child process (this binary with [`CHILD_FLAG`]), so that
//! memory freed by other figures, which the allocator keeps, does not hide growth. No
//! alternating pairs: the ratio of each run is reported, median, min and max over the runs.

use std::process::Command;
use std::sync::Arc;

use atllas_webhooks::fixtures;
use atllas_webhooks::ids::{AccountId, CallId, DeliveryId, MessageId, WebhookId};
use atllas_webhooks::model::CallFinished;
use atllas_webhooks::store::memory::MemoryStore;
use atllas_webhooks::store::{Delivery, DeliveryState, QueueStore};
use bytes::Bytes;
use chrono::Utc;

use crate::{Config, Outcome, note};

/// Makes the binary run one measurement and print it.
pub const CHILD_FLAG: &str = "__memory-child";

/// What a delivery may cost beyond its payload.
const ALLOWANCE: f64 = 512.0;

/// Endpoints the deliveries are spread over (their ids are in every payload).
const ENDPOINTS: usize = 64;

/// Resident set size in bytes (`VmRSS` of `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

pub fn memory(cfg: &Config) -> Outcome {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return Outcome::Skipped(format!("cannot find this binary: {e}")),
    };
    let mut ratios = Vec::new();
    for _ in 0..cfg.memory_runs {
        let out = Command::new(&exe)
            .arg(CHILD_FLAG)
            .arg(cfg.memory_deliveries.to_string())
            .output();
        let out = match out {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                return Outcome::Skipped(format!(
                    "the measuring process failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Err(e) => return Outcome::Skipped(format!("cannot run the measuring process: {e}")),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            eprintln!("{line}");
        }
        let ratio = text
            .lines()
            .find_map(|l| l.strip_prefix("ratio "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        match ratio {
            Some(r) => ratios.push(r),
            None => return Outcome::Skipped(format!("no ratio in the child's output: {text}")),
        }
    }
    Outcome::Ratios(ratios)
}

/// The child: enqueues `n` pending deliveries, each with its own seed-sized `call.finished`
/// payload built the way the call service builds it, and prints the ratio.
pub fn child(args: &[String]) {
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let seed = fixtures::call_finished();
    let account = AccountId::new("acct_bench");
    let endpoints: Vec<WebhookId> = (0..ENDPOINTS)
        .map(|_| WebhookId::generate().expect("id"))
        .collect();
    let call_id = CallId::generate().expect("id");
    let store = Arc::new(MemoryStore::new());

    let before = rss();
    // The payloads, as `CallService::complete` makes them (`fan_out` in src/calls/mod.rs):
    // serde_json::to_vec, then an exactly sized Bytes.
    let now = Utc::now();
    let payloads: Vec<Bytes> = (0..n)
        .map(|k| {
            let event = CallFinished::new(
                endpoints[k % ENDPOINTS].as_str(),
                now,
                seed.call().clone(),
                seed.campaign().clone(),
            );
            let json = serde_json::to_vec(&event).expect("serialisable");
            Bytes::from(json.into_boxed_slice())
        })
        .collect();
    let payload_len = payloads.iter().map(Bytes::len).sum::<usize>() as f64 / n as f64;
    let with_payloads = rss();

    for (chunk_no, chunk) in payloads.chunks(1000).enumerate() {
        let batch: Vec<Delivery> = chunk
            .iter()
            .enumerate()
            .map(|(i, payload)| Delivery {
                id: DeliveryId::generate().expect("id"),
                account: account.clone(),
                endpoint_id: endpoints[(chunk_no * 1000 + i) % ENDPOINTS].clone(),
                message_id: MessageId::generate().expect("id"),
                event_type: CallFinished::TYPE.into(),
                payload: payload.clone(),
                call_id: Some(call_id.clone()),
                state: DeliveryState::Pending,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                created_at: now,
                updated_at: now,
            })
            .collect();
        rt.block_on(store.enqueue(&batch)).expect("enqueue");
    }
    let list_bytes = payloads.capacity() * std::mem::size_of::<Bytes>();
    drop(payloads);
    let after = rss();

    let per = (after.saturating_sub(before)) as f64 / n as f64;
    let payload_part =
        (with_payloads.saturating_sub(before)) as f64 / n as f64 - list_bytes as f64 / n as f64;
    let store_part = per - payload_part;
    note!(
        "memory: {n} pending deliveries, payload {payload_len:.0} B; resident {per:.0} B per delivery = payload allocations {payload_part:.0} B + store records {store_part:.0} B (size_of Delivery {} B); budget {:.0} B",
        std::mem::size_of::<Delivery>(),
        payload_len + ALLOWANCE
    );
    println!("ratio {}", per / (payload_len + ALLOWANCE));
    drop(store);
}
