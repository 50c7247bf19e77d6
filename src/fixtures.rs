//! Fixtures for test suites: the seed's three example payloads verbatim, the same as typed
//! values, and a deterministic fake-data generator that covers every status, warmth and
//! sentiment.
//!
//! ```
//! use atllas_webhooks::fixtures::{self, FakeData};
//! use atllas_webhooks::model::CallEvent;
//!
//! // The verbatim JSON and the typed value agree.
//! let parsed = CallEvent::from_slice(fixtures::CALL_FINISHED_JSON.as_bytes()).unwrap();
//! assert_eq!(parsed, CallEvent::Finished(fixtures::call_finished()));
//!
//! // Deterministic fake data: the same seed gives the same calls.
//! let a = FakeData::new(7).call_finished();
//! let b = FakeData::new(7).call_finished();
//! assert_eq!(a, b);
//! ```

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::model::{
    Analysis, Call, CallCompleted, CallFinished, CallStatus, CallsExecute, CampaignRef, Contact,
    LeadWarmth, Recipient, Sentiment, Speaker, TranscriptTurn, WebhookRef,
};

/// The seed's `calls.execute` request body, verbatim.
pub const CALLS_EXECUTE_JSON: &str = r#"{
  "type": "calls.execute",
  "data": {
    "phoneNumber": "+15551234567",
    "firstName": "Jane",
    "lastName": "Smith",
    "email": "jane@example.com",
    "companyName": "Acme Corp",
    "note": "Expressed interest in the enterprise plan"
  }
}"#;

/// The seed's `call.finished` payload (outbound webhooks), verbatim.
pub const CALL_FINISHED_JSON: &str = r#"{
  "type": "call.finished",
  "timestamp": 1730179200000,
  "webhook": {
    "id": "webhook_abc123",
    "type": "outbound"
  },
  "call": {
    "id": "call_xyz789",
    "status": "finished",
    "recipient": {
      "phoneNumber": "+15551234567",
      "firstName": "Jane",
      "lastName": "Smith",
      "email": "jane@example.com",
      "address1": "123 Main St",
      "city": "Austin",
      "state": "TX",
      "zipCode": "78701",
      "note": "VIP lead"
    },
    "summary": "Jane expressed interest in the enterprise plan and asked about pricing.",
    "transcript": [
      { "who": "assistant", "what": "Hi, is this Jane?", "when": "2024-04-30T14:00:03.000Z" },
      { "who": "user", "what": "Yes, speaking.", "when": "2024-04-30T14:00:05.000Z" }
    ],
    "recording": "https://...",
    "duration": 142,
    "analysis": {
      "sentiment": "positive",
      "lead_warmth": "hot",
      "justification": "Expressed immediate interest and asked specific pricing questions."
    },
    "tokensConsumed": 1
  },
  "campaign": {
    "id": "campaign_123",
    "name": "Q4 Outreach"
  }
}"#;

/// The seed's Test button payload (`call.completed`), verbatim.
pub const CALL_COMPLETED_TEST_JSON: &str = r#"{
  "type": "call.completed",
  "timestamp": 1730179200000,
  "webhook": { "id": "webhook_test_outbound_456", "type": "outbound" },
  "call": {
    "id": "call_test_abc123def456",
    "status": "finished",
    "recipient": {
      "phoneNumber": "+15555551234",
      "firstName": "Jessica",
      "lastName": "Smith",
      "email": "jessica.smith@example.com"
    },
    "summary": "Example call summary from the test button.",
    "transcript": [
      { "who": "assistant", "what": "Hi Jessica, this is Alex.", "when": "2024-04-30T14:00:03.000Z" },
      { "who": "user", "what": "I'm doing well, thanks for calling!", "when": "2024-04-30T14:00:05.000Z" }
    ],
    "recording": "https://storage.googleapis.com/atllas-call-recordings/test-recording-example.mp3",
    "duration": 123,
    "analysis": { "sentiment": "positive", "lead_warmth": "hot", "justification": "Example justification." },
    "tokensConsumed": 42
  },
  "campaign": { "id": "campaign_test_xyz789", "name": "Example Campaign" }
}"#;

/// The timestamp of the seed's examples: 1730179200000 ms.
pub const SEED_TIMESTAMP_MS: i64 = 1_730_179_200_000;

fn ms(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis)
        .single()
        .unwrap_or_default()
}

/// `2024-04-30T14:00:00.000Z`, the start of the seed's transcripts.
fn transcript_start() -> DateTime<Utc> {
    ms(1_714_485_600_000)
}

/// [`CALLS_EXECUTE_JSON`] as a typed value.
pub fn calls_execute() -> CallsExecute {
    CallsExecute::new(Contact {
        first_name: Some("Jane".into()),
        last_name: Some("Smith".into()),
        email: Some("jane@example.com".into()),
        company_name: Some("Acme Corp".into()),
        note: Some("Expressed interest in the enterprise plan".into()),
        ..Contact::new("+15551234567")
    })
}

