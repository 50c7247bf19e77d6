//! [Standard Webhooks](https://www.standardwebhooks.com) signing and verification.
//!
//! Every delivery carries three headers:
//!
//! | header                            | content                                             |
//! |-----------------------------------|-----------------------------------------------------|
//! | [`webhook-id`](HEADER_ID)         | the message id, unique per message (retries reuse it) |
//! | [`webhook-timestamp`](HEADER_TIMESTAMP) | the send time in whole unix seconds            |
//! | [`webhook-signature`](HEADER_SIGNATURE) | one or more space-separated `v1,<base64>` entries |
//!
//! A `v1` signature is HMAC-SHA256, keyed with the shared [`SigningSecret`], over the
//! bytes `{msg_id}.{timestamp}.{body}`, encoded as standard base64 with padding. The
//! header may hold several signatures (for example one per secret while a secret is
//! being rotated); a message is authentic if any `v1` entry matches any configured
//! secret. Entries with other version tags (such as `v1a,…`) and malformed entries are
//! ignored.
//!
//! The [`Verifier`] also rejects messages whose timestamp is more than
//! [`DEFAULT_TOLERANCE`] (five minutes, configurable with [`Verifier::tolerance`]) in
//! the past or in the future, which limits replays. Signature comparison is constant
//! time.
//!
//! Secrets are exchanged as `whsec_` followed by the standard-base64 key bytes.
//!
//! # Example
//!
//! ```
//! use atllas_webhooks::signing::{
//!     self, SigningError, SigningSecret, Verifier, HEADER_ID, HEADER_SIGNATURE,
//!     HEADER_TIMESTAMP,
//! };
//! use chrono::{TimeZone, Utc};
//! use http::{HeaderMap, HeaderValue};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")?;
//! let body = br#"{"email":"test@example.com","username":"test_user"}"#;
//! let (id, timestamp) = ("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553);
//!
//! // Sender side.
//! let signature = signing::sign(&secret, id, timestamp, body);
//! assert_eq!(
//!     signature.to_header_value(),
//!     "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
//! );
//! let mut headers = HeaderMap::new();
//! headers.insert(HEADER_ID, HeaderValue::from_static("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"));
//! headers.insert(HEADER_TIMESTAMP, HeaderValue::from_str(&timestamp.to_string())?);
//! headers.insert(HEADER_SIGNATURE, HeaderValue::from_str(&signature.to_header_value())?);
//!
//! // Receiver side.
//! let verifier = Verifier::new(secret);
//! let now = Utc.timestamp_opt(timestamp + 10, 0).single().ok_or("bad time")?;
//! let message = verifier.verify(&headers, body, now)?;
//! assert_eq!(message.id, id);
//! assert_eq!(message.timestamp, timestamp);
//!
//! // A modified body is rejected.
//! assert!(matches!(
//!     verifier.verify(&headers, b"{}", now),
//!     Err(SigningError::NoMatchingSignature)
//! ));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::digest::{CtOutput, Output};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Name of the header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Name of the header carrying the send time in unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Name of the header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// Default allowed difference between a message timestamp and the verifier's clock,
/// in either direction: five minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Prefix of the textual form of a [`SigningSecret`].
pub const SECRET_PREFIX: &str = "whsec_";
/// Smallest accepted secret length in bytes.
pub const MIN_SECRET_LEN: usize = 24;
/// Largest accepted secret length in bytes.
pub const MAX_SECRET_LEN: usize = 64;
/// Length in bytes of secrets made by [`SigningSecret::generate`].
pub const GENERATED_SECRET_LEN: usize = 32;

/// Version tag of the signatures this module produces and checks.
const SIGNATURE_VERSION: &str = "v1";
/// Length of an HMAC-SHA256 tag in bytes.
const SIGNATURE_LEN: usize = 32;
/// Length of a padded standard-base64 encoding of [`SIGNATURE_LEN`] bytes.
const SIGNATURE_B64_LEN: usize = 44;

