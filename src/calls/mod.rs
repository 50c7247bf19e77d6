//! The call lifecycle, whatever started the call (an inbound webhook, an outbound
//! campaign, a test call).
//!
//! 1. [`CallService::place`] checks the campaign (it must exist, be active and have a
//!    prompt) and the account's [`Credits`]. If either fails the call is still stored, as
//!    `cancelled` with its reason ("insufficient funds" when out of credits). Otherwise it is
//!    stored with the campaign's current settings version and handed to the
//!    [`CallLauncher`].
//! 2. [`CallService::complete`] records the result and, in the same atomic store operation,
//!    enqueues the events: a `call.finished` for every enabled outbound webhook of the
//!    account, and a `call.completed` for the response webhook of the inbound webhook that
//!    triggered the call, if it has one. Then it debits `tokensConsumed` credits.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::campaign::SettingsVersion;
use crate::clock::{Clock, SystemClock};
use crate::ids::{AccountId, CallId, CampaignId, DeliveryId, MessageId, RngError};
use crate::model::{
    Analysis, Call, CallCompleted, CallFinished, CallStatus, CampaignRef, Contact, Recipient,
    TranscriptTurn, WebhookRef,
};
use crate::store::{
    CallOrigin, CallRecord, CallState, Delivery, DeliveryState, EndpointKind, Store, StoreError,
};

mod credits;
mod launcher;

pub use credits::{Credits, MemoryCredits, UnlimitedCredits};
pub use launcher::{CallLauncher, LaunchError, SimulatedLauncher};

/// The reason recorded when an account is out of credits.
pub const INSUFFICIENT_FUNDS: &str = "insufficient funds";

/// Errors of the call lifecycle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallsError {
    /// The call does not exist in this account.
    #[error("call {0} not found")]
    NotFound(CallId),
    /// The call was already completed or cancelled; nothing was enqueued again.
    #[error("call {0} is already {1}")]
    AlreadyFinal(CallId, &'static str),
    /// The credit ledger failed.
    #[error("credits: {0}")]
    Credits(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The random generator failed.
    #[error(transparent)]
    Rng(#[from] RngError),
}

impl From<StoreError> for CallsError {
    fn from(e: StoreError) -> Self {
        CallsError::Store(e)
    }
}

/// What a finished call produced, as the application (or the simulator) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    /// `finished`, `missed` or `failed`.
    pub status: CallStatus,
    /// One-paragraph AI summary.
    pub summary: Option<String>,
    /// The transcript.
    pub transcript: Option<Vec<TranscriptTurn>>,
    /// Recording URL.
    pub recording: Option<String>,
    /// Length in seconds.
    pub duration: Option<u64>,
    /// Sentiment, warmth, justification.
    pub analysis: Option<Analysis>,
    /// Credits used; debited from the account.
    pub tokens_consumed: Option<u64>,
    /// Extracted action items (kept with the call; not part of the events).
    pub action_items: Vec<String>,
}

impl CallResult {
    /// A result with a status and nothing else.
    pub fn new(status: CallStatus) -> Self {
        CallResult {
            status,
            summary: None,
            transcript: None,
            recording: None,
            duration: None,
            analysis: None,
            tokens_consumed: None,
            action_items: Vec::new(),
        }
    }
}

/// Whether a call was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// Stored and handed to the launcher.
    Placed,
    /// Stored as cancelled, for this reason.
    Cancelled(String),
}

/// A call that was asked for.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The stored call.
    pub call: CallRecord,
    /// Placed or cancelled.
    pub outcome: PlaceOutcome,
}

/// A completed call and the deliveries it enqueued.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The call as sent in events.
    pub call: Call,
    /// The deliveries enqueued with it.
    pub deliveries: Vec<Delivery>,
}

/// The call lifecycle over a store.
pub struct CallService<S: ?Sized> {
    store: Arc<S>,
    launcher: Arc<dyn CallLauncher>,
    credits: Arc<dyn Credits>,
    clock: Arc<dyn Clock>,
}

impl<S: ?Sized> std::fmt::Debug for CallService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallService").finish_non_exhaustive()
    }
}

