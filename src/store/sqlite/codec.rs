//! Conversions between records and SQLite values, and error mapping.

use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Type;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{CallState, DeliveryState, StoreError};

/// An error inside a storage closure: SQLite's, or one of the store's own.
#[derive(Debug)]
pub(super) enum DbError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

/// Results inside storage closures.
pub(super) type DbResult<T> = Result<T, DbError>;

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<StoreError> for DbError {
    fn from(e: StoreError) -> Self {
        DbError::Store(e)
    }
}

impl DbError {
    /// The [`StoreError`] the traits report: a broken uniqueness rule is a
    /// [`StoreError::Conflict`], a stored value that does not decode is
    /// [`StoreError::Corrupt`], anything else [`StoreError::Backend`].
    pub(super) fn into_store(self) -> StoreError {
        let e = match self {
            DbError::Store(e) => return e,
            DbError::Sqlite(e) => e,
        };
        use rusqlite::Error as E;
        match &e {
            E::SqliteFailure(f, msg)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                let msg = msg.as_deref().unwrap_or("a uniqueness rule was broken");
                if msg.contains("inbound_webhooks.slug") {
                    StoreError::Conflict("slug is taken".into())
                } else {
                    StoreError::Conflict(format!("record exists ({msg})"))
                }
            }
            E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..)
            | E::InvalidColumnType(..)
            | E::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        }
    }
}

/// A decoding failure of column `i`, reported as [`StoreError::Corrupt`].
fn corrupt(i: usize, ty: Type, msg: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, ty, msg.into().into())
}

/// A timestamp as stored: microseconds since the Unix epoch. Every `DateTime<Utc>` fits.
pub(super) fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// An optional timestamp as stored.
pub(super) fn ts_opt(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ts)
}

/// A stored timestamp back.
pub(super) fn from_ts(i: usize, micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        corrupt(
            i,
            Type::Integer,
            format!("timestamp {micros} µs is out of range"),
        )
    })
}

/// Column `i` as a timestamp.
pub(super) fn get_ts(row: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    from_ts(i, row.get(i)?)
}

/// Column `i` as an optional timestamp.
pub(super) fn get_ts_opt(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<i64>>(i)?
        .map(|v| from_ts(i, v))
        .transpose()
}

/// A value as JSON text.
pub(super) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// Column `i`, JSON text, decoded.
pub(super) fn get_json<T: DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text = row.get_ref(i)?.as_str()?;
    serde_json::from_str(text).map_err(|e| corrupt(i, Type::Text, format!("bad JSON: {e}")))
}

/// Column `i`, JSON text or NULL, decoded.
pub(super) fn get_json_opt<T: DeserializeOwned>(
    row: &Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<T>> {
    match row.get_ref(i)?.as_str_or_null()? {
        None => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| corrupt(i, Type::Text, format!("bad JSON: {e}"))),
    }
}

/// A unit enum's serde name (`"inbound"`, `"placed"`, …).
pub(super) fn enum_name<T: Serialize>(v: &T) -> Result<String, StoreError> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(StoreError::Backend(format!(
            "expected a unit enum, got {other}"
        ))),
        Err(e) => Err(StoreError::Backend(format!("encoding an enum: {e}"))),
    }
}

/// Column `i`, a unit enum's serde name, decoded.
pub(super) fn get_enum<T: DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let name = row.get_ref(i)?.as_str()?;
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|e| corrupt(i, Type::Text, format!("unknown value {name:?}: {e}")))
}

/// Column `i`, an optional unit enum's serde name, decoded.
pub(super) fn get_enum_opt<T: DeserializeOwned>(
    row: &Row<'_>,
    i: usize,
) -> rusqlite::Result<Option<T>> {
    match row.get_ref(i)?.as_str_or_null()? {
        None => Ok(None),
        Some(_) => get_enum(row, i).map(Some),
    }
}

/// Column `i` as an event type, borrowed for the two known ones
/// ([`event_type`](crate::store::event_type)).
pub(super) fn get_event_type(
    row: &Row<'_>,
    i: usize,
) -> rusqlite::Result<std::borrow::Cow<'static, str>> {
    let text = row
        .get_ref(i)?
        .as_str()
        .map_err(|e| corrupt(i, Type::Text, format!("event type: {e}")))?;
    Ok(crate::store::event_type(text))
}

/// Column `i` as a delivery state.
pub(super) fn get_delivery_state(row: &Row<'_>, i: usize) -> rusqlite::Result<DeliveryState> {
    match row.get_ref(i)?.as_str()? {
        "pending" => Ok(DeliveryState::Pending),
        "succeeded" => Ok(DeliveryState::Succeeded),
        "dead" => Ok(DeliveryState::Dead),
        other => Err(corrupt(
            i,
            Type::Text,
            format!("unknown delivery state {other:?}"),
        )),
    }
}

/// Column `i` as a call state.
pub(super) fn get_call_state(row: &Row<'_>, i: usize) -> rusqlite::Result<CallState> {
    match row.get_ref(i)?.as_str()? {
        "queued" => Ok(CallState::Queued),
        "dialing" => Ok(CallState::Dialing),
        "cancelled" => Ok(CallState::Cancelled),
        "completed" => Ok(CallState::Completed),
        other => Err(corrupt(
            i,
            Type::Text,
            format!("unknown call state {other:?}"),
        )),
    }
}

/// Column `i`, a non-negative INTEGER, as a `u64`.
pub(super) fn get_u64(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

/// An unsigned count as SQLite's INTEGER; past `i64::MAX` it cannot be stored.
pub(super) fn int(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{what} {v} is too large to store")))
}

/// A listing limit: 0 is the default of 100; anything past `i64::MAX` is no limit.
pub(super) fn list_limit(limit: usize) -> i64 {
    if limit == 0 {
        100
    } else {
        i64::try_from(limit).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_round_trip_to_the_microsecond() {
        let t = Utc
            .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("date");
        assert_eq!(from_ts(0, ts(t)).expect("decode"), t);
        let far = Utc
            .with_ymd_and_hms(2900, 6, 1, 12, 0, 0)
            .single()
            .expect("date");
        assert_eq!(from_ts(0, ts(far)).expect("decode"), far);
        let fine = t + chrono::Duration::nanoseconds(1_234_567);
        assert_eq!(
            from_ts(0, ts(fine)).expect("decode"),
            t + chrono::Duration::microseconds(1_234)
        );
        for extreme in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let back = from_ts(0, ts(extreme)).expect("the whole chrono range fits");
            assert!((back - extreme).num_microseconds() == Some(0));
        }
        assert!(from_ts(0, i64::MAX).is_err());
    }

    #[test]
    fn enum_names() {
        assert_eq!(
            enum_name(&crate::store::RequestOutcome::Placed).expect("name"),
            "placed"
        );
        assert_eq!(
            enum_name(&crate::campaign::CampaignKind::Inbound).expect("name"),
            "inbound"
        );
        assert!(enum_name(&vec![1]).is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(list_limit(0), 100);
        assert_eq!(list_limit(7), 7);
        assert_eq!(list_limit(usize::MAX), i64::MAX);
        assert!(int(u64::MAX, "x").is_err());
        assert_eq!(int(5, "x").expect("fits"), 5);
    }
}
