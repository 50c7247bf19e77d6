//! Typed identifiers. Every id is a prefix and random base62 characters (at least 128
//! bits), so ids are unguessable and never contain `.`; slugs use lowercase base32.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The operating system's random generator failed (it practically never does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RngError(String);

/// Bytes of OS randomness fetched at once per thread for ids: one system call serves about
/// a hundred ids instead of one each.
const POOL: usize = 4096;

thread_local! {
    static RANDOM_POOL: std::cell::RefCell<(Box<[u8; POOL]>, usize)> =
        std::cell::RefCell::new((Box::new([0u8; POOL]), POOL));
}

/// Fills `buf` with OS randomness, served from a per-thread pool that is refilled from the
/// operating system when it runs out. (Keys, nonces and signing secrets do not come from
/// here: they call the OS generator directly.)
pub fn random_bytes(buf: &mut [u8]) -> Result<(), RngError> {
    if buf.len() > POOL / 4 {
        return getrandom::fill(buf).map_err(|e| RngError(e.to_string()));
    }
    RANDOM_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (bytes, used) = &mut *pool;
        if *used + buf.len() > POOL {
            getrandom::fill(&mut bytes[..]).map_err(|e| RngError(e.to_string()))?;
            *used = 0;
        }
        let start = *used;
        buf.copy_from_slice(&bytes[start..start + buf.len()]);
        // Never hand out the same bytes twice.
        bytes[start..start + buf.len()].fill(0);
        *used += buf.len();
        Ok(())
    })
}

/// Fills `out` with random characters from `alphabet` (of `N` characters, a power of two or
/// 62), with rejection sampling so every character is uniform. `N` is a constant, so the
/// remainders below are multiplications, not divisions.
fn fill_random<const N: usize>(out: &mut [u8], alphabet: &[u8; N]) -> Result<(), RngError> {
    // 62 * 4 = 248: accept bytes below 248 for base62; 32 divides 256 exactly.
    let limit = 256 - (256 % N);
    let mut filled = 0;
    let mut buf = [0u8; 32];
    while filled < out.len() {
        // As many bytes as characters still wanted, and a few for the rejected ones.
        let want = (out.len() - filled + 2).min(buf.len());
        random_bytes(&mut buf[..want])?;
        for &b in &buf[..want] {
            if usize::from(b) < limit {
                out[filled] = alphabet[usize::from(b) % N];
                filled += 1;
                if filled == out.len() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// `len` random characters from `alphabet`.
fn random_string<const N: usize>(alphabet: &[u8; N], len: usize) -> Result<String, RngError> {
    let mut out = vec![0u8; len];
    fill_random(&mut out, alphabet)?;
    String::from_utf8(out).map_err(|e| RngError(e.to_string()))
}

/// Random characters after a prefix: `prefix_` and 22 base62 characters (131 bits).
const ID_RANDOM: usize = 22;

/// Longest prefix of a generated id.
const MAX_PREFIX: usize = 16;

/// A generated id (`prefix_` and [`ID_RANDOM`] base62 characters) handed to `make`: made on
/// the stack when the prefix is short (every id type's is), so `make` allocates once.
fn generated<T>(prefix: &str, make: impl FnOnce(&str) -> T) -> Result<T, RngError> {
    let mut random = [0u8; ID_RANDOM];
    fill_random(&mut random, BASE62)?;
    if prefix.len() > MAX_PREFIX {
        let mut id = String::with_capacity(prefix.len() + 1 + ID_RANDOM);
        id.push_str(prefix);
        id.push('_');
        id.extend(random.iter().map(|&b| char::from(b)));
        return Ok(make(&id));
    }
    let mut buf = [0u8; MAX_PREFIX + 1 + ID_RANDOM];
    let p = prefix.len();
    buf[..p].copy_from_slice(prefix.as_bytes());
    buf[p] = b'_';
    buf[p + 1..p + 1 + ID_RANDOM].copy_from_slice(&random);
    let text =
        std::str::from_utf8(&buf[..p + 1 + ID_RANDOM]).map_err(|e| RngError(e.to_string()))?;
    Ok(make(text))
}

/// `prefix_` and 22 base62 characters (131 bits).
pub fn new_id(prefix: &str) -> Result<String, RngError> {
    generated(prefix, str::to_owned)
}

/// An inbound webhook slug: 26 lowercase base32 characters (130 bits). URL-safe, no `_`,
/// so a slug never collides with reserved paths such as `/_logs`.
pub fn new_slug() -> Result<String, RngError> {
    random_string(BASE32, 26)
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        ///
        /// Immutable and shared: a clone is a reference-count increment, not a copy.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The prefix of generated ids.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Result<Self, RngError> {
                generated($prefix, |id: &str| $name(Arc::from(id)))
            }

            /// Wraps an existing id (from storage or a request path).
            pub fn new(id: impl AsRef<str>) -> Self {
                $name(Arc::from(id.as_ref()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(Arc::from(s))
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("an id string")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name(Arc::from(v)))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

id_type!(
    /// An account (tenant). Everything else belongs to exactly one account.
    AccountId, "acct"
);
id_type!(
    /// A campaign.
    CampaignId, "campaign"
);
id_type!(
    /// A webhook: inbound, outbound or response.
    WebhookId, "webhook"
);
id_type!(
    /// A call.
    CallId, "call"
);
id_type!(
    /// A delivery's message id: its `webhook-id` header, the same across retries and
    /// redeliveries.
    MessageId, "msg"
);
id_type!(
    /// A delivery: one event to one endpoint.
    DeliveryId, "dlv"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_enough_randomness() {
        let a = MessageId::generate().unwrap();
        let b = MessageId::generate().unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("msg_"));
        assert_eq!(a.as_str().len(), 4 + 22);
        assert!(!a.as_str().contains('.'));
        // 22 base62 characters carry log2(62) * 22 ≈ 131 bits.
        let bits = (62f64).log2() * (a.as_str().len() - 4) as f64;
        assert!(bits >= 128.0, "{bits}");
    }

    #[test]
    fn new_id_keeps_any_prefix_whole() {
        for prefix in [
            "",
            "x",
            "campaign",
            "a_prefix_longer_than_sixteen",
            "préfixe",
        ] {
            let id = new_id(prefix).unwrap();
            assert_eq!(id.len(), prefix.len() + 1 + ID_RANDOM, "{id}");
            let rest = id.strip_prefix(prefix).and_then(|r| r.strip_prefix('_'));
            assert!(
                rest.is_some_and(|r| r.bytes().all(|b| b.is_ascii_alphanumeric())),
                "{id}"
            );
        }
    }

    #[test]
    fn id_characters_are_uniform() {
        let mut counts = [0u32; 128];
        let ids = 20_000;
        for _ in 0..ids {
            for b in CallId::generate().unwrap().as_str()[5..].bytes() {
                counts[usize::from(b)] += 1;
            }
        }
        // 440 000 characters, 7 097 expected each; ±10 % is more than eight standard
        // deviations.
        let expected = f64::from(ids * 22) / 62.0;
        for &c in BASE62 {
            let n = f64::from(counts[usize::from(c)]);
            assert!((n - expected).abs() < expected / 10.0, "{}: {n}", c as char);
        }
    }

    #[test]
    fn slugs_are_url_safe_without_underscore() {
        for _ in 0..200 {
            let s = new_slug().unwrap();
            assert_eq!(s.len(), 26);
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
            );
        }
        // 26 base32 characters carry 5 * 26 = 130 bits.
        assert!(5 * new_slug().unwrap().len() >= 128);
    }
}
