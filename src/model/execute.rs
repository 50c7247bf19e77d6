//! The inbound request: `{"type":"calls.execute","data":{…}}`.

use serde::{Deserialize, Serialize};

use super::tag::ExecuteTag;

/// The body a CRM posts to `POST /{slug}` to place a call.
///
/// Deserialising with serde is camelCase only: `first_name` never fills `firstName` and
/// unknown keys are ignored. The inbound path uses [`crate::validate::parse_calls_execute`],
/// which does the same in one pass and also reports each ignored key with a suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsExecute {
    #[serde(rename = "type")]
    kind: ExecuteTag,
    /// The contact to call.
    pub data: Contact,
}

impl CallsExecute {
    /// The value of `type`: always `"calls.execute"`.
    pub const TYPE: &'static str = ExecuteTag::VALUE;

    /// A request for `data`.
    pub fn new(data: Contact) -> Self {
        CallsExecute {
            kind: ExecuteTag,
            data,
        }
    }
}

/// `data` of a `calls.execute` request: who to call. Only `phoneNumber` is required.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Required. E.164 recommended (`+15551234567`); the inbound path normalises it.
    pub phone_number: String,
    /// Used for personalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Used for email follow-ups if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Company name. Not carried to the event's recipient, which has no company field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// Additional context for this contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Address line 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    /// Address line 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// State or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
}

impl Contact {
    /// The camelCase keys of `data`, in the seed's order.
    pub const FIELDS: [&'static str; 11] = [
        "phoneNumber",
        "firstName",
        "lastName",
        "email",
        "companyName",
        "note",
        "address1",
        "address2",
        "city",
        "state",
        "zipCode",
    ];

    /// A contact with a phone number and nothing else.
    pub fn new(phone_number: impl Into<String>) -> Self {
        Contact {
            phone_number: phone_number.into(),
            ..Contact::default()
        }
    }
    /// Every field's value in [`FIELDS`](Self::FIELDS) order, the phone number first.
    pub(crate) fn values(&self) -> [Option<&str>; 11] {
        [
            Some(self.phone_number.as_str()),
            self.first_name.as_deref(),
            self.last_name.as_deref(),
            self.email.as_deref(),
            self.company_name.as_deref(),
            self.note.as_deref(),
            self.address1.as_deref(),
            self.address2.as_deref(),
            self.city.as_deref(),
            self.state.as_deref(),
            self.zip_code.as_deref(),
        ]
    }

    /// The optional fields (all but the phone number) in [`FIELDS`](Self::FIELDS) order,
    /// to fill in.
    pub(crate) fn optional_mut(&mut self) -> [&mut Option<String>; 10] {
        [
            &mut self.first_name,
            &mut self.last_name,
            &mut self.email,
            &mut self.company_name,
            &mut self.note,
            &mut self.address1,
            &mut self.address2,
            &mut self.city,
            &mut self.state,
            &mut self.zip_code,
        ]
    }
}
