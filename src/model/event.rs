//! The events pushed out when a call wraps up: `call.finished` (outbound webhooks) and
//! `call.completed` (response webhooks and the Test button).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ModelError;
use super::enums::{CallStatus, LeadWarmth, Sentiment, Speaker, WebhookKind};
use super::execute::Contact;
use super::tag::{CompletedTag, FinishedTag};
use super::time::{epoch_millis, iso_millis};

/// `webhook`: the webhook an event was sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRef {
    /// The webhook's id.
    pub id: String,
    /// `outbound` for outbound webhooks and the Test button; `inbound` for response
    /// webhooks (which carry the id of the inbound webhook they are configured on).
    #[serde(rename = "type")]
    pub kind: WebhookKind,
}

impl WebhookRef {
    /// `{"id": id, "type": "outbound"}`.
    pub fn outbound(id: impl Into<String>) -> Self {
        WebhookRef {
            id: id.into(),
            kind: WebhookKind::Outbound,
        }
    }

    /// `{"id": id, "type": "inbound"}`: a response webhook on inbound webhook `id`.
    pub fn inbound(id: impl Into<String>) -> Self {
        WebhookRef {
            id: id.into(),
            kind: WebhookKind::Inbound,
        }
    }
}

/// `campaign`: the source campaign.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CampaignRef {
    /// The campaign's id.
    pub id: String,
    /// The campaign's name.
    pub name: String,
}

impl CampaignRef {
    /// A campaign reference.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        CampaignRef {
            id: id.into(),
            name: name.into(),
        }
    }
}

/// `call.recipient`: who was called. camelCase, and no company field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// Contact phone in E.164.
    #[serde(default)]
    pub phone_number: String,
    /// First name. Always present in `call.finished` (empty when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name. Always present in `call.finished` (empty when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Email. Always present in `call.finished` (empty when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Optional address line 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    /// Optional address line 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    /// Optional city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Optional state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Optional postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    /// Optional note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Recipient {
    /// A recipient with a phone number only.
    pub fn new(phone_number: impl Into<String>) -> Self {
        Recipient {
            phone_number: phone_number.into(),
            ..Recipient::default()
        }
    }

    /// Fills the identity fields a `call.finished` always carries.
    fn complete(mut self) -> Self {
        for f in [&mut self.first_name, &mut self.last_name, &mut self.email] {
            f.get_or_insert_with(String::new);
        }
        self
    }
}

impl From<&Contact> for Recipient {
    /// The contact of a `calls.execute` as an event's recipient (`companyName` is dropped:
    /// the recipient has no company field).
    fn from(c: &Contact) -> Self {
        Recipient {
            phone_number: c.phone_number.clone(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            email: c.email.clone(),
            address1: c.address1.clone(),
            address2: c.address2.clone(),
            city: c.city.clone(),
            state: c.state.clone(),
            zip_code: c.zip_code.clone(),
            note: c.note.clone(),
        }
    }
}

/// One turn of `call.transcript`: `{ who, what, when }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptTurn {
    /// Who spoke.
    pub who: Speaker,
    /// What was said.
    pub what: String,
    /// When, serialised as `2024-04-30T14:00:03.000Z` (exactly three fractional digits).
    #[serde(with = "iso_millis")]
    pub when: DateTime<Utc>,
}

impl TranscriptTurn {
    /// A turn.
    pub fn new(who: Speaker, what: impl Into<String>, when: DateTime<Utc>) -> Self {
        TranscriptTurn {
            who,
            what: what.into(),
            when,
        }
    }
}

/// `call.analysis`. Its warmth key is snake_case on the wire: `lead_warmth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    /// `positive`, `neutral` or `negative`.
    pub sentiment: Sentiment,
    /// `hot`, `warm`, `cold`, `dead` or `unknown`.
    pub lead_warmth: LeadWarmth,
    /// The AI's reasoning for the warmth classification.
    #[serde(default)]
    pub justification: String,
}

impl Analysis {
    /// An analysis.
    pub fn new(
        sentiment: Sentiment,
        lead_warmth: LeadWarmth,
        justification: impl Into<String>,
    ) -> Self {
        Analysis {
            sentiment,
            lead_warmth,
            justification: justification.into(),
        }
    }

    /// The documented empty analysis of a call that has none: `neutral`, `unknown`, `""`.
    pub fn empty() -> Self {
        Analysis::new(Sentiment::Neutral, LeadWarmth::Unknown, "")
    }
}