/// [`CALL_FINISHED_JSON`] as a typed value.
pub fn call_finished() -> CallFinished {
    let start = transcript_start();
    let call = Call::new("call_xyz789", CallStatus::Finished)
        .with_recipient(Recipient {
            first_name: Some("Jane".into()),
            last_name: Some("Smith".into()),
            email: Some("jane@example.com".into()),
            address1: Some("123 Main St".into()),
            city: Some("Austin".into()),
            state: Some("TX".into()),
            zip_code: Some("78701".into()),
            note: Some("VIP lead".into()),
            ..Recipient::new("+15551234567")
        })
        .with_summary("Jane expressed interest in the enterprise plan and asked about pricing.")
        .with_transcript(vec![
            TranscriptTurn::new(
                Speaker::Assistant,
                "Hi, is this Jane?",
                start + Duration::seconds(3),
            ),
            TranscriptTurn::new(
                Speaker::User,
                "Yes, speaking.",
                start + Duration::seconds(5),
            ),
        ])
        .with_recording("https://...")
        .with_duration(142)
        .with_analysis(Analysis::new(
            Sentiment::Positive,
            LeadWarmth::Hot,
            "Expressed immediate interest and asked specific pricing questions.",
        ))
        .with_tokens_consumed(1);
    CallFinished::new(
        "webhook_abc123",
        ms(SEED_TIMESTAMP_MS),
        call,
        CampaignRef::new("campaign_123", "Q4 Outreach"),
    )
}

/// [`CALL_COMPLETED_TEST_JSON`] as a typed value.
pub fn call_completed_test() -> CallCompleted {
    test_button_payload("webhook_test_outbound_456", ms(SEED_TIMESTAMP_MS))
}

/// The Test button's payload: the seed's example data, with the tested webhook's id as
/// `webhook.id` (`webhook.type` is `outbound`) and `timestamp` as given.
pub fn test_button_payload(webhook_id: &str, timestamp: DateTime<Utc>) -> CallCompleted {
    let start = transcript_start();
    let call = Call::new("call_test_abc123def456", CallStatus::Finished)
        .with_recipient(Recipient {
            first_name: Some("Jessica".into()),
            last_name: Some("Smith".into()),
            email: Some("jessica.smith@example.com".into()),
            ..Recipient::new("+15555551234")
        })
        .with_summary("Example call summary from the test button.")
        .with_transcript(vec![
            TranscriptTurn::new(
                Speaker::Assistant,
                "Hi Jessica, this is Alex.",
                start + Duration::seconds(3),
            ),
            TranscriptTurn::new(
                Speaker::User,
                "I'm doing well, thanks for calling!",
                start + Duration::seconds(5),
            ),
        ])
        .with_recording(
            "https://storage.googleapis.com/atllas-call-recordings/test-recording-example.mp3",
        )
        .with_duration(123)
        .with_analysis(Analysis::new(
            Sentiment::Positive,
            LeadWarmth::Hot,
            "Example justification.",
        ))
        .with_tokens_consumed(42);
    CallCompleted::new(
        WebhookRef::outbound(webhook_id),
        timestamp,
        call,
        CampaignRef::new("campaign_test_xyz789", "Example Campaign"),
    )
}

const FIRST_NAMES: [&str; 8] = [
    "Jane", "Omar", "Priya", "Lukas", "Mei", "Carlos", "Aisha", "Tom",
];
const LAST_NAMES: [&str; 8] = [
    "Smith", "Haddad", "Patel", "Weber", "Chen", "Garcia", "Okafor", "Brown",
];
const COMPANIES: [&str; 4] = ["Acme Corp", "Globex", "Initech", "Umbrella Ltd"];
const CITIES: [(&str, &str, &str); 4] = [
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80202"),
    ("Boston", "MA", "02108"),
    ("Seattle", "WA", "98101"),
];

/// A deterministic generator of fake contacts, transcripts, calls and events: the same seed
/// always gives the same sequence, so tests that use it are reproducible. Phone numbers are
/// in the fictional `+1555…` range.
#[derive(Debug, Clone)]
pub struct FakeData {
    state: u64,
    counter: u64,
}

