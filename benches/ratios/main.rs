//! `cargo bench --bench ratios`: every figure is a ratio against a bare baseline measured in
//! the same run, in alternating slices (baseline, subject, baseline, subject, …), so that a
//! shared, noisy machine slows both sides alike. Each figure prints one line:
//!
//! ```text
//! ratio <name> <median> min <min> max <max> target <op> <value> <PASS|FAIL>
//! ```
//!
//! then a `summary:` line. A FAIL is reported, never turned into a failing exit status: CI
//! must not gate on timing. Details (throughputs, op counts, the memory breakdown) go to
//! stderr, each line starting with `#`.
//!
//! - `RATIOS_QUICK=1`: fewer and shorter pairs, for a smoke run.
//! - `cargo bench --bench ratios -- --list`: the figures and their targets.
//! - `cargo bench --bench ratios -- inbound_parse unseal`: only the figures whose name
//!   contains one of the words.
//!
//! - `--features postgres` and a database in `DATABASE_URL`: the `postgres_*` figures
//!   (skipped, saying why, without either).
//!
//! - `RATIOS_PROFILE=subject` (or `baseline`): run only that side of each figure, for a
//!   profiler (`perf record`, `valgrind --tool=callgrind`); the ratios are then meaningless.
//!
//! Run without `--bench` (as `cargo test --benches` does) it makes one tiny pair per
//! figure: a check that every figure still runs, not a measurement.

mod micro;
mod net;
#[cfg(feature = "postgres")]
mod postgres_queue;
mod queue;
mod resident;
#[path = "../../examples/support/http.rs"]
mod server;
mod sqlite_queue;

use std::time::Duration;

/// The PostgreSQL figures without `--features postgres`: skipped, saying so.
#[cfg(not(feature = "postgres"))]
mod postgres_queue {
    use crate::{Config, Outcome};

    fn off() -> Outcome {
        Outcome::Skipped("needs --features postgres and a database in DATABASE_URL".into())
    }

    pub fn postgres_queue(_: &Config) -> Outcome {
        off()
    }

    pub fn postgres_claim_batch(_: &Config) -> Outcome {
        off()
    }

    pub fn postgres_churn(_: &Config) -> Outcome {
        off()
    }
}

/// How much measuring a run does.
#[derive(Debug, Clone)]
pub struct Config {
    /// `quick`, `full` or `check`.
    pub mode: &'static str,
    /// Pairs of the in-process figures.
    pub pairs: usize,
    /// Pairs of the HTTP figures.
    pub http_pairs: usize,
    /// Length of one slice of an in-process figure (the op count is calibrated to it).
    pub slice: Duration,
    /// Length of one load slice of `inbound_http`.
    pub http_slice: Duration,
    /// Deliveries drained per slice of `delivery_loopback`.
    pub deliveries: usize,
    /// Pending deliveries of the `memory` figure.
    pub memory_deliveries: usize,
    /// Runs of the `memory` figure (each in a fresh process).
    pub memory_runs: usize,
    /// Completed deliveries of history behind `postgres_churn`.
    pub churn: u64,
    /// `Some(side)`: only that side runs (`RATIOS_PROFILE`), for profiling.
    pub only: Option<Side>,
}

/// The two sides of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The bare baseline.
    Baseline,
    /// The crate's code.
    Subject,
}

impl Config {
    /// Whether `side` runs (both do, unless profiling one).
    pub fn runs(&self, side: Side) -> bool {
        self.only.is_none_or(|only| only == side)
    }
}

impl Config {
    fn full() -> Self {
        Config {
            mode: "full",
            pairs: 31,
            http_pairs: 21,
            slice: Duration::from_millis(50),
            http_slice: Duration::from_millis(400),
            deliveries: 16_384,
            memory_deliveries: 100_000,
            memory_runs: 3,
            churn: 1_000_000,
            only: None,
        }
    }

    fn quick() -> Self {
        Config {
            mode: "quick",
            pairs: 11,
            http_pairs: 5,
            slice: Duration::from_millis(20),
            http_slice: Duration::from_millis(150),
            deliveries: 4096,
            memory_deliveries: 100_000,
            memory_runs: 1,
            churn: 100_000,
            only: None,
        }
    }

    fn check() -> Self {
        Config {
            mode: "check",
            pairs: 1,
            http_pairs: 1,
            slice: Duration::from_millis(5),
            http_slice: Duration::from_millis(30),
            deliveries: 128,
            memory_deliveries: 2_000,
            memory_runs: 1,
            churn: 5_000,
            only: None,
        }
    }
}

/// `<=` or `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The ratio must not exceed the target (a time or a size against the baseline's).
    AtMost,
    /// The ratio must reach the target (a throughput against the baseline's).
    AtLeast,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::AtMost => "<=",
            Op::AtLeast => ">=",
        }
    }

    fn passes(self, ratio: f64, target: f64) -> bool {
        match self {
            Op::AtMost => ratio <= target,
            Op::AtLeast => ratio >= target,
        }
    }
}

/// What a figure measured.
pub enum Outcome {
    /// One ratio per pair (or per run).
    Ratios(Vec<f64>),
    /// Not measured, and why.
    Skipped(String),
}

/// One figure: a name, its target and the function that measures it.
pub struct Figure {
    /// Printed name, also what the filter matches.
    pub name: &'static str,
    /// The target, `None` for figures that are not measured yet.
    pub target: Option<(Op, f64)>,
    /// One line for `--list`.
    pub about: &'static str,
    /// Measures it.
    pub run: fn(&Config) -> Outcome,
}