/// `call`: one call's result. The optional fields are absent in a `call.completed` for a
/// call that lacks them (one that never connected, say); a [`CallFinished`] always carries
/// them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// The call id.
    pub id: String,
    /// `finished`, `missed` or `failed`.
    pub status: CallStatus,
    /// Who was called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
    /// One-paragraph AI summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The conversation, turn by turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<Vec<TranscriptTurn>>,
    /// URL of the MP3 recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    /// Call length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// Sentiment, lead warmth and justification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
    /// Credits used for the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_consumed: Option<u64>,
}

impl Call {
    /// A call with an id and a status and no other data yet.
    pub fn new(id: impl Into<String>, status: CallStatus) -> Self {
        Call {
            id: id.into(),
            status,
            recipient: None,
            summary: None,
            transcript: None,
            recording: None,
            duration: None,
            analysis: None,
            tokens_consumed: None,
        }
    }

    /// Sets the recipient.
    pub fn with_recipient(mut self, recipient: Recipient) -> Self {
        self.recipient = Some(recipient);
        self
    }

    /// Sets the summary.
    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Sets the transcript.
    pub fn with_transcript(mut self, transcript: Vec<TranscriptTurn>) -> Self {
        self.transcript = Some(transcript);
        self
    }

    /// Sets the recording URL.
    pub fn with_recording(mut self, url: impl Into<String>) -> Self {
        self.recording = Some(url.into());
        self
    }

    /// Sets the duration in seconds.
    pub fn with_duration(mut self, seconds: u64) -> Self {
        self.duration = Some(seconds);
        self
    }

    /// Sets the analysis.
    pub fn with_analysis(mut self, analysis: Analysis) -> Self {
        self.analysis = Some(analysis);
        self
    }

    /// Sets the credits consumed.
    pub fn with_tokens_consumed(mut self, tokens: u64) -> Self {
        self.tokens_consumed = Some(tokens);
        self
    }

    /// This call with every field a `call.finished` carries, each absent one replaced by
    /// its documented empty value: recipient `{phoneNumber:"", firstName:"", lastName:"",
    /// email:""}`, summary `""`, transcript `[]`, recording `""`, duration `0`, analysis
    /// [`Analysis::empty`], tokensConsumed `0`. Optional address fields stay absent.
    pub fn completed_for_finished(self) -> Self {
        Call {
            recipient: Some(self.recipient.unwrap_or_default().complete()),
            summary: Some(self.summary.unwrap_or_default()),
            transcript: Some(self.transcript.unwrap_or_default()),
            recording: Some(self.recording.unwrap_or_default()),
            duration: Some(self.duration.unwrap_or(0)),
            analysis: Some(self.analysis.unwrap_or_else(Analysis::empty)),
            tokens_consumed: Some(self.tokens_consumed.unwrap_or(0)),
            ..self
        }
    }
}

/// `call.finished`: sent to every enabled outbound webhook of the call's account when a
/// call completes and its final analysis is attached.
///
/// It always carries every field of the seed's field reference: the constructor and the
/// parser both fill a missing value with its documented empty value
/// ([`Call::completed_for_finished`]), so an invalid `call.finished` cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawFinished")]
pub struct CallFinished {
    #[serde(rename = "type")]
    kind: FinishedTag,
    #[serde(with = "epoch_millis")]
    timestamp: DateTime<Utc>,
    webhook: WebhookRef,
    call: Call,
    campaign: CampaignRef,
}

#[derive(Deserialize)]
struct RawFinished {
    #[serde(rename = "type")]
    kind: FinishedTag,
    #[serde(with = "epoch_millis")]
    timestamp: DateTime<Utc>,
    webhook: WebhookRef,
    call: Call,
    campaign: CampaignRef,
}

impl From<RawFinished> for CallFinished {
    fn from(r: RawFinished) -> Self {
        CallFinished {
            kind: r.kind,
            timestamp: r.timestamp,
            webhook: r.webhook,
            call: r.call.completed_for_finished(),
            campaign: r.campaign,
        }
    }
}

impl CallFinished {
    /// The value of `type`: `"call.finished"`.
    pub const TYPE: &'static str = FinishedTag::VALUE;

    /// A `call.finished` for outbound webhook `webhook_id` (`webhook.type` is `outbound`).
    /// Absent call data becomes its documented empty value.
    pub fn new(
        webhook_id: impl Into<String>,
        timestamp: DateTime<Utc>,
        call: Call,
        campaign: CampaignRef,
    ) -> Self {
        CallFinished {
            kind: FinishedTag,
            timestamp,
            webhook: WebhookRef::outbound(webhook_id),
            call: call.completed_for_finished(),
            campaign,
        }
    }

