//! The memory store's calls: each record kept with its contact packed into one allocation.
//! A contact is up to eleven strings; kept apart, each would be an allocation to make when
//! the call is stored (the caller keeps its own copy) and to free with the record.

use crate::model::Contact;
use crate::store::CallRecord;

/// A stored call.
#[derive(Debug)]
pub(super) struct StoredCall {
    /// The record, with an empty contact: the contact is in `contact`.
    pub record: CallRecord,
    contact: PackedContact,
}

impl StoredCall {
    /// `call`, stored.
    pub fn new(call: &CallRecord) -> Self {
        // Every field by name: a field added to `CallRecord` must be decided on here.
        let CallRecord {
            id,
            account,
            campaign_id,
            settings_version,
            origin,
            contact,
            state,
            cancel_reason,
            result,
            action_items,
            created_at,
            updated_at,
        } = call;
        StoredCall {
            record: CallRecord {
                id: id.clone(),
                account: account.clone(),
                campaign_id: campaign_id.clone(),
                settings_version: *settings_version,
                origin: origin.clone(),
                contact: Contact::default(),
                state: *state,
                cancel_reason: cancel_reason.clone(),
                result: result.clone(),
                action_items: action_items.clone(),
                created_at: *created_at,
                updated_at: *updated_at,
            },
            contact: PackedContact::new(contact),
        }
    }

    /// The call as it was stored, with the changes made since.
    pub fn to_record(&self) -> CallRecord {
        let mut record = self.record.clone();
        record.contact = self.contact.unpack();
        record
    }
}

/// The contact's fields in one string, with where each ends and which are present.
#[derive(Debug)]
struct PackedContact {
    text: Box<str>,
    ends: [usize; FIELDS],
    present: u16,
}

const FIELDS: usize = Contact::FIELDS.len();

impl PackedContact {
    fn new(contact: &Contact) -> Self {
        let fields = fields(contact);
        let mut text = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let mut ends = [0; FIELDS];
        let mut present = 0;
        for (i, field) in fields.iter().enumerate() {
            if let Some(f) = field {
                text.push_str(f);
                present |= 1 << i;
            }
            ends[i] = text.len();
        }
        PackedContact {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    fn unpack(&self) -> Contact {
        let mut start = 0;
        let fields = std::array::from_fn(|i| {
            let end = self.ends[i];
            let field = (self.present & (1 << i) != 0)
                .then(|| self.text.get(start..end).unwrap_or_default().to_owned());
            start = end;
            field
        });
        from_fields(fields)
    }
}

/// The fields in [`Contact::FIELDS`] order.
fn fields(c: &Contact) -> [Option<&str>; FIELDS] {
    let Contact {
        phone_number,
        first_name,
        last_name,
        email,
        company_name,
        note,
        address1,
        address2,
        city,
        state,
        zip_code,
    } = c;
    [
        Some(phone_number.as_str()),
        first_name.as_deref(),
        last_name.as_deref(),
        email.as_deref(),
        company_name.as_deref(),
        note.as_deref(),
        address1.as_deref(),
        address2.as_deref(),
        city.as_deref(),
        state.as_deref(),
        zip_code.as_deref(),
    ]
}

fn from_fields(fields: [Option<String>; FIELDS]) -> Contact {
    let [
        phone_number,
        first_name,
        last_name,
        email,
        company_name,
        note,
        address1,
        address2,
        city,
        state,
        zip_code,
    ] = fields;
    Contact {
        phone_number: phone_number.unwrap_or_default(),
        first_name,
        last_name,
        email,
        company_name,
        note,
        address1,
        address2,
        city,
        state,
        zip_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_come_back_as_stored() {
        let full = Contact {
            first_name: Some("Jane".into()),
            last_name: Some(String::new()),
            email: Some("jane@example.com".into()),
            company_name: Some("Acme".into()),
            note: Some("é😀 note".into()),
            address1: Some("1 Main St".into()),
            address2: None,
            city: Some("Springfield".into()),
            state: Some("IL".into()),
            zip_code: Some("62701".into()),
            ..Contact::new("+15551234567")
        };
        for c in [full, Contact::new("+15551234567"), Contact::default()] {
            assert_eq!(PackedContact::new(&c).unpack(), c);
            // The order of `fields` is the documented one.
            let json = serde_json::to_value(&c).unwrap_or_default();
            for (name, value) in Contact::FIELDS.iter().zip(fields(&c)) {
                assert_eq!(json.get(name).and_then(|v| v.as_str()), value, "{name}");
            }
        }
    }
}