/// Errors from parsing secrets, signing and verifying.
///
/// No variant ever carries secret material.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The signing secret is malformed; the string says why (it never contains the
    /// secret itself).
    #[error("invalid signing secret: {0}")]
    InvalidSecret(String),
    /// The operating system's random number generator failed while generating a secret.
    #[error("the operating system random number generator failed to produce a signing secret")]
    Rng,
    /// A required header (named in the payload) is absent.
    #[error("missing required `{0}` header")]
    MissingHeader(&'static str),
    /// A header (named in the payload) is present but malformed: not UTF-8, empty, or,
    /// for the timestamp, not an integer number of seconds that fits in an `i64`.
    #[error("malformed `{0}` header")]
    InvalidHeader(&'static str),
    /// The `webhook-timestamp` is further in the past than the tolerance allows.
    #[error("the `webhook-timestamp` is too old (outside the allowed tolerance)")]
    TimestampTooOld,
    /// The `webhook-timestamp` is further in the future than the tolerance allows.
    #[error("the `webhook-timestamp` is too far in the future (outside the allowed tolerance)")]
    TimestampTooNew,
    /// No `v1` entry of the `webhook-signature` header matched any configured secret.
    #[error("no signature in the `webhook-signature` header matched")]
    NoMatchingSignature,
}

/// A shared webhook signing secret.
///
/// Holds the key bytes (between [`MIN_SECRET_LEN`] and [`MAX_SECRET_LEN`] bytes) in
/// memory that is zeroed on drop, plus a pre-keyed HMAC-SHA256 state so that signing
/// and verifying never re-derive the key pads. (The keyed HMAC state itself is not
/// zeroed on drop: the `hmac` crate only offers that behind a feature this crate does
/// not enable.)
///
/// `Debug` and `Display` print `SigningSecret([redacted])`; use
/// [`SigningSecret::to_whsec`] to obtain the textual form deliberately. Equality is
/// checked in constant time (for secrets of equal length).
#[derive(Clone)]
pub struct SigningSecret {
    bytes: Zeroizing<Vec<u8>>,
    keyed: HmacSha256,
}

impl SigningSecret {
    /// Parses the textual form `whsec_<standard base64 with padding>`.
    ///
    /// The `whsec_` prefix is required (a bare base64 string is rejected so that a
    /// secret is never confused with other configuration values), and the decoded key
    /// must be [`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`] bytes long.
    ///
    /// # Errors
    ///
    /// [`SigningError::InvalidSecret`] if the prefix is missing, the rest is not valid
    /// standard base64, or the decoded length is out of range.
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        let encoded = s.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            SigningError::InvalidSecret(format!("expected the `{SECRET_PREFIX}` prefix"))
        })?;
        // Reject oversize input before allocating for it.
        if encoded.len() > MAX_SECRET_LEN.div_ceil(3) * 4 {
            return Err(SigningError::InvalidSecret(format!(
                "longer than {MAX_SECRET_LEN} bytes"
            )));
        }
        let bytes = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| {
            SigningError::InvalidSecret(
                "not valid standard base64 (with padding) after the prefix".to_owned(),
            )
        })?);
        Self::from_bytes(&bytes)
    }

    /// Builds a secret from raw key bytes, which must be
    /// [`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`] bytes long.
    ///
    /// # Errors
    ///
    /// [`SigningError::InvalidSecret`] if the length is out of range.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SigningError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(SigningError::InvalidSecret(format!(
                "the key is {} bytes; expected {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes",
                bytes.len()
            )));
        }
        // HMAC accepts keys of any length, so this never fails in practice.
        let keyed = HmacSha256::new_from_slice(bytes).map_err(|_| {
            SigningError::InvalidSecret("the key was rejected by HMAC-SHA256".to_owned())
        })?;
        Ok(Self {
            bytes: Zeroizing::new(bytes.to_vec()),
            keyed,
        })
    }

    /// Generates a fresh random secret of [`GENERATED_SECRET_LEN`] (32) bytes from the
    /// operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`SigningError::Rng`] if the random number generator fails.
    pub fn generate() -> Result<Self, SigningError> {
        let mut bytes = Zeroizing::new([0u8; GENERATED_SECRET_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| SigningError::Rng)?;
        Self::from_bytes(bytes.as_slice())
    }

    /// Returns the textual `whsec_<base64>` form, e.g. to show once to a user. The
    /// returned string is zeroed on drop.
    #[must_use]
    pub fn to_whsec(&self) -> Zeroizing<String> {
        // Exact capacity, so encoding never reallocates and leaves stray copies behind.
        let mut out = Zeroizing::new(String::with_capacity(
            SECRET_PREFIX.len() + self.bytes.len().div_ceil(3) * 4,
        ));
        out.push_str(SECRET_PREFIX);
        STANDARD.encode_string(self.bytes.as_slice(), &mut out);
        out
    }

    /// Returns the raw key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Signs a message with this secret; same as [`sign`].
    #[must_use]
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Signature {
        sign(self, msg_id, timestamp, body)
    }

    /// Returns the keyed HMAC state after absorbing `{msg_id}.{timestamp}.{body}`.
    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut buf = [0u8; 20];
        let mut mac = self.keyed.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(format_i64(timestamp, &mut buf));
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl fmt::Display for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

impl PartialEq for SigningSecret {
    /// Constant-time in the contents; only the lengths are compared directly.
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for SigningSecret {}

/// A `v1` (HMAC-SHA256) signature.
///
/// `Display` and [`Signature::to_header_value`] give `v1,<standard base64>`. Equality
/// is checked in constant time.
#[derive(Clone, Copy)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Returns the `v1,<base64>` form used in the `webhook-signature` header.
    #[must_use]
    pub fn to_header_value(&self) -> String {
        self.to_string()
    }

    /// Returns the raw 32-byte HMAC-SHA256 tag.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SIGNATURE_VERSION},{}",
            Base64Display::new(&self.0, &STANDARD)
        )
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for Signature {}

/// Computes the `v1` signature of a message: HMAC-SHA256 keyed with `secret` over
/// `{msg_id}.{timestamp}.{body}`, fed incrementally (no concatenation buffer).
///
/// Note that [`Verifier`] rejects messages with an empty `msg_id`.
#[must_use]
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> Signature {
    let tag = secret.mac(msg_id, timestamp, body).finalize().into_bytes();
    Signature(tag.into())
}

/// Builds a complete `webhook-signature` header value: one `v1,<base64>` entry per
/// secret, separated by single spaces. Useful while rotating secrets. An empty
/// iterator yields an empty string.
#[must_use]
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a SigningSecret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut out = String::new();
    push_signature_header(&mut out, secrets, msg_id, timestamp, body);
    out
}