    /// When the event was created (`timestamp`, epoch milliseconds on the wire).
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    /// The outbound webhook the event is addressed to.
    pub fn webhook(&self) -> &WebhookRef {
        &self.webhook
    }

    /// The call, with every field present.
    pub fn call(&self) -> &Call {
        &self.call
    }

    /// The source campaign.
    pub fn campaign(&self) -> &CampaignRef {
        &self.campaign
    }

    /// Takes the call out.
    pub fn into_call(self) -> Call {
        self.call
    }
}

/// `call.completed`: sent to an inbound webhook's response webhook, and by the Test button.
/// The same shape as `call.finished`, except that `recipient`, `summary`, `transcript`,
/// `recording`, `duration`, `analysis` and `tokensConsumed` may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCompleted {
    #[serde(rename = "type")]
    kind: CompletedTag,
    /// When the event was created (epoch milliseconds on the wire).
    #[serde(with = "epoch_millis")]
    pub timestamp: DateTime<Utc>,
    /// The webhook the event is addressed to.
    pub webhook: WebhookRef,
    /// The call; absent optional fields stay absent.
    pub call: Call,
    /// The source campaign.
    pub campaign: CampaignRef,
}

impl CallCompleted {
    /// The value of `type`: `"call.completed"`.
    pub const TYPE: &'static str = CompletedTag::VALUE;

    /// A `call.completed` for `webhook`.
    pub fn new(
        webhook: WebhookRef,
        timestamp: DateTime<Utc>,
        call: Call,
        campaign: CampaignRef,
    ) -> Self {
        CallCompleted {
            kind: CompletedTag,
            timestamp,
            webhook,
            call,
            campaign,
        }
    }
}

/// Either event, chosen by `type`. What a receiver parses: the Test button sends
/// `call.completed` while real outbound deliveries send `call.finished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// `call.finished`.
    Finished(CallFinished),
    /// `call.completed`.
    Completed(CallCompleted),
}

impl CallEvent {
    /// Parses JSON bytes. An unknown `type` is [`ModelError::UnknownEventType`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ModelError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(ModelError::Json)?;
        Self::from_value(value)
    }

    /// Parses a JSON value.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ModelError> {
        let kind = match value.get("type") {
            None => return Err(ModelError::MissingType),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => return Err(ModelError::TypeNotString),
        };
        match kind.as_str() {
            CallFinished::TYPE => serde_json::from_value(value)
                .map(CallEvent::Finished)
                .map_err(ModelError::Json),
            CallCompleted::TYPE => serde_json::from_value(value)
                .map(CallEvent::Completed)
                .map_err(ModelError::Json),
            _ => Err(ModelError::UnknownEventType(kind)),
        }
    }

    /// `"call.finished"` or `"call.completed"`.
    pub fn event_type(&self) -> &'static str {
        match self {
            CallEvent::Finished(_) => CallFinished::TYPE,
            CallEvent::Completed(_) => CallCompleted::TYPE,
        }
    }

    /// The call, whichever the event.
    pub fn call(&self) -> &Call {
        match self {
            CallEvent::Finished(e) => e.call(),
            CallEvent::Completed(e) => &e.call,
        }
    }

    /// The webhook reference.
    pub fn webhook(&self) -> &WebhookRef {
        match self {
            CallEvent::Finished(e) => e.webhook(),
            CallEvent::Completed(e) => &e.webhook,
        }
    }

    /// The campaign reference.
    pub fn campaign(&self) -> &CampaignRef {
        match self {
            CallEvent::Finished(e) => e.campaign(),
            CallEvent::Completed(e) => &e.campaign,
        }
    }

    /// The event's timestamp.
    pub fn timestamp(&self) -> DateTime<Utc> {
        match self {
            CallEvent::Finished(e) => e.timestamp(),
            CallEvent::Completed(e) => e.timestamp,
        }
    }

    /// Serialises to JSON bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising these types cannot fail: every map key is a string and every value
        // is a plain string, number, array or object.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl From<CallFinished> for CallEvent {
    fn from(e: CallFinished) -> Self {
        CallEvent::Finished(e)
    }
}

impl From<CallCompleted> for CallEvent {
    fn from(e: CallCompleted) -> Self {
        CallEvent::Completed(e)
    }
}

impl Serialize for CallEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CallEvent::Finished(e) => e.serialize(s),
            CallEvent::Completed(e) => e.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for CallEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        CallEvent::from_value(value).map_err(serde::de::Error::custom)
    }
}