impl<S: Store + ?Sized> CallService<S> {
    /// A service over `store`, dialing through `launcher`, metering with `credits`.
    pub fn new(store: Arc<S>, launcher: Arc<dyn CallLauncher>, credits: Arc<dyn Credits>) -> Self {
        CallService {
            store,
            launcher,
            credits,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The clock that times calls.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Asks for a call to `contact` (its phone number already in E.164) with `campaign`'s
    /// settings. The call is always stored: placed, or cancelled with the reason.
    pub async fn place(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
        origin: CallOrigin,
        contact: Contact,
    ) -> Result<Placed, CallsError> {
        self.place_at(account, campaign, origin, contact, self.clock.now())
            .await
    }

    /// [`place`](Self::place) at `now` (the inbound handler's time of the request).
    pub(crate) async fn place_at(
        &self,
        account: &AccountId,
        campaign: Option<&CampaignId>,
        origin: CallOrigin,
        contact: Contact,
        now: DateTime<Utc>,
    ) -> Result<Placed, CallsError> {
        // The settings the call runs with, or why it is cancelled; and the version either
        // way. Only what the call needs is kept across the awaits below: this future lives
        // inside every caller's.
        let (settings_version, run) = match campaign {
            None => (
                0,
                Err("no campaign is bound to this webhook (create one)".to_owned()),
            ),
            Some(id) => match self.store.campaign(account, id).await {
                Ok(c) => (
                    c.settings_version,
                    match c.refusal() {
                        Some(reason) => Err(reason),
                        // The version the call runs with, moved out of the campaign (no
                        // copy of the settings).
                        None => Ok(SettingsVersion {
                            campaign_id: c.id,
                            version: c.settings_version,
                            settings: c.settings,
                            created_at: c.updated_at,
                        }),
                    },
                ),
                Err(StoreError::NotFound { .. }) => {
                    (0, Err(format!("campaign {id} does not exist")))
                }
                Err(e) => return Err(e.into()),
            },
        };
        let run = match run {
            Ok(_) if !self.credits.has_credit(account).await? => Err(INSUFFICIENT_FUNDS.to_owned()),
            other => other,
        };
        let mut call = CallRecord {
            id: CallId::generate()?,
            account: account.clone(),
            campaign_id: campaign.cloned(),
            settings_version,
            origin,
            contact,
            state: CallState::Queued,
            cancel_reason: None,
            result: None,
            action_items: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let settings = match run {
            Ok(settings) => settings,
            Err(reason) => {
                call.state = CallState::Cancelled;
                call.cancel_reason = Some(reason.clone());
                self.store.insert_call(&call).await?;
                return Ok(Placed {
                    call,
                    outcome: PlaceOutcome::Cancelled(reason),
                });
            }
        };
        self.store.insert_call(&call).await?;
        match self.launcher.launch(&call, &settings).await {
            Ok(()) => {
                self.store
                    .set_call_state(account, &call.id, CallState::Dialing, None, now)
                    .await?;
                call.state = CallState::Dialing;
                Ok(Placed {
                    call,
                    outcome: PlaceOutcome::Placed,
                })
            }
            Err(e) => {
                let reason = e.to_string();
                self.store
                    .set_call_state(
                        account,
                        &call.id,
                        CallState::Cancelled,
                        Some(reason.clone()),
                        now,
                    )
                    .await?;
                call.state = CallState::Cancelled;
                call.cancel_reason = Some(reason.clone());
                Ok(Placed {
                    call,
                    outcome: PlaceOutcome::Cancelled(reason),
                })
            }
        }
    }

    /// Records a call's result and enqueues its events in one atomic store operation, then
    /// debits the credits it consumed. Completing twice is [`CallsError::AlreadyFinal`] and
    /// enqueues nothing.
    pub async fn complete(
        &self,
        account: &AccountId,
        id: &CallId,
        result: CallResult,
    ) -> Result<Completed, CallsError> {
        let now = self.clock.now();
        let record = match self.store.call(account, id).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Err(CallsError::NotFound(id.clone())),
            Err(e) => return Err(e.into()),
        };
        if matches!(record.state, CallState::Completed | CallState::Cancelled) {
            return Err(CallsError::AlreadyFinal(id.clone(), record.state.as_str()));
        }
        let call = Call {
            id: id.to_string(),
            status: result.status,
            recipient: Some(Recipient::from(&record.contact)),
            summary: result.summary,
            transcript: result.transcript,
            recording: result.recording,
            duration: result.duration,
            analysis: result.analysis,
            tokens_consumed: result.tokens_consumed,
        };
        let deliveries = self.fan_out(&record, &call, now).await?;
        match self
            .store
            .complete_call(account, id, &call, &result.action_items, &deliveries, now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(CallsError::AlreadyFinal(id.clone(), "completed"));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(tokens) = call.tokens_consumed.filter(|t| *t > 0) {
            self.credits.debit(account, tokens).await?;
        }
        Ok(Completed { call, deliveries })
    }

    /// The deliveries a completed call causes.
    async fn fan_out(
        &self,
        record: &CallRecord,
        call: &Call,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, CallsError> {
        let account = &record.account;
        let campaign = match &record.campaign_id {
            Some(id) => match self.store.campaign(account, id).await {
                Ok(c) => c.to_ref(),
                Err(StoreError::NotFound { .. }) => CampaignRef::new(id.as_str(), ""),
                Err(e) => return Err(e.into()),
            },
            None => CampaignRef::default(),
        };
        let response = match &record.origin {
            CallOrigin::InboundWebhook { webhook } => {
                match self.store.inbound(account, webhook).await {
                    Ok(w) => w.response_endpoint,
                    Err(StoreError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            _ => None,
        };
        let mut out = Vec::new();
        for e in self.store.endpoints(account).await? {
            if !e.enabled {
                continue;
            }
            let (event_type, payload) = match &e.kind {
                EndpointKind::Outbound => {
                    let event =
                        CallFinished::new(e.id.as_str(), now, call.clone(), campaign.clone());
                    (CallFinished::TYPE, serde_json::to_vec(&event))
                }
                EndpointKind::Response { inbound } if response.as_ref() == Some(&e.id) => {
                    let event = CallCompleted::new(
                        WebhookRef::inbound(inbound.as_str()),
                        now,
                        call.clone(),
                        campaign.clone(),
                    );
                    (CallCompleted::TYPE, serde_json::to_vec(&event))
                }
                EndpointKind::Response { .. } => continue,
            };
            let payload = payload.map_err(|e| StoreError::Corrupt(format!("event JSON: {e}")))?;
            out.push(Delivery {
                id: DeliveryId::generate()?,
                account: account.clone(),
                endpoint_id: e.id.clone(),
                message_id: MessageId::generate()?,
                event_type: event_type.into(),
                // Exactly sized: a `Vec` with spare capacity would become a `Bytes` that
                // keeps the spare bytes (and a separate header) while the delivery is queued.
                payload: Bytes::from(payload.into_boxed_slice()),
                call_id: Some(record.id.clone()),
                state: DeliveryState::Pending,
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                created_at: now,
                updated_at: now,
            });
        }
        Ok(out)
    }
}