/// Length of one `webhook-signature` entry: `v1,` and 44 base64 characters.
pub(crate) const SIGNATURE_ENTRY_LEN: usize = SIGNATURE_VERSION.len() + 1 + SIGNATURE_B64_LEN;

/// [`signature_header`] appended to `out` (which may already hold other text).
pub(crate) fn push_signature_header<'a>(
    out: &mut String,
    secrets: impl IntoIterator<Item = &'a SigningSecret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) {
    // Encoded straight into the string, without the formatting machinery.
    const ENTRY_LEN: usize = SIGNATURE_ENTRY_LEN;
    let mut first = true;
    for secret in secrets {
        if first {
            out.reserve(ENTRY_LEN);
            first = false;
        } else {
            out.reserve(1 + ENTRY_LEN);
            out.push(' ');
        }
        out.push_str(SIGNATURE_VERSION);
        out.push(',');
        STANDARD.encode_string(sign(secret, msg_id, timestamp, body).0, out);
    }
}

/// The authenticated identity of a verified message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifiedMessage {
    /// The `webhook-id` value; use it to deduplicate retried deliveries.
    pub id: String,
    /// The `webhook-timestamp` value in unix seconds.
    pub timestamp: i64,
}

/// Verifies incoming Standard Webhooks messages against one or more secrets.
///
/// A message is accepted if its timestamp is within the tolerance of the supplied
/// clock (inclusive, in whole seconds, both directions) and any `v1` signature in the
/// `webhook-signature` header matches any configured secret.
#[derive(Clone, Debug)]
pub struct Verifier {
    secrets: Vec<SigningSecret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier for a single secret with [`DEFAULT_TOLERANCE`].
    #[must_use]
    pub fn new(secret: SigningSecret) -> Self {
        Self::with_secrets(vec![secret])
    }

