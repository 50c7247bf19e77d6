//! The memory store's delivery table, kept compact: a pending delivery costs its payload
//! plus about 460 bytes (the `memory` figure of `cargo bench --bench ratios`).
//!
//! - Records live in one `Vec` by row number (rows are never removed, like the log of a
//!   durable store); a `Vec` only makes resident what it holds.
//! - Ids are the caller's reference-counted ids, kept as they come: enqueueing copies no
//!   id, and a lease hands them out without allocating (an earlier version kept the
//!   delivery's own ids inline, 64 bytes less per delivery, but then every lease allocated
//!   two ids; the `delivery_loopback` figure measures leases, the `memory` figure bytes).
//! - Account and endpoint repeat across deliveries: one shared copy each (reference-counted
//!   ids); the two known event types are borrowed, not stored.
//! - The due index orders row numbers, not ids, by (due time, row): equal times come out
//!   in the order they were enqueued.

use std::collections::BTreeSet;

use foldhash::HashMap;
use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::ids::{AccountId, CallId, DeliveryId, MessageId, WebhookId};
use crate::store::{Delivery, DeliveryState, LeaseOutcome, StoreError, StoreResult};

/// Row number in [`Deliveries::rows`].
type Row = u32;

/// One delivery, compact.
#[derive(Debug)]
struct Rec {
    id: DeliveryId,
    account: AccountId,
    endpoint_id: WebhookId,
    message_id: MessageId,
    /// Borrowed for the two known types (see [`event_type`](crate::store::event_type)):
    /// a lease copies a reference, not a string.
    event_type: Cow<'static, str>,
    payload: Bytes,
    call_id: Option<CallId>,
    state: DeliveryState,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<Box<str>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// (token, until) while a worker holds it.
    lease: Option<(u64, DateTime<Utc>)>,
}

impl Rec {
    /// When it is due: the lease end while leased, else the next attempt.
    fn due_at(&self) -> DateTime<Utc> {
        match self.lease {
            Some((_, until)) => until,
            None => self.next_attempt_at,
        }
    }

