//! When to try again: the retry schedule with jitter, and `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;

/// Delays before each attempt: the first entry is the delay of the first attempt (0:
/// immediately), each further entry the delay after the previous failure. A delivery whose
/// last attempt failed with no entry left is dead.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// The delays.
    pub delays: Vec<Duration>,
    /// Each delay is scaled by a random factor in `1 ± jitter` (default 0.2).
    pub jitter: f64,
}

impl Default for RetrySchedule {
    /// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (eight attempts over about
    /// 27.6 hours), ±20 % jitter.
    fn default() -> Self {
        let m = 60;
        let h = 60 * m;
        RetrySchedule {
            delays: [0, 5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
        }
    }
}

/// Errors of parsing a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry schedule {0:?}: expected a comma-separated list like 0,5s,5m,2h")]
pub struct ScheduleError(pub String);

impl RetrySchedule {
    /// Parses `0,1s,500ms,5m,2h` (a bare number is seconds). Jitter stays 0.2.
    pub fn parse(list: &str) -> Result<Self, ScheduleError> {
        let bad = || ScheduleError(list.chars().take(64).collect());
        let mut delays = Vec::new();
        for part in list.split(',').map(str::trim) {
            let (num, unit) = match part.find(|c: char| !c.is_ascii_digit()) {
                Some(i) => part.split_at(i),
                None => (part, "s"),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            let d = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                _ => return Err(bad()),
            };
            delays.push(d);
        }
        if delays.is_empty() {
            return Err(bad());
        }
        Ok(RetrySchedule {
            delays,
            jitter: 0.2,
        })
    }

    /// Without jitter (tests and predictable schedules).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = 0.0;
        self
    }

    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX)
    }

    /// The nominal delay before attempt `n + 1` after `n` attempts failed, or `None` when
    /// none is left.
    pub fn delay_after(&self, failed_attempts: u32) -> Option<Duration> {
        self.delays.get(failed_attempts as usize).copied()
    }

    /// When to try again after `failed_attempts` failures at `now`, jittered; `None` when
    /// none is left.
    pub fn next_attempt(&self, failed_attempts: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let d = self.delay_after(failed_attempts)?;
        Some(now + jittered(d, self.jitter))
    }
}

fn jittered(d: Duration, jitter: f64) -> chrono::Duration {
    let jitter = jitter.clamp(0.0, 1.0);
    let mut b = [0u8; 4];
    let unit = if crate::ids::random_bytes(&mut b).is_ok() {
        f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
    } else {
        0.5
    };
    let factor = 1.0 + jitter * (2.0 * unit - 1.0);
    let ms = (d.as_secs_f64() * 1000.0 * factor).max(0.0);
    chrono::Duration::milliseconds(ms.min(i64::MAX as f64 / 2.0) as i64)
}

/// `Retry-After` as a delay: seconds, or an HTTP date relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    (at - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_the_documented_one() {
        let s = RetrySchedule::default();
        let secs: Vec<u64> = s.delays.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.delay_after(8), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let s = RetrySchedule::default();
        let now = Utc::now();
        for _ in 0..200 {
            let at = s.next_attempt(2, now).unwrap();
            let d = (at - now).num_milliseconds();
            assert!((240_000..=360_000).contains(&d), "{d}");
        }
        let exact = RetrySchedule::default().without_jitter();
        assert_eq!(
            exact.next_attempt(1, now).unwrap() - now,
            chrono::Duration::seconds(5)
        );
    }

    #[test]
    fn parse_lists() {
        let s = RetrySchedule::parse("0,1s,500ms,2m,1h,7").unwrap();
        let ms: Vec<u128> = s.delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 1000, 500, 120_000, 3_600_000, 7000]);
        assert!(RetrySchedule::parse("").is_err());
        assert!(RetrySchedule::parse("1x").is_err());
        assert!(RetrySchedule::parse("a,b").is_err());
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:29:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(60)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }
}