    /// A verifier accepting a signature by any of `secrets` (e.g. old and new secret
    /// during rotation), with [`DEFAULT_TOLERANCE`]. With an empty list no message
    /// verifies.
    #[must_use]
    pub fn with_secrets(secrets: Vec<SigningSecret>) -> Self {
        Self {
            secrets,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Sets the allowed clock difference in either direction (whole seconds are used;
    /// fractions are truncated).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a message from its HTTP headers and raw body, against the clock `now`.
    ///
    /// The first `webhook-id` and `webhook-timestamp` values are used; signatures from
    /// all `webhook-signature` values are considered.
    ///
    /// # Errors
    ///
    /// [`SigningError::MissingHeader`] if a header is absent;
    /// [`SigningError::InvalidHeader`] if a value is not UTF-8 or otherwise malformed;
    /// otherwise as for [`Verifier::verify_parts`].
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<VerifiedMessage, SigningError> {
        let msg_id = header_str(headers, HEADER_ID)?;
        let timestamp = header_str(headers, HEADER_TIMESTAMP)?;
        let mut values = headers.get_all(HEADER_SIGNATURE).iter().peekable();
        if values.peek().is_none() {
            return Err(SigningError::MissingHeader(HEADER_SIGNATURE));
        }
        let mut signatures = Vec::new();
        for value in values {
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| SigningError::InvalidHeader(HEADER_SIGNATURE))?;
            signatures.extend(parse_signatures(value));
        }
        self.check(msg_id, timestamp, &signatures, body, now)
    }

    /// Verifies a message from the three header values and the raw body, against the
    /// clock `now`.
    ///
    /// `signatures` is the `webhook-signature` value: whitespace-separated
    /// `version,base64` entries. Entries that are not `v1` or are malformed are skipped.
    ///
    /// # Errors
    ///
    /// - [`SigningError::InvalidHeader`]`(HEADER_ID)` if `msg_id` is empty;
    /// - [`SigningError::InvalidHeader`]`(HEADER_TIMESTAMP)` if `timestamp` is not
    ///   an optional `-` followed by ASCII digits fitting in an `i64`;
    /// - [`SigningError::TimestampTooOld`] / [`SigningError::TimestampTooNew`] if it is
    ///   outside the tolerance;
    /// - [`SigningError::NoMatchingSignature`] if no `v1` entry matches any secret.
    pub fn verify_parts(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<VerifiedMessage, SigningError> {
        let candidates: Vec<_> = parse_signatures(signatures).collect();
        self.check(msg_id, timestamp, &candidates, body, now)
    }

    fn check(
        &self,
        msg_id: &str,
        timestamp: &str,
        candidates: &[[u8; SIGNATURE_LEN]],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<VerifiedMessage, SigningError> {
        if msg_id.is_empty() {
            return Err(SigningError::InvalidHeader(HEADER_ID));
        }
        let ts = parse_timestamp(timestamp).ok_or(SigningError::InvalidHeader(HEADER_TIMESTAMP))?;
        let age = i128::from(now.timestamp()) - i128::from(ts);
        let tolerance = i128::from(self.tolerance.as_secs());
        if age > tolerance {
            return Err(SigningError::TimestampTooOld);
        }
        if -age > tolerance {
            return Err(SigningError::TimestampTooNew);
        }
        if !candidates.is_empty() {
            for secret in &self.secrets {
                let expected = secret.mac(msg_id, ts, body).finalize();
                for candidate in candidates {
                    let given = CtOutput::<HmacSha256>::new(Output::<HmacSha256>::from(*candidate));
                    if expected == given {
                        return Ok(VerifiedMessage {
                            id: msg_id.to_owned(),
                            timestamp: ts,
                        });
                    }
                }
            }
        }
        Err(SigningError::NoMatchingSignature)
    }
}

/// Returns the first value of header `name` as UTF-8.
fn header_str<'h>(
    headers: &'h http::HeaderMap,
    name: &'static str,
) -> Result<&'h str, SigningError> {
    let value = headers.get(name).ok_or(SigningError::MissingHeader(name))?;
    std::str::from_utf8(value.as_bytes()).map_err(|_| SigningError::InvalidHeader(name))
}

/// Decoded `v1` signatures of a `webhook-signature` value; other entries are skipped.
fn parse_signatures(value: &str) -> impl Iterator<Item = [u8; SIGNATURE_LEN]> + '_ {
    value.split_ascii_whitespace().filter_map(|entry| {
        let (version, encoded) = entry.split_once(',')?;
        if version != SIGNATURE_VERSION || encoded.len() != SIGNATURE_B64_LEN {
            return None;
        }
        let mut tag = [0u8; SIGNATURE_LEN];
        match STANDARD.decode_slice(encoded, &mut tag) {
            Ok(SIGNATURE_LEN) => Some(tag),
            _ => None,
        }
    })
}

/// Parses `-?[0-9]+` into an `i64`; `None` on anything else, including overflow.
fn parse_timestamp(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Formats `value` in decimal into `buf` without allocating and returns the digits.
fn format_i64(value: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = value.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

/// Compares two byte strings; time depends only on the lengths, not the contents.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const VECTOR_TS: i64 = 1_649_367_553;
    const VECTOR_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const VECTOR_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn at(secs: i64) -> DateTime<Utc> {
        match Utc.timestamp_opt(secs, 0).single() {
            Some(t) => t,
            None => panic!("timestamp {secs} out of range"),
        }
    }

    fn vector_secret() -> SigningSecret {
        SigningSecret::parse(VECTOR_SECRET).expect("vector secret parses")
    }

    fn vector_headers(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_ID, HeaderValue::from_static(VECTOR_ID));
        headers.insert(
            HEADER_TIMESTAMP,
            HeaderValue::from_str(&VECTOR_TS.to_string()).expect("ascii"),
        );
        headers.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_str(signature).expect("ascii"),
        );
        headers
    }