    fn delivery(&self) -> Delivery {
        Delivery {
            id: self.id.clone(),
            account: self.account.clone(),
            endpoint_id: self.endpoint_id.clone(),
            message_id: self.message_id.clone(),
            event_type: self.event_type.clone(),
            payload: self.payload.clone(),
            call_id: self.call_id.clone(),
            state: self.state,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.as_deref().map(str::to_owned),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Every delivery of a [`MemoryStore`](super::MemoryStore), with the due index.
#[derive(Debug, Default)]
pub(super) struct Deliveries {
    rows: Vec<Rec>,
    by_id: HashMap<DeliveryId, Row>,
    /// Pending deliveries by (due time, row).
    due: BTreeSet<(DateTime<Utc>, Row)>,
    next_token: u64,
}

/// Selects deliveries for [`Deliveries::select`].
pub(super) struct Select<'a> {
    pub account: &'a AccountId,
    pub endpoint: Option<&'a WebhookId>,
    pub state: Option<DeliveryState>,
    pub since: Option<DateTime<Utc>>,
}

impl Deliveries {
    /// Whether a delivery with this id is stored.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Stores a delivery whose id is new (checked by the caller).
    pub fn insert(&mut self, d: &Delivery) -> StoreResult<()> {
        let row = Row::try_from(self.rows.len()).map_err(|_| {
            StoreError::Backend("the memory store holds too many deliveries".into())
        })?;
        let rec = Rec {
            id: d.id.clone(),
            account: d.account.clone(),
            endpoint_id: d.endpoint_id.clone(),
            message_id: d.message_id.clone(),
            event_type: crate::store::event_type(&d.event_type),
            payload: d.payload.clone(),
            call_id: d.call_id.clone(),
            state: d.state,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error.as_deref().map(Box::from),
            created_at: d.created_at,
            updated_at: d.updated_at,
            lease: None,
        };
        if rec.state == DeliveryState::Pending {
            self.due.insert((rec.next_attempt_at, row));
        }
        self.by_id.insert(rec.id.clone(), row);
        self.rows.push(rec);
        Ok(())
    }

    fn row(&self, id: &str) -> Option<Row> {
        self.by_id.get(id).copied()
    }

    /// The row a lease token names, if it holds delivery `id`.
    fn leased_row(&self, id: &str, token: u64) -> Option<Row> {
        let row = Row::try_from(token >> 32).ok()?;
        self.rec(row).filter(|r| r.id.as_str() == id).map(|_| row)
    }

    fn rec(&self, row: Row) -> Option<&Rec> {
        self.rows.get(row as usize)
    }

    fn rec_mut(&mut self, row: Row) -> Option<&mut Rec> {
        self.rows.get_mut(row as usize)
    }

    /// The delivery `id` of `account`.
    pub fn get(&self, account: &AccountId, id: &str) -> Option<Delivery> {
        self.row(id)
            .and_then(|r| self.rec(r))
            .filter(|r| &r.account == account)
            .map(Rec::delivery)
    }

    /// The earliest due time of a pending delivery.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Leases up to `limit` deliveries due at `now` until `until`.
    pub fn lease(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
        until: DateTime<Utc>,
    ) -> Vec<(Delivery, u64)> {
        let mut out = Vec::with_capacity(limit.min(self.due.len()));
        while out.len() < limit {
            let Some(&(at, row)) = self.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.due.pop_first();
            self.next_token = self.next_token.wrapping_add(1);
            // The row in the high half, so that finishing needs no lookup by id; the low
            // half tells this lease of the row from earlier ones.
            let token = (u64::from(row) << 32) | (self.next_token & 0xffff_ffff);
            if let Some(rec) = self.rows.get_mut(row as usize) {
                rec.lease = Some((token, until));
                self.due.insert((until, row));
                out.push((rec.delivery(), token));
            }
        }
        out
    }

    /// Applies the outcome of the lease `token` of `id`; false when the lease is no
    /// longer held (expired and taken again, or the delivery was killed).
    pub fn finish(
        &mut self,
        id: &str,
        token: u64,
        outcome: LeaseOutcome,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(row) = self.leased_row(id, token) else {
            return false;
        };
        let Some(rec) = self.rec_mut(row) else {
            return false;
        };
        if rec.lease.map(|(t, _)| t) != Some(token) || rec.state != DeliveryState::Pending {
            return false;
        }
        let old = rec.due_at();
        rec.lease = None;
        rec.attempts += 1;
        rec.updated_at = now;
        match outcome {
            LeaseOutcome::Succeeded => {
                rec.state = DeliveryState::Succeeded;
                rec.last_error = None;
            }
            LeaseOutcome::Retry {
                next_attempt_at,
                error,
            } => {
                rec.next_attempt_at = next_attempt_at;
                rec.last_error = Some(error.into());
            }
            LeaseOutcome::Dead { error } => {
                rec.state = DeliveryState::Dead;
                rec.last_error = Some(error.into());
            }
        }
        let pending = rec.state == DeliveryState::Pending;
        let new = rec.due_at();
        self.due.remove(&(old, row));
        if pending {
            self.due.insert((new, row));
        }
        true
    }

    /// Gives a lease back: due again at `due_at`, no attempt counted.
    pub fn release(&mut self, id: &str, token: u64, due_at: DateTime<Utc>) {
        let Some(row) = self.leased_row(id, token) else {
            return;
        };
        let Some(rec) = self.rec_mut(row) else {
            return;
        };
        if rec.lease.map(|(t, _)| t) != Some(token) {
            return;
        }
        let old = rec.due_at();
        rec.lease = None;
        rec.next_attempt_at = due_at;
        self.due.remove(&(old, row));
        self.due.insert((due_at, row));
    }

    /// Makes a non-pending delivery pending at `now` (keeps the message id).
    pub fn revive(&mut self, id: &str, now: DateTime<Utc>) {
        let Some(row) = self.row(id) else {
            return;
        };
        if let Some(rec) = self.rec_mut(row)
            && rec.state != DeliveryState::Pending
        {
            rec.state = DeliveryState::Pending;
            rec.next_attempt_at = now;
            rec.updated_at = now;
            rec.lease = None;
            self.due.insert((now, row));
        }
    }

    /// Makes a pending delivery a dead letter saying `reason`.
    pub fn kill(&mut self, id: &str, reason: &str, now: DateTime<Utc>) {
        let Some(row) = self.row(id) else {
            return;
        };
        if let Some(rec) = self.rec_mut(row)
            && rec.state == DeliveryState::Pending
        {
            let old = rec.due_at();
            rec.state = DeliveryState::Dead;
            rec.last_error = Some(reason.into());
            rec.updated_at = now;
            rec.lease = None;
            self.due.remove(&(old, row));
        }
    }

    /// Ids of the deliveries that match, in no particular order.
    pub fn ids(&self, select: &Select<'_>) -> Vec<String> {
        self.matching(select)
            .map(|r| r.id.as_str().to_owned())
            .collect()
    }

    /// The deliveries that match, newest first, at most `limit`.
    pub fn select(&self, select: &Select<'_>, limit: usize) -> Vec<Delivery> {
        let mut v: Vec<&Rec> = self.matching(select).collect();
        v.sort_by(|a, b| (b.created_at, b.id.as_str()).cmp(&(a.created_at, a.id.as_str())));
        v.into_iter().take(limit).map(Rec::delivery).collect()
    }

    fn matching<'a>(&'a self, s: &'a Select<'a>) -> impl Iterator<Item = &'a Rec> + 'a {
        self.rows.iter().filter(move |r| {
            &r.account == s.account
                && s.endpoint.is_none_or(|e| &r.endpoint_id == e)
                && s.state.is_none_or(|st| r.state == st)
                && s.since.is_none_or(|t| r.created_at >= t)
        })
    }

    /// Every delivery, for [`MemoryStore::dump`](super::MemoryStore::dump).
    pub fn all(&self) -> impl Iterator<Item = Delivery> + '_ {
        self.rows.iter().map(Rec::delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_stays_small() {
        // The figure the `memory` bench checks depends on it; see the module docs.
        assert!(
            std::mem::size_of::<Rec>() <= 224,
            "{}",
            std::mem::size_of::<Rec>()
        );
    }
}