fn figures() -> Vec<Figure> {
    vec![
        Figure {
            name: "inbound_parse",
            target: Some((Op::AtMost, 1.2)),
            about: "parse_calls_execute vs serde_json::from_slice into a plain derived struct (time)",
            run: micro::inbound_parse,
        },
        Figure {
            name: "event_sign",
            target: Some((Op::AtMost, 1.5)),
            about: "CallFinished::new + to_vec + signature_header vs to_writer + raw HMAC (time)",
            run: micro::event_sign,
        },
        Figure {
            name: "unseal",
            target: Some((Op::AtMost, 1.5)),
            about: "KeyRing::unseal_string vs a bare Aes256Gcm decrypt, same AAD (time)",
            run: micro::unseal,
        },
        Figure {
            name: "inbound_http",
            target: Some((Op::AtLeast, 0.85)),
            about: "InboundHandler behind hyper vs the same server answering 201 with no work (req/s)",
            run: net::inbound_http,
        },
        Figure {
            name: "delivery_loopback",
            target: Some((Op::AtLeast, 0.8)),
            about: "the worker draining deliveries to 64 endpoints vs a raw hyper client sending the same signed requests (deliveries/s)",
            run: net::delivery_loopback,
        },
        Figure {
            name: "memory",
            target: Some((Op::AtMost, 1.0)),
            about: "resident bytes per pending delivery in MemoryStore / (payload size + 512 B)",
            run: resident::memory,
        },
        Figure {
            name: "sqlite_queue",
            target: Some((Op::AtLeast, 0.7)),
            about: "SqliteStore enqueue + lease + complete vs bare rusqlite running the same SQL (rows/s)",
            run: sqlite_queue::sqlite_queue,
        },
        Figure {
            name: "sqlite_claim_batch",
            target: Some((Op::AtLeast, 3.0)),
            about: "SqliteStore: 64 single-row leases vs one lease of 64 (time / time)",
            run: sqlite_queue::sqlite_claim_batch,
        },
        Figure {
            name: "postgres_queue",
            target: Some((Op::AtLeast, 0.7)),
            about: "PostgresStore enqueue + lease + finish vs bare tokio-postgres running the same SQL (rows/s; --features postgres, DATABASE_URL)",
            run: postgres_queue::postgres_queue,
        },
        Figure {
            name: "postgres_claim_batch",
            target: Some((Op::AtLeast, 3.0)),
            about: "PostgresStore: 64 single-row leases vs one lease of 64 (time / time)",
            run: postgres_queue::postgres_claim_batch,
        },
        Figure {
            name: "postgres_churn",
            target: Some((Op::AtLeast, 0.7)),
            about: "PostgresStore claim + finish after 1 M completed deliveries vs on a fresh schema (rows/s)",
            run: postgres_queue::postgres_churn,
        },
    ]
}

/// Median, min and max of the ratios.
fn stats(ratios: &[f64]) -> (f64, f64, f64) {
    let mut v = ratios.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// A detail line on stderr (stdout keeps exactly one line per figure).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        eprintln!("# {}", format_args!($($arg)*))
    };
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(pos) = args.iter().position(|a| a == resident::CHILD_FLAG) {
        resident::child(&args[pos + 1..]);
        return;
    }
    let bench = args.iter().any(|a| a == "--bench");
    let list = args.iter().any(|a| a == "--list");
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let selected: Vec<Figure> = figures()
        .into_iter()
        .filter(|f| filters.is_empty() || filters.iter().any(|w| f.name.contains(w)))
        .collect();

    if list {
        for f in &selected {
            let target = match f.target {
                Some((op, v)) => format!("{} {v:.2}", op.as_str()),
                None => "-".to_owned(),
            };
            println!("{}: bench  target {target}  {}", f.name, f.about);
        }
        return;
    }

    let quick = std::env::var("RATIOS_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut config = if !bench {
        Config::check()
    } else if quick {
        Config::quick()
    } else {
        Config::full()
    };
    config.only = match std::env::var("RATIOS_PROFILE").as_deref() {
        Ok("subject") => Some(Side::Subject),
        Ok("baseline") => Some(Side::Baseline),
        _ => None,
    };
    if let Some(side) = config.only {
        note!("RATIOS_PROFILE: only the {side:?} side runs; the ratios below are meaningless");
    }
    note!(
        "ratios: {} mode, {} pairs ({} for HTTP), {} ms slices, {} cores",
        config.mode,
        config.pairs,
        config.http_pairs,
        config.slice.as_millis(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    let (mut pass, mut fail, mut skipped) = (0, 0, 0);
    for f in &selected {
        let started = std::time::Instant::now();
        let outcome = (f.run)(&config);
        match (outcome, f.target) {
            (Outcome::Ratios(r), Some((op, target))) if !r.is_empty() => {
                let (median, min, max) = stats(&r);
                let ok = op.passes(median, target);
                if ok {
                    pass += 1;
                } else {
                    fail += 1;
                }
                println!(
                    "ratio {} {median:.2} min {min:.2} max {max:.2} target {} {target:.2} {}",
                    f.name,
                    op.as_str(),
                    if ok { "PASS" } else { "FAIL" }
                );
            }
            (Outcome::Skipped(why), _) => {
                skipped += 1;
                println!("ratio {} skipped ({why})", f.name);
            }
            (Outcome::Ratios(_), _) => {
                skipped += 1;
                println!("ratio {} skipped (no target or no measurement)", f.name);
            }
        }
        note!("{} took {:.1} s", f.name, started.elapsed().as_secs_f64());
    }
    println!(
        "summary: {} figures, {pass} pass, {fail} fail, {skipped} skipped",
        selected.len()
    );
}