    #[test]
    fn published_vector_signs() {
        let secret = vector_secret();
        assert_eq!(secret.as_bytes().len(), 24);
        let sig = sign(&secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        assert_eq!(sig.to_header_value(), VECTOR_SIG);
        assert_eq!(sig.to_string(), VECTOR_SIG);
        assert_eq!(secret.sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY), sig);
    }

    #[test]
    fn published_vector_verifies() {
        let verifier = Verifier::new(vector_secret());
        let msg = verifier
            .verify(&vector_headers(VECTOR_SIG), VECTOR_BODY, at(VECTOR_TS + 3))
            .expect("verifies");
        assert_eq!(
            msg,
            VerifiedMessage {
                id: VECTOR_ID.to_owned(),
                timestamp: VECTOR_TS
            }
        );
        let msg = verifier
            .verify_parts(
                VECTOR_ID,
                "1649367553",
                VECTOR_SIG,
                VECTOR_BODY,
                at(VECTOR_TS - 3),
            )
            .expect("verifies");
        assert_eq!(msg.timestamp, VECTOR_TS);
    }

    #[test]
    fn tolerance_boundaries() {
        let v = Verifier::new(vector_secret());
        let check = |now: i64| v.verify(&vector_headers(VECTOR_SIG), VECTOR_BODY, at(now));
        assert!(check(VECTOR_TS + 300).is_ok());
        assert!(check(VECTOR_TS - 300).is_ok());
        assert!(matches!(
            check(VECTOR_TS + 301),
            Err(SigningError::TimestampTooOld)
        ));
        assert!(matches!(
            check(VECTOR_TS - 301),
            Err(SigningError::TimestampTooNew)
        ));

        let v = Verifier::new(vector_secret()).tolerance(Duration::from_secs(10));
        let check = |now: i64| v.verify(&vector_headers(VECTOR_SIG), VECTOR_BODY, at(now));
        assert!(check(VECTOR_TS + 10).is_ok());
        assert!(check(VECTOR_TS - 10).is_ok());
        assert!(matches!(
            check(VECTOR_TS + 11),
            Err(SigningError::TimestampTooOld)
        ));
        assert!(matches!(
            check(VECTOR_TS - 11),
            Err(SigningError::TimestampTooNew)
        ));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let v = Verifier::new(vector_secret()).tolerance(Duration::MAX);
        let now = at(0);
        for ts in [i64::MIN, i64::MAX] {
            let sig = sign(&vector_secret(), "id", ts, b"x").to_string();
            let msg = v
                .verify_parts("id", &ts.to_string(), &sig, b"x", now)
                .expect("verifies with unlimited tolerance");
            assert_eq!(msg.timestamp, ts);
        }
        let v = Verifier::new(vector_secret());
        assert!(matches!(
            v.verify_parts("id", &i64::MIN.to_string(), VECTOR_SIG, b"x", now),
            Err(SigningError::TimestampTooOld)
        ));
        assert!(matches!(
            v.verify_parts("id", &i64::MAX.to_string(), VECTOR_SIG, b"x", now),
            Err(SigningError::TimestampTooNew)
        ));
        for bad in [
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999999",
            "",
            "-",
            "+1649367553",
            " 1649367553",
            "1649367553.0",
            "1e9",
        ] {
            assert!(
                matches!(
                    v.verify_parts("id", bad, VECTOR_SIG, b"x", now),
                    Err(SigningError::InvalidHeader(HEADER_TIMESTAMP))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn format_i64_matches_std() {
        let mut buf = [0u8; 20];
        for v in [0, 1, -1, 9, 10, -10, VECTOR_TS, i64::MIN, i64::MAX] {
            assert_eq!(format_i64(v, &mut buf), v.to_string().as_bytes());
        }
    }

    #[test]
    fn tampering_is_rejected() {
        let v = Verifier::new(vector_secret());
        let now = at(VECTOR_TS);
        let tampered_body = br#"{"email":"test@example.com","username":"test_user2"}"#;
        assert!(matches!(
            v.verify_parts(VECTOR_ID, "1649367553", VECTOR_SIG, tampered_body, now),
            Err(SigningError::NoMatchingSignature)
        ));
        assert!(matches!(
            v.verify_parts(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpl",
                "1649367553",
                VECTOR_SIG,
                VECTOR_BODY,
                now
            ),
            Err(SigningError::NoMatchingSignature)
        ));
        assert!(matches!(
            v.verify_parts(VECTOR_ID, "1649367554", VECTOR_SIG, VECTOR_BODY, now),
            Err(SigningError::NoMatchingSignature)
        ));
        let other = Verifier::new(SigningSecret::generate().expect("rng"));
        assert!(matches!(
            other.verify_parts(VECTOR_ID, "1649367553", VECTOR_SIG, VECTOR_BODY, now),
            Err(SigningError::NoMatchingSignature)
        ));
        assert!(matches!(
            Verifier::with_secrets(Vec::new()).verify_parts(
                VECTOR_ID,
                "1649367553",
                VECTOR_SIG,
                VECTOR_BODY,
                now
            ),
            Err(SigningError::NoMatchingSignature)
        ));
    }

    #[test]
    fn multiple_signatures_and_secrets() {
        let now = at(VECTOR_TS);
        let wrong = sign(
            &SigningSecret::generate().expect("rng"),
            VECTOR_ID,
            VECTOR_TS,
            VECTOR_BODY,
        );
        let header = format!("{wrong} {VECTOR_SIG}");
        let v = Verifier::new(vector_secret());
        assert!(v.verify(&vector_headers(&header), VECTOR_BODY, now).is_ok());

        // Secret rotation: the verifier knows an old and a new secret.
        let new = SigningSecret::generate().expect("rng");
        let v = Verifier::with_secrets(vec![new.clone(), vector_secret()]);
        assert!(
            v.verify_parts(VECTOR_ID, "1649367553", VECTOR_SIG, VECTOR_BODY, now)
                .is_ok()
        );
        let both = signature_header([&vector_secret(), &new], VECTOR_ID, VECTOR_TS, VECTOR_BODY);
        let parts: Vec<_> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], VECTOR_SIG);
        assert_eq!(
            parts[1],
            sign(&new, VECTOR_ID, VECTOR_TS, VECTOR_BODY).to_string()
        );
        let only_new = Verifier::new(new);
        assert!(
            only_new
                .verify_parts(VECTOR_ID, "1649367553", &both, VECTOR_BODY, now)
                .is_ok()
        );
        assert_eq!(signature_header(std::iter::empty(), VECTOR_ID, 1, b""), "");
    }

    #[test]
    fn signature_split_over_several_header_values() {
        let mut headers = vector_headers("v1,AAAA");
        headers.append(HEADER_SIGNATURE, HeaderValue::from_static(VECTOR_SIG));
        let v = Verifier::new(vector_secret());
        assert!(v.verify(&headers, VECTOR_BODY, at(VECTOR_TS)).is_ok());
    }

    #[test]
    fn malformed_and_foreign_entries_are_skipped() {
        let v = Verifier::new(vector_secret());
        let sig_b64 = &VECTOR_SIG[3..];
        let header = format!(
            "v1a,{sig_b64} v2,{sig_b64} {sig_b64} v1, v1,!!!! v1,{} ,,, v1,{sig_b64}x \
             v1,{sig_b64}{sig_b64} V1,{sig_b64}   {VECTOR_SIG}",
            &sig_b64[..43]
        );
        assert!(
            v.verify_parts(VECTOR_ID, "1649367553", &header, VECTOR_BODY, at(VECTOR_TS))
                .is_ok()
        );
        let without = header.replace(&format!(" {VECTOR_SIG}"), "");
        assert!(matches!(
            v.verify_parts(
                VECTOR_ID,
                "1649367553",
                &without,
                VECTOR_BODY,
                at(VECTOR_TS)
            ),
            Err(SigningError::NoMatchingSignature)
        ));
        assert!(matches!(
            v.verify_parts(VECTOR_ID, "1649367553", "", VECTOR_BODY, at(VECTOR_TS)),
            Err(SigningError::NoMatchingSignature)
        ));
        // Unpadded base64 of the right signature is not accepted.
        let unpadded = VECTOR_SIG.trim_end_matches('=');
        assert!(matches!(
            v.verify_parts(
                VECTOR_ID,
                "1649367553",
                unpadded,
                VECTOR_BODY,
                at(VECTOR_TS)
            ),
            Err(SigningError::NoMatchingSignature)
        ));
    }

    #[test]
    fn missing_and_invalid_headers() {
        let v = Verifier::new(vector_secret());
        let now = at(VECTOR_TS);
        for name in [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE] {
            let mut headers = vector_headers(VECTOR_SIG);
            headers.remove(name);
            match v.verify(&headers, VECTOR_BODY, now) {
                Err(SigningError::MissingHeader(n)) => assert_eq!(n, name),
                other => panic!("expected MissingHeader({name}), got {other:?}"),
            }
        }
        for name in [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE] {
            let mut headers = vector_headers(VECTOR_SIG);
            headers.insert(
                name,
                HeaderValue::from_bytes(b"\xff\xfe").expect("obs-text is allowed"),
            );
            match v.verify(&headers, VECTOR_BODY, now) {
                Err(SigningError::InvalidHeader(n)) => assert_eq!(n, name),
                other => panic!("expected InvalidHeader({name}), got {other:?}"),
            }
        }
        let mut headers = vector_headers(VECTOR_SIG);
        headers.insert(HEADER_ID, HeaderValue::from_static(""));
        assert!(matches!(
            v.verify(&headers, VECTOR_BODY, now),
            Err(SigningError::InvalidHeader(HEADER_ID))
        ));
        let msg = SigningError::MissingHeader(HEADER_SIGNATURE).to_string();
        assert!(msg.contains("webhook-signature"), "{msg}");
        let msg = SigningError::InvalidHeader(HEADER_TIMESTAMP).to_string();
        assert!(msg.contains("webhook-timestamp"), "{msg}");
    }

    #[test]
    fn utf8_message_ids_round_trip_through_headers() {
        let secret = vector_secret();
        let id = "msg_ünïcødé";
        let sig = sign(&secret, id, VECTOR_TS, b"body").to_string();
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER_ID,
            HeaderValue::from_bytes(id.as_bytes()).expect("obs-text"),
        );
        headers.insert(HEADER_TIMESTAMP, HeaderValue::from_static("1649367553"));
        headers.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_str(&sig).expect("ascii"),
        );
        let msg = Verifier::new(secret)
            .verify(&headers, b"body", at(VECTOR_TS))
            .expect("verifies");
        assert_eq!(msg.id, id);
    }

