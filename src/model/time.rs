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
/// sub-millisecond digits are not kept.
pub mod iso_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserializer, Serializer, de};

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
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| E::custom(format!("invalid time {v:?}: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}
