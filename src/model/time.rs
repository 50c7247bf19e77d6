//! serde helpers for the two time formats of the wire contract.

/// `timestamp`: Unix epoch in milliseconds, as a JSON integer.
pub mod epoch_millis {
    use chrono::{DateTime, TimeZone, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de};

    /// Serialises as integer milliseconds since the epoch.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_millis())
    }

    /// Parses integer milliseconds since the epoch; out-of-range values are an error.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let ms = i64::deserialize(d)?;
        Utc.timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| de::Error::custom(format!("timestamp {ms} ms is out of range")))
    }
}

/// Transcript `when`: ISO-8601 UTC with exactly three fractional digits and `Z`
/// (`2024-04-30T14:00:03.000Z`). Parsing accepts any RFC 3339 time and converts it to UTC;
/// sub-millisecond digits are not kept (they are truncated, so what was parsed is exactly
/// what is sent again), and a time whose UTC year falls outside `0000`–`9999` (an offset can
/// push `0000-01-01T00:00:00+01:00` into year -1) is refused, since it could not be written
/// back in this format.
pub mod iso_millis {
    use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Utc};
    use serde::{Deserializer, Serializer, de};

    /// Parses an RFC 3339 time into the value the wire format can carry: UTC, whole
    /// milliseconds, a four-digit year.
    fn parse(v: &str) -> Result<DateTime<Utc>, String> {
        let t = DateTime::parse_from_rfc3339(v)
            .map_err(|e| format!("invalid time {v:?}: {e}"))?
            .with_timezone(&Utc);
        if !(0..=9999).contains(&t.year()) {
            return Err(format!(
                "invalid time {v:?}: the year in UTC is outside 0000 to 9999"
            ));
        }
        Ok(t.trunc_subsecs(3))
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Serialises as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }

    /// Parses an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = DateTime<Utc>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an ISO-8601 UTC time such as 2024-04-30T14:00:03.000Z")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}