    #[test]
    fn secret_parsing() {
        let secret = vector_secret();
        assert_eq!(secret.to_whsec().as_str(), VECTOR_SECRET);
        assert_eq!(
            SigningSecret::parse(&secret.to_whsec()).expect("round trip"),
            secret
        );

        let bad = |s: &str| matches!(SigningSecret::parse(s), Err(SigningError::InvalidSecret(_)));
        assert!(bad("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"), "prefix required");
        assert!(bad("whsec_"));
        assert!(bad("whsec_!!!!"));
        assert!(
            bad("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD"),
            "url-safe alphabet"
        );
        assert!(
            bad("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="),
            "22 bytes is too short"
        );
        let b64 = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
        assert!(bad(&b64(23)));
        assert!(SigningSecret::parse(&b64(24)).is_ok());
        assert!(SigningSecret::parse(&b64(64)).is_ok());
        assert!(bad(&b64(65)));
        assert!(bad(&format!("whsec_{}", "A".repeat(1 << 20))));

        assert!(SigningSecret::from_bytes(&[1; 23]).is_err());
        assert!(SigningSecret::from_bytes(&[1; 24]).is_ok());
        assert!(SigningSecret::from_bytes(&[1; 64]).is_ok());
        assert!(SigningSecret::from_bytes(&[1; 65]).is_err());
        assert!(SigningSecret::from_bytes(&[]).is_err());
    }

