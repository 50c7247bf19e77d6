//! The memory store's calls, as a table: records in a `Vec` by row, found by id through a
//! map from the id's hash to the row number, each contact's strings appended to one shared
//! text. Storing a call
//! allocates nothing of its own (the vectors grow now and then): a stored call is otherwise
//! two or more long-lived heap blocks, and a heap full of them between the server's
//! short-lived buffers makes every allocation slower.

use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use foldhash::HashMap;

use crate::ids::CallId;
use crate::model::Contact;
use crate::store::{CallRecord, StoreError, StoreResult};

/// Every call of a [`MemoryStore`](super::MemoryStore).
#[derive(Debug, Default)]
pub(super) struct Calls {
    rows: Vec<Row>,
    by_id: Index,
    /// The contacts' text, one after another.
    text: String,
}

/// A stored call.
#[derive(Debug)]
pub(super) struct Row {
    /// The record, with an empty contact: the contact is in the table's text.
    pub record: CallRecord,
    contact: PackedContact,
}

/// Row numbers by call id, keyed by the id's 64-bit hash, which the map uses as it is: when
/// the map grows it moves numbers and never reads an id again (in a table of many calls the
/// ids are cold, and reading them back was most of the cost of growing). Finding a row
/// checks its id. An id whose hash another id has already (practically never) is kept in
/// `collided`.
#[derive(Debug, Default)]
struct Index {
    /// Keyed per process, so ids cannot be chosen to collide.
    hasher: foldhash::fast::RandomState,
    by_hash: std::collections::HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    collided: HashMap<CallId, u32>,
}

impl Index {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The row of `id`, whose [`hash`](Self::hash) is `hash`.
    fn find(&self, hash: u64, id: &str, rows: &[Row]) -> Option<u32> {
        let &row = self.by_hash.get(&hash)?;
        if rows.get(row as usize)?.record.id.as_str() == id {
            Some(row)
        } else {
            self.collided.get(id).copied()
        }
    }

    /// Adds `id` (not found) at `row`.
    fn insert(&mut self, hash: u64, id: &CallId, row: u32) {
        match self.by_hash.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(row);
            }
            Entry::Occupied(_) => {
                self.collided.insert(id.clone(), row);
            }
        }
    }
}

/// A hasher for keys that are hashes already: hands a `u64` on as it is.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u64` keys; a plain fold keeps it a hasher for anything.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Where a contact's fields are in the table's text, and which are present.
#[derive(Debug)]
struct PackedContact {
    start: usize,
    /// Where each field ends, from `start`.
    ends: [u32; FIELDS],
    present: u16,
}

const FIELDS: usize = Contact::FIELDS.len();

impl Calls {
    /// Stores `call`; an id that is taken is a conflict.
    pub fn insert(&mut self, call: &CallRecord) -> StoreResult<()> {
        let row = u32::try_from(self.rows.len())
            .map_err(|_| StoreError::Backend("the memory store holds too many calls".into()))?;
        let hash = self.by_id.hash(call.id.as_str());
        if self
            .by_id
            .find(hash, call.id.as_str(), &self.rows)
            .is_some()
        {
            return Err(StoreError::Conflict(format!("call {} exists", call.id)));
        }
        let contact = self.pack(&call.contact)?;
        // Every field by name: a field added to `CallRecord` must be decided on here.
        let CallRecord {
            id,
            account,
            campaign_id,
            settings_version,
            origin,
            contact: _,
            state,
            cancel_reason,
            result,
            action_items,
            created_at,
            updated_at,
        } = call;
        self.rows.push(Row {
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
            contact,
        });
        self.by_id.insert(hash, id, row);
        Ok(())
    }

    /// The call with this id.
    pub fn get(&self, id: &str) -> Option<&Row> {
        let row = self.by_id.find(self.by_id.hash(id), id, &self.rows)?;
        self.rows.get(row as usize)
    }