impl FakeData {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        FakeData {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            counter: 0,
        }
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let n = items.len().max(1) as u64;
        items.get((self.next() % n) as usize).copied().unwrap_or("")
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        let salt = self.next() & 0xffff;
        format!("{prefix}_{:06}{salt:04x}", self.counter)
    }

    /// A phone number `+1555` followed by seven digits (E.164, fictional range). Its last
    /// four digits are never `0000` or `9999` (which the simulated launcher treats as
    /// missed and failed).
    pub fn phone_number(&mut self) -> String {
        let exchange = self.next() % 1000;
        let line = 1 + self.next() % 9998;
        format!("+1555{exchange:03}{line:04}")
    }

    /// A contact with every field filled.
    pub fn contact(&mut self) -> Contact {
        let first = self.pick(&FIRST_NAMES);
        let last = self.pick(&LAST_NAMES);
        let (city, state, zip) = CITIES[(self.next() % CITIES.len() as u64) as usize];
        Contact {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            email: Some(format!(
                "{}.{}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            )),
            company_name: Some(self.pick(&COMPANIES).into()),
            note: Some(format!("Lead #{}", self.next() % 10_000)),
            address1: Some(format!("{} Main St", 1 + self.next() % 999)),
            address2: None,
            city: Some(city.into()),
            state: Some(state.into()),
            zip_code: Some(zip.into()),
            ..Contact::new(self.phone_number())
        }
    }

    /// A transcript of `turns` turns (at least two) starting at `start`, in which the
    /// assistant greets `first_name`; turns are two seconds apart, millisecond precision.
    pub fn transcript(
        &mut self,
        first_name: &str,
        start: DateTime<Utc>,
        turns: usize,
    ) -> Vec<TranscriptTurn> {
        const LINES: [&str; 4] = [
            "Yes, speaking.",
            "Sure, what is this about?",
            "That sounds interesting, tell me more.",
            "Can you send me the pricing by email?",
        ];
        let mut out = vec![TranscriptTurn::new(
            Speaker::Assistant,
            format!("Hi, is this {first_name}?"),
            start,
        )];
        for i in 1..turns.max(2) {
            let (who, what) = if i % 2 == 1 {
                (Speaker::User, self.pick(&LINES).to_owned())
            } else {
                (
                    Speaker::Assistant,
                    "Thanks, let me tell you about our plan.".to_owned(),
                )
            };
            out.push(TranscriptTurn::new(
                who,
                what,
                start + Duration::seconds(2 * i as i64),
            ));
        }
        out
    }

    /// A complete call with the given outcome, for a fresh fake contact.
    pub fn call(&mut self, status: CallStatus, sentiment: Sentiment, warmth: LeadWarmth) -> Call {
        let contact = self.contact();
        let first = contact.first_name.clone().unwrap_or_default();
        let start = transcript_start() + Duration::minutes((self.next() % 100_000) as i64);
        let id = self.next_id("call");
        let duration = if status == CallStatus::Finished {
            30 + self.next() % 600
        } else {
            0
        };
        let turns = 2 + (self.next() % 4) as usize;
        let transcript = self.transcript(&first, start, turns);
        Call::new(id.clone(), status)
            .with_recipient(Recipient::from(&contact))
            .with_summary(format!(
                "{first} talked with the assistant about the offer."
            ))
            .with_transcript(transcript)
            .with_recording(format!("https://recordings.example.com/{id}.mp3"))
            .with_duration(duration)
            .with_analysis(Analysis::new(
                sentiment,
                warmth.clone(),
                format!("Classified as {warmth} from the conversation."),
            ))
            .with_tokens_consumed(1 + self.next() % 50)
    }

    /// A campaign reference.
    pub fn campaign(&mut self) -> CampaignRef {
        let id = self.next_id("campaign");
        CampaignRef::new(id, format!("Campaign {}", self.counter))
    }

    /// A `call.finished` with a status, sentiment and warmth drawn from the documented
    /// values.
    pub fn call_finished(&mut self) -> CallFinished {
        let status = pick_known(CallStatus::KNOWN, self.next());
        let sentiment = pick_known(Sentiment::KNOWN, self.next());
        let warmth = pick_known(LeadWarmth::KNOWN, self.next());
        let call = self.call(status, sentiment, warmth);
        let webhook = self.next_id("webhook");
        let campaign = self.campaign();
        CallFinished::new(webhook, ms(SEED_TIMESTAMP_MS), call, campaign)
    }

    /// A `call.completed` for a response webhook; `missed` and `failed` calls omit the
    /// fields a call that never connected lacks.
    pub fn call_completed(&mut self) -> CallCompleted {
        let status = pick_known(CallStatus::KNOWN, self.next());
        let sentiment = pick_known(Sentiment::KNOWN, self.next());
        let warmth = pick_known(LeadWarmth::KNOWN, self.next());
        let mut call = self.call(status.clone(), sentiment, warmth);
        if status != CallStatus::Finished {
            call = Call {
                summary: None,
                transcript: None,
                recording: None,
                duration: None,
                analysis: None,
                ..call
            };
        }
        let webhook = WebhookRef::inbound(self.next_id("webhook"));
        let campaign = self.campaign();
        CallCompleted::new(webhook, ms(SEED_TIMESTAMP_MS), call, campaign)
    }

    /// One `call.finished` for every combination of status, sentiment and lead warmth
    /// (3 × 3 × 5 = 45 events).
    pub fn every_variant(&mut self) -> Vec<CallFinished> {
        let mut out = Vec::new();
        for status in CallStatus::KNOWN {
            for sentiment in Sentiment::KNOWN {
                for warmth in LeadWarmth::KNOWN {
                    let call = self.call(status.clone(), sentiment.clone(), warmth.clone());
                    let webhook = self.next_id("webhook");
                    let campaign = self.campaign();
                    out.push(CallFinished::new(
                        webhook,
                        ms(SEED_TIMESTAMP_MS),
                        call,
                        campaign,
                    ));
                }
            }
        }
        out
    }
}

fn pick_known<T: Clone>(items: &[T], r: u64) -> T {
    // `items` is one of the non-empty KNOWN tables.
    items[(r % items.len() as u64) as usize].clone()
}