    #[test]
    fn generated_secrets() {
        let a = SigningSecret::generate().expect("rng");
        let b = SigningSecret::generate().expect("rng");
        assert_eq!(a.as_bytes().len(), GENERATED_SECRET_LEN);
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
        assert!(a.to_whsec().starts_with(SECRET_PREFIX));
        assert_eq!(SigningSecret::parse(&a.to_whsec()).expect("parses"), a);
    }

    #[test]
    fn secrets_are_redacted() {
        let secret = vector_secret();
        let b64 = &VECTOR_SECRET[SECRET_PREFIX.len()..];
        let bytes_dbg = format!("{:?}", secret.as_bytes());
        let verifier = Verifier::new(secret.clone());
        for shown in [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{secret}"),
            format!("{verifier:?}"),
        ] {
            assert!(!shown.contains(b64), "{shown}");
            assert!(
                !shown.contains(&bytes_dbg[1..bytes_dbg.len() - 1]),
                "{shown}"
            );
            assert!(!shown.contains("11, 97"), "{shown}");
        }
        assert_eq!(format!("{secret:?}"), "SigningSecret([redacted])");
        assert_eq!(format!("{secret}"), "SigningSecret([redacted])");
        let err =
            SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7o!").expect_err("invalid");
        assert!(!err.to_string().contains("C2FVsBQ"), "{err}");
    }