    /// The call with this id, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Row> {
        let row = self.by_id.find(self.by_id.hash(id), id, &self.rows)?;
        self.rows.get_mut(row as usize)
    }

    /// Every call, in the order they were stored.
    pub fn iter(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter()
    }

    /// The call in `row` as it was stored, with the changes made since.
    pub fn record(&self, row: &Row) -> CallRecord {
        let mut record = row.record.clone();
        record.contact = self.unpack(&row.contact);
        record
    }

    fn pack(&mut self, contact: &Contact) -> StoreResult<PackedContact> {
        let start = self.text.len();
        let mut ends = [0; FIELDS];
        let mut present = 0;
        for (i, field) in fields(contact).iter().enumerate() {
            if let Some(f) = field {
                self.text.push_str(f);
                present |= 1 << i;
            }
            ends[i] = u32::try_from(self.text.len() - start).map_err(|_| {
                self.text.truncate(start);
                StoreError::Backend("a contact longer than 4 GiB".into())
            })?;
        }
        Ok(PackedContact {
            start,
            ends,
            present,
        })
    }

    fn unpack(&self, packed: &PackedContact) -> Contact {
        let mut from = packed.start;
        let fields = std::array::from_fn(|i| {
            let end = packed.start + packed.ends[i] as usize;
            let field = (packed.present & (1 << i) != 0)
                .then(|| self.text.get(from..end).unwrap_or_default().to_owned());
            from = end;
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
    use crate::store::{CallOrigin, CallState};

    fn call(contact: Contact) -> CallRecord {
        let now = chrono::Utc::now();
        CallRecord {
            id: CallId::generate().unwrap(),
            account: crate::ids::AccountId::new("acct_1"),
            campaign_id: None,
            settings_version: 0,
            origin: CallOrigin::OutboundCampaign,
            contact,
            state: CallState::Queued,
            cancel_reason: None,
            result: None,
            action_items: vec!["x".into()],
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn calls_come_back_as_stored() {
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
        let mut calls = Calls::default();
        let stored: Vec<CallRecord> = [full, Contact::new("+15551234567"), Contact::default()]
            .into_iter()
            .map(call)
            .collect();
        for c in &stored {
            calls.insert(c).unwrap();
            // The order of `fields` is the documented one.
            let json = serde_json::to_value(&c.contact).unwrap_or_default();
            for (name, value) in Contact::FIELDS.iter().zip(fields(&c.contact)) {
                assert_eq!(json.get(name).and_then(|v| v.as_str()), value, "{name}");
            }
        }
        for c in &stored {
            let row = calls.get(c.id.as_str()).unwrap();
            assert_eq!(calls.record(row), *c);
        }
        assert!(matches!(
            calls.insert(&stored[0]),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(calls.iter().count(), 3);
    }

    #[test]
    fn ids_whose_hash_is_taken_are_still_found() {
        let mut calls = Calls::default();
        let (a, b) = (
            call(Contact::new("+15550000001")),
            call(Contact::new("+15550000002")),
        );
        calls.insert(&a).unwrap();
        // Make `b`'s hash point at `a`'s row, as a collision would.
        let hash_b = calls.by_id.hash(b.id.as_str());
        calls.by_id.by_hash.insert(hash_b, 0);
        assert!(calls.get(b.id.as_str()).is_none());
        calls.insert(&b).unwrap();
        assert_eq!(calls.by_id.collided.len(), 1);
        assert_eq!(calls.record(calls.get(b.id.as_str()).unwrap()), b);
        calls.get_mut(b.id.as_str()).unwrap().record.state = CallState::Dialing;
        assert_eq!(
            calls.get(b.id.as_str()).unwrap().record.state,
            CallState::Dialing
        );
        assert!(matches!(calls.insert(&b), Err(StoreError::Conflict(_))));
        assert_eq!(calls.record(calls.get(a.id.as_str()).unwrap()), a);
        assert_eq!(calls.iter().count(), 2);
    }
}
