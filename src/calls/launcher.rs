//! Dialing is the embedding application's job: it implements [`CallLauncher`]. The crate
//! never dials. [`SimulatedLauncher`] stands in for examples and tests.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::CallResult;
use crate::campaign::SettingsVersion;
use crate::ids::{AccountId, CallId};
use crate::model::{Analysis, CallStatus, LeadWarmth, Sentiment, Speaker, TranscriptTurn};
use crate::store::CallRecord;

/// Why a launch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("launch failed: {0}")]
pub struct LaunchError(pub String);

/// Places real calls. Called after the call is stored; the application reports the result
/// later through [`CallService::complete`](super::CallService::complete).
#[async_trait]
pub trait CallLauncher: Send + Sync {
    /// Starts dialing `call` with the campaign settings it runs with.
    async fn launch(
        &self,
        call: &CallRecord,
        settings: &SettingsVersion,
    ) -> Result<(), LaunchError>;
}

/// A launcher that dials nobody: it remembers launched calls and produces deterministic
/// results for them. Numbers ending in `0000` are missed, in `9999` failed, all others
/// finished, with a transcript in which the assistant greets the contact by first name.
#[derive(Debug, Default)]
pub struct SimulatedLauncher {
    pending: Mutex<VecDeque<(AccountId, CallId, DateTime<Utc>)>>,
}

impl SimulatedLauncher {
    /// A launcher with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the calls launched so far (account, call, launch time: the call's `created_at`,
    /// on the clock of the service that placed it), oldest first.
    pub fn take_pending(&self) -> Vec<(AccountId, CallId, DateTime<Utc>)> {
        self.lock().drain(..).collect()
    }

    /// Takes the calls launched at or before `cutoff`, oldest first.
    pub fn take_launched_before(&self, cutoff: DateTime<Utc>) -> Vec<(AccountId, CallId)> {
        let mut g = self.lock();
        let mut out = Vec::new();
        while g.front().is_some_and(|(_, _, at)| *at <= cutoff) {
            if let Some((a, c, _)) = g.pop_front() {
                out.push((a, c));
            }
        }
        out
    }

    /// How many launched calls are waiting for a result.
    pub fn pending_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(AccountId, CallId, DateTime<Utc>)>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The deterministic result of a simulated call.
    pub fn outcome(call: &CallRecord, ended_at: DateTime<Utc>) -> CallResult {
        let number = call.contact.phone_number.as_str();
        let name = call
            .contact
            .first_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or("there");
        if number.ends_with("0000") {
            return CallResult {
                summary: Some(format!(
                    "No answer from {name}; the call went to voicemail."
                )),
                duration: Some(0),
                analysis: Some(Analysis::new(
                    Sentiment::Neutral,
                    LeadWarmth::Unknown,
                    "The recipient did not answer.",
                )),
                tokens_consumed: Some(1),
                ..CallResult::new(CallStatus::Missed)
            };
        }
        if number.ends_with("9999") {
            return CallResult {
                summary: Some("The call could not be connected.".into()),
                tokens_consumed: Some(0),
                ..CallResult::new(CallStatus::Failed)
            };
        }
        let start = ended_at - Duration::seconds(42);
        let start = start - Duration::nanoseconds(i64::from(start.timestamp_subsec_nanos()));
        CallResult {
            summary: Some(format!(
                "{name} answered, heard the offer and asked for pricing by email."
            )),
            transcript: Some(vec![
                TranscriptTurn::new(
                    Speaker::Assistant,
                    format!("Hi {name}, this is Alex from Atllas."),
                    start + Duration::seconds(3),
                ),
                TranscriptTurn::new(
                    Speaker::User,
                    "Hi, yes, speaking.",
                    start + Duration::seconds(5),
                ),
                TranscriptTurn::new(
                    Speaker::Assistant,
                    "I'm calling about the plan you asked about.",
                    start + Duration::seconds(8),
                ),
                TranscriptTurn::new(
                    Speaker::User,
                    "Great, please send me the pricing.",
                    start + Duration::seconds(12),
                ),
            ]),
            recording: Some(format!("https://recordings.example.com/{}.mp3", call.id)),
            duration: Some(42),
            analysis: Some(Analysis::new(
                Sentiment::Positive,
                LeadWarmth::Hot,
                "Asked for pricing and follow-up.",
            )),
            tokens_consumed: Some(1),
            action_items: vec![format!("Email pricing to {name}")],
            ..CallResult::new(CallStatus::Finished)
        }
    }
}

#[async_trait]
impl CallLauncher for SimulatedLauncher {
    async fn launch(&self, call: &CallRecord, _: &SettingsVersion) -> Result<(), LaunchError> {
        // Launched right after it was stored: its creation time, on the service's clock.
        self.lock()
            .push_back((call.account.clone(), call.id.clone(), call.created_at));
        Ok(())
    }
}
