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
    use chrono::{DateTime, Datelike, SubsecRound, Timelike, Utc};
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

    /// chrono's spelling of the format, for the times [`digits`] leaves to it.
    const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

    /// `t` written out digit by digit (chrono's `format` parses its format string on every
    /// call, which was most of the cost of serialising a transcript). `None` for what only
    /// chrono spells: a year outside `0000`–`9999` (a value built in code, never one parsed)
    /// or a leap second.
    fn digits(t: &DateTime<Utc>) -> Option<[u8; 24]> {
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let nanos = t.timestamp_subsec_nanos();
        if nanos >= 1_000_000_000 {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let fields = [
            (0, 4, year),
            (5, 2, t.month()),
            (8, 2, t.day()),
            (11, 2, t.hour()),
            (14, 2, t.minute()),
            (17, 2, t.second()),
            (20, 3, nanos / 1_000_000),
        ];
        for (at, width, mut value) in fields {
            for slot in out[at..at + width].iter_mut().rev() {
                // A digit: `value % 10` is below 10.
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Some(out)
    }

    /// Hands `f` the text of `t`: written by [`digits`] on the stack, or by chrono.
    fn with_text<R>(t: &DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
        match digits(t).as_ref().map(|d| std::str::from_utf8(d)) {
            Some(Ok(text)) => f(text),
            // Only ASCII digits and separators: `from_utf8` cannot fail above.
            _ => f(&t.format(FORMAT).to_string()),
        }
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn format(t: &DateTime<Utc>) -> String {
        with_text(t, str::to_owned)
    }

    /// Serialises as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        with_text(t, |text| s.serialize_str(text))
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use proptest::prelude::*;

    use super::iso_millis;

    /// chrono's own rendering, which the digit writer must match.
    fn chrono(t: &DateTime<Utc>) -> String {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    fn serialized(t: &DateTime<Utc>) -> String {
        let mut out = Vec::new();
        let _ = iso_millis::serialize(t, &mut serde_json::Serializer::new(&mut out));
        String::from_utf8(out).unwrap_or_default()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> DateTime<Utc> {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_nano_opt(h, mi, s, nanos))
            .unwrap();
        Utc.from_utc_datetime(&naive)
    }

    #[test]
    fn edges_are_written_as_chrono_writes_them() {
        for t in [
            at(0, 1, 1, 0, 0, 0, 0),
            at(9999, 12, 31, 23, 59, 59, 999_999_999),
            at(2024, 2, 29, 7, 5, 9, 1_000_000),
            at(1970, 1, 1, 0, 0, 0, 999_999),
            // Only chrono spells these: five-digit and negative years, a leap second.
            at(10_000, 1, 1, 0, 0, 0, 0),
            at(-1, 12, 31, 23, 59, 59, 0),
            at(2016, 12, 31, 23, 59, 59, 1_500_000_000),
        ] {
            assert_eq!(iso_millis::format(&t), chrono(&t));
            assert_eq!(serialized(&t), format!("\"{}\"", chrono(&t)));
        }
        assert_eq!(
            iso_millis::format(&at(2024, 4, 30, 14, 0, 3, 7_999_999)),
            "2024-04-30T14:00:03.007Z"
        );
    }

    proptest! {
        #[test]
        fn any_time_is_written_as_chrono_writes_it(
            secs in -62_167_219_200i64..=253_402_300_799i64 + 86_400 * 400,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = Utc.timestamp_opt(secs, nanos).single();
            prop_assert!(t.is_some());
            if let Some(t) = t {
                prop_assert_eq!(iso_millis::format(&t), chrono(&t));
                prop_assert_eq!(serialized(&t), format!("\"{}\"", chrono(&t)));
            }
        }

        #[test]
        fn any_leap_second_is_written_as_chrono_writes_it(
            minute in -1_036_120_320i64..=4_223_371_679i64,
            nanos in 1_000_000_000u32..2_000_000_000,
        ) {
            // chrono takes a leap second only in the last second of a minute.
            let t = Utc.timestamp_opt(minute * 60 + 59, nanos).single();
            prop_assert!(t.is_some());
            if let Some(t) = t {
                prop_assert_eq!(iso_millis::format(&t), chrono(&t));
                prop_assert_eq!(serialized(&t), format!("\"{}\"", chrono(&t)));
            }
        }
    }
}