    proptest! {
        #[test]
        fn sign_verify_round_trip(
            id in "\\PC{1,64}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ts in 0i64..4_102_444_800,
            skew in -300i64..=300,
        ) {
            let secret = vector_secret();
            let sig = sign(&secret, &id, ts, &body);
            let verifier = Verifier::new(secret);
            let msg = verifier
                .verify_parts(&id, &ts.to_string(), &sig.to_header_value(), &body, at(ts + skew));
            prop_assert_eq!(msg.ok(), Some(VerifiedMessage { id: id.clone(), timestamp: ts }));

            let mut flipped = body.clone();
            flipped.push(0);
            prop_assert!(matches!(
                verifier.verify_parts(&id, &ts.to_string(), &sig.to_header_value(), &flipped, at(ts)),
                Err(SigningError::NoMatchingSignature)
            ));
        }

        #[test]
        fn verify_parts_never_panics_or_accepts_garbage(
            id in any::<String>(),
            ts in any::<String>(),
            sigs in any::<String>(),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            now in -8_000_000_000_000i64..8_000_000_000_000,
        ) {
            let verifier = Verifier::new(vector_secret());
            prop_assert!(verifier.verify_parts(&id, &ts, &sigs, &body, at(now)).is_err());
        }

        #[test]
        fn random_v1_signatures_never_match(
            id in "[a-zA-Z0-9_]{1,32}",
            tags in proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let header = tags
                .iter()
                .map(|t| format!("v1,{}", STANDARD.encode(t)))
                .collect::<Vec<_>>()
                .join(" ");
            let verifier = Verifier::new(vector_secret());
            prop_assert!(matches!(
                verifier.verify_parts(&id, "1649367553", &header, &body, at(VECTOR_TS)),
                Err(SigningError::NoMatchingSignature)
            ));
        }

        #[test]
        fn verify_headers_never_panics(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 3),
            now in -8_000_000_000_000i64..8_000_000_000_000,
        ) {
            let mut headers = HeaderMap::new();
            for (name, value) in [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE].into_iter().zip(&values) {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    headers.insert(name, value);
                }
            }
            let verifier = Verifier::new(vector_secret());
            prop_assert!(verifier.verify(&headers, b"", at(now)).is_err());
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = SigningSecret::parse(&s);
            let _ = SigningSecret::parse(&format!("whsec_{s}"));
        }
    }
}
