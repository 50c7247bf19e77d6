//! Sealing of secrets at rest with AES-256-GCM.
//!
//! Custom header values and webhook signing secrets are stored encrypted
//! ("sealed"). Nothing leaves this module in clear except through an explicit
//! [`SecretString::expose`] / [`SecretBytes::expose`] call: the secret types
//! print `[redacted]` under `Debug` and `Display`, do not implement
//! `Serialize`, and wipe their memory when dropped.
//!
//! # Sealed format
//!
//! A [`Sealed`] value is a byte string (stored as standard, padded base64 when
//! serialized):
//!
//! ```text
//! +---------+----------------+--------------+--------------------+---------+
//! | version | key id         | nonce        | ciphertext         | tag     |
//! | 1 byte  | 4 bytes, u32BE | 12 bytes     | len(plaintext)     | 16 bytes|
//! +---------+----------------+--------------+--------------------+---------+
//! ```
//!
//! * `version` is [`FORMAT_VERSION`] (`1`); other values are rejected as
//!   [`SecretsError::Malformed`].
//! * `key id` names the key of the [`KeyRing`] that sealed the value, so a
//!   ring holding several keys knows which one opens it.
//! * `nonce` is 96 random bits from the operating system (`getrandom`), fresh
//!   for every seal. NIST SP 800-38D limits random-nonce GCM to 2^32 seals per
//!   key; rotate keys long before that.
//! * The smallest value (empty plaintext) is [`SEALED_OVERHEAD`] = 33 bytes.
//!   The ciphertext has the length of the plaintext: the length of a secret is
//!   not hidden by the sealed form.
//!
//! # Associated data
//!
//! Every seal is bound to a [`SealContext`]: the id of the record that owns
//! the secret and the field name (a header name, or `"signing-secret"`). The
//! AES-GCM associated data is
//!
//! ```text
//! version (1) | key id (4, u32 BE) | len(owner) (8, u64 BE) | owner | len(name) (8, u64 BE) | name
//! ```
//!
//! Length prefixes make the encoding unambiguous (`("ab", "c")` and
//! `("a", "bc")` differ), and the header bytes are authenticated too. A sealed
//! value copied to another row or another field therefore fails to open with
//! [`SecretsError::Decrypt`], exactly like a tampered value or a wrong key.
//!
//! # Key rotation
//!
//! 1. Add the new key to every running instance as a *non-primary* key (with
//!    [`KeyRing::from_env_string`] list it first: `"2:NEW,1:OLD"`).
//! 2. Make it the primary (`"1:OLD,2:NEW"`, or [`KeyRing::set_primary`]).
//!    New seals now use it; old values still open with the old key.
//! 3. Re-seal every stored value: [`KeyRing::needs_reseal`] tells which ones,
//!    [`KeyRing::reseal`] opens with whatever key and seals under the primary.
//! 4. Remove the old key (`"2:NEW"`, or [`KeyRing::remove`]).
//!
//! Never reuse a key id for different key material: values sealed under the
//! old material would then fail with `Decrypt` instead of `UnknownKey`.
//!
//! # Example
//!
//! ```
//! use atllas_webhooks::secrets::{EncryptionKey, KeyId, KeyRing, SealContext, Sealed};
//!
//! # fn main() -> Result<(), atllas_webhooks::secrets::SecretsError> {
//! let mut ring = KeyRing::new(KeyId::new(1), EncryptionKey::generate()?);
//! let ctx = SealContext::new("hook_42", "X-Api-Key");
//!
//! // Seal and store (e.g. in a database column).
//! let stored: String = ring.seal(b"s3cr3t", ctx)?.to_base64();
//!
//! // Load and open.
//! let loaded = Sealed::from_base64(&stored)?;
//! let secret = ring.unseal_string(&loaded, ctx)?;
//! assert_eq!(secret.expose(), "s3cr3t");
//! assert_eq!(format!("{secret:?}"), "[redacted]");
//!
//! // The value is bound to its record and field.
//! assert!(ring.unseal(&loaded, SealContext::new("hook_43", "X-Api-Key")).is_err());
//! assert!(ring.unseal(&loaded, SealContext::new("hook_42", "X-Other")).is_err());
//!
//! // Rotation: add, make primary, re-seal, remove the old key.
//! ring.add(KeyId::new(2), EncryptionKey::generate()?)?;
//! ring.set_primary(KeyId::new(2))?;
//! assert!(ring.needs_reseal(&loaded));
//! let resealed = ring.reseal(&loaded, ctx)?;
//! assert_eq!(resealed.key_id()?, KeyId::new(2));
//! ring.remove(KeyId::new(1))?;
//! assert_eq!(ring.unseal_string(&resealed, ctx)?.expose(), "s3cr3t");
//! # Ok(())
//! # }
//! ```
//!
//! # Memory hygiene
//!
//! Key bytes, decrypted plaintext and the secret wrappers are zeroized on drop
//! (best effort: copies made by the caller, by the allocator on reallocation,
//! or on the stack are out of reach). The AES key schedules held by a
//! [`KeyRing`] are wiped on drop only if the `zeroize` feature of `aes-gcm` is
//! enabled by the final build.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, Key, KeyInit, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Version byte of the sealed format produced by this module.
pub const FORMAT_VERSION: u8 = 1;

/// Length in bytes of an [`EncryptionKey`] (AES-256).
pub const KEY_LEN: usize = 32;

/// Length in bytes of the random nonce stored in every [`Sealed`] value.
pub const NONCE_LEN: usize = 12;

/// Length in bytes of the AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;

/// Bytes of version and key id at the start of a sealed value.
const PREFIX_LEN: usize = 1 + 4;

/// Bytes before the ciphertext: version, key id, nonce.
const HEADER_LEN: usize = PREFIX_LEN + NONCE_LEN;

/// Size of a sealed value beyond its plaintext (header + tag): 33 bytes.
///
/// This is also the minimum length accepted by [`Sealed::from_bytes`].
pub const SEALED_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// What a masked secret looks like in a UI or an API response.
pub const MASK: &str = "••••••••";

/// Masked view of a secret, for UIs and API responses.
///
/// Always returns [`MASK`]: the result deliberately does not depend on the
/// value. Even showing "as many dots as characters" or the last few characters
/// would leak information (the length alone narrows down a token format or a
/// short password).
pub fn mask(_secret: &SecretString) -> &'static str {
    MASK
}

/// Errors of the secrets module.
///
/// Messages never contain key material, plaintext, or the rejected input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// The key (or key configuration) is not usable; the reason is
    /// descriptive and never contains key material.
    #[error("invalid encryption key: {0}")]
    InvalidKey(String),
    /// A key with this id is already in the key ring.
    #[error("key {0} is already in the key ring")]
    DuplicateKey(KeyId),
    /// No key with this id is in the key ring.
    #[error("key {0} is not in the key ring")]
    UnknownKey(KeyId),
    /// The key is the primary key of the ring and cannot be removed.
    #[error("key {0} is the primary key and cannot be removed")]
    PrimaryKeyInUse(KeyId),
    /// The sealed value is structurally invalid (too short, unknown version,
    /// not base64, ...).
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// Authentication failed: wrong key, tampered value, or a value moved to
    /// another record or field (different [`SealContext`]).
    #[error(
        "cannot decrypt sealed value: wrong key, tampered data, or value moved to another record or field"
    )]
    Decrypt,
    /// The decrypted secret is not valid UTF-8.
    #[error("decrypted secret is not valid UTF-8")]
    NotUtf8,
    /// The operating system random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
}

/// Identifier of a key in a [`KeyRing`], stored in every [`Sealed`] value.
///
/// `Debug` and `Display` both print `k<id>`, e.g. `k1`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u32);

impl KeyId {
    /// Key id from its numeric value.
    pub const fn new(id: u32) -> Self {
        Self(id)
    }

    /// Numeric value of the id.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for KeyId {
    fn from(id: u32) -> Self {
        Self(id)
    }
}

impl From<KeyId> for u32 {
    fn from(id: KeyId) -> Self {
        id.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "k{}", self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A 256-bit AES key.
///
/// The bytes live in their own heap allocation (moves do not copy them) and
/// are zeroized on drop. `Debug` prints `EncryptionKey([redacted])`. Not
/// `Clone`, to avoid stray copies.
pub struct EncryptionKey(Box<[u8; KEY_LEN]>);

impl EncryptionKey {
    fn zeroed() -> Self {
        Self(Box::new([0; KEY_LEN]))
    }

    /// Fresh random key from the operating system generator.
    ///
    /// # Errors
    /// [`SecretsError::Rng`] if the generator fails.
    pub fn generate() -> Result<Self, SecretsError> {
        let mut key = Self::zeroed();
        getrandom::fill(&mut key.0[..]).map_err(|_| SecretsError::Rng)?;
        Ok(key)
    }

    /// Key from exactly [`KEY_LEN`] (32) raw bytes.
    ///
    /// # Errors
    /// [`SecretsError::InvalidKey`] if `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretsError> {
        if bytes.len() != KEY_LEN {
            return Err(SecretsError::InvalidKey(format!(
                "expected {KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let mut key = Self::zeroed();
        key.0.copy_from_slice(bytes);
        Ok(key)
    }

    /// Key from standard (padded) base64 of 32 bytes. Surrounding whitespace
    /// is ignored.
    ///
    /// # Errors
    /// [`SecretsError::InvalidKey`] if the text is not canonical standard
    /// base64 or does not decode to 32 bytes. The message never echoes the
    /// input.
    pub fn from_base64(encoded: &str) -> Result<Self, SecretsError> {
        let mut decoded = Zeroizing::new(Vec::with_capacity(48));
        STANDARD
            .decode_vec(encoded.trim(), &mut decoded)
            .map_err(|_| SecretsError::InvalidKey("not valid standard base64".to_owned()))?;
        Self::from_bytes(&decoded)
    }

    /// The key as standard base64, wrapped as a secret (for key-generation
    /// tooling and configuration output).
    pub fn to_base64(&self) -> SecretString {
        let mut encoded = Zeroizing::new(String::with_capacity(48));
        STANDARD.encode_string(&self.0[..], &mut encoded);
        SecretString(encoded)
    }

    fn cipher(&self) -> Aes256Gcm {
        let key: &Key<Aes256Gcm> = (&*self.0).into();
        Aes256Gcm::new(key)
    }
}

impl Drop for EncryptionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for EncryptionKey {}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([redacted])")
    }
}

/// Associated data of a seal: which record owns the secret and which field
/// of it holds the secret.
///
/// A value sealed with one context only opens with the same context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SealContext<'a> {
    /// Id of the owning record (e.g. the webhook id).
    pub owner: &'a str,
    /// Field name: a header name, or e.g. `"signing-secret"`.
    pub name: &'a str,
}

impl<'a> SealContext<'a> {
    /// Context for `name` of record `owner`.
    pub const fn new(owner: &'a str, name: &'a str) -> Self {
        Self { owner, name }
    }

    /// AES-GCM associated data: the sealed value's version and key id bytes,
    /// then the length-prefixed owner and name.
    fn aad(&self, prefix: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(prefix.len() + 16 + self.owner.len() + self.name.len());
        aad.extend_from_slice(prefix);
        for part in [self.owner, self.name] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A set of keys by id, one of which (the primary) seals new values.
///
/// Each key is turned into an `Aes256Gcm` cipher once, when it is added, so
/// sealing and unsealing do not recompute the key schedule. The raw
/// [`EncryptionKey`] is dropped (zeroized) after that.
///
/// `Clone` is cheap (reference counted) and clones are independent: mutating
/// one (copy on write) does not affect the others. To rotate keys at run time
/// in a shared service, swap the whole ring (e.g. behind an `RwLock` or an
/// `ArcSwap`). `Debug` shows key ids only.
#[derive(Clone)]
pub struct KeyRing {
    primary: KeyId,
    ciphers: Arc<BTreeMap<KeyId, Arc<Aes256Gcm>>>,
}

impl KeyRing {
    /// Ring holding a single key, which is the primary.
    pub fn new(id: KeyId, key: EncryptionKey) -> Self {
        let mut ciphers = BTreeMap::new();
        ciphers.insert(id, Arc::new(key.cipher()));
        Self {
            primary: id,
            ciphers: Arc::new(ciphers),
        }
    }

    /// Ring holding one fresh random key with id `k1` (for tests and local
    /// development; the key cannot be read back, so values sealed with it do
    /// not survive the process).
    ///
    /// # Errors
    /// [`SecretsError::Rng`] if the random generator fails.
    pub fn generate() -> Result<Self, SecretsError> {
        Ok(Self::new(KeyId::new(1), EncryptionKey::generate()?))
    }

    /// Parse a key configuration such as `"1:BASE64KEY,2:BASE64KEY"`.
    ///
    /// Entries are `<decimal u32 id>:<standard base64 of 32 bytes>`, separated
    /// by commas; whitespace around entries and parts is ignored. **The last
    /// entry is the primary key.** So during a rotation, `"2:NEW,1:OLD"` makes
    /// key 2 known while key 1 still seals, and `"1:OLD,2:NEW"` switches
    /// sealing to key 2.
    ///
    /// # Errors
    /// [`SecretsError::InvalidKey`] for an empty configuration, an empty or
    /// badly formed entry, or a bad key (the message names the entry's
    /// position and id, never the key); [`SecretsError::DuplicateKey`] if an
    /// id repeats.
    pub fn from_env_string(spec: &str) -> Result<Self, SecretsError> {
        if spec.trim().is_empty() {
            return Err(SecretsError::InvalidKey("no keys configured".to_owned()));
        }
        let mut ring: Option<Self> = None;
        for (index, entry) in spec.split(',').enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(SecretsError::InvalidKey(format!(
                    "key entry {position} is empty"
                )));
            }
            let (id, key) = entry.split_once(':').ok_or_else(|| {
                SecretsError::InvalidKey(format!(
                    "key entry {position} is not of the form `<id>:<base64 key>`"
                ))
            })?;
            let id = id.trim().parse::<u32>().map(KeyId::new).map_err(|_| {
                SecretsError::InvalidKey(format!(
                    "key entry {position}: the id is not a decimal u32"
                ))
            })?;
            let key = EncryptionKey::from_base64(key).map_err(|err| match err {
                SecretsError::InvalidKey(reason) => {
                    SecretsError::InvalidKey(format!("key entry {position} ({id}): {reason}"))
                }
                other => other,
            })?;
            match ring.as_mut() {
                None => ring = Some(Self::new(id, key)),
                Some(ring) => {
                    ring.add(id, key)?;
                    ring.primary = id;
                }
            }
        }
        ring.ok_or_else(|| SecretsError::InvalidKey("no keys configured".to_owned()))
    }

    /// Add a (non-primary) key.
    ///
    /// # Errors
    /// [`SecretsError::DuplicateKey`] if the id is already in the ring.
    pub fn add(&mut self, id: KeyId, key: EncryptionKey) -> Result<(), SecretsError> {
        if self.ciphers.contains_key(&id) {
            return Err(SecretsError::DuplicateKey(id));
        }
        Arc::make_mut(&mut self.ciphers).insert(id, Arc::new(key.cipher()));
        Ok(())
    }

    /// Make `id` the key used by [`seal`](Self::seal) and
    /// [`reseal`](Self::reseal).
    ///
    /// # Errors
    /// [`SecretsError::UnknownKey`] if the id is not in the ring.
    pub fn set_primary(&mut self, id: KeyId) -> Result<(), SecretsError> {
        if !self.ciphers.contains_key(&id) {
            return Err(SecretsError::UnknownKey(id));
        }
        self.primary = id;
        Ok(())
    }

    /// Remove a key. Values sealed under it can no longer be opened by this
    /// ring: re-seal them first.
    ///
    /// # Errors
    /// [`SecretsError::PrimaryKeyInUse`] for the primary key,
    /// [`SecretsError::UnknownKey`] if the id is not in the ring.
    pub fn remove(&mut self, id: KeyId) -> Result<(), SecretsError> {
        if id == self.primary {
            return Err(SecretsError::PrimaryKeyInUse(id));
        }
        if !self.ciphers.contains_key(&id) {
            return Err(SecretsError::UnknownKey(id));
        }
        Arc::make_mut(&mut self.ciphers).remove(&id);
        Ok(())
    }

    /// Id of the primary key.
    pub fn primary(&self) -> KeyId {
        self.primary
    }

    /// Ids of all keys, in ascending order.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.ciphers.keys().copied().collect()
    }

    /// Whether a key with this id is in the ring.
    pub fn contains(&self, id: KeyId) -> bool {
        self.ciphers.contains_key(&id)
    }

    fn cipher(&self, id: KeyId) -> Result<&Aes256Gcm, SecretsError> {
        self.ciphers
            .get(&id)
            .map(|cipher| &**cipher)
            .ok_or(SecretsError::UnknownKey(id))
    }

    /// Seal `plaintext` for `ctx` under the primary key, with a fresh random
    /// 96-bit nonce.
    ///
    /// # Errors
    /// [`SecretsError::Rng`] if the random generator fails;
    /// [`SecretsError::Malformed`] if the plaintext exceeds the AES-GCM limit
    /// (about 64 GiB).
    pub fn seal(&self, plaintext: &[u8], ctx: SealContext<'_>) -> Result<Sealed, SecretsError> {
        let cipher = self.cipher(self.primary)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SecretsError::Rng)?;

        let mut out = Vec::with_capacity(SEALED_OVERHEAD + plaintext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.primary.0.to_be_bytes());
        let aad = ctx.aad(&out);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);

        let nonce: &Nonce<Aes256Gcm> = (&nonce).into();
        match cipher.encrypt_inout_detached(nonce, &aad, (&mut out[HEADER_LEN..]).into()) {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(Sealed(out))
            }
            Err(_) => {
                // The buffer still holds the plaintext.
                out.zeroize();
                Err(SecretsError::Malformed("plaintext too long to seal"))
            }
        }
    }

    /// Open `sealed` with the key named in it, checking that it was sealed
    /// for `ctx`.
    ///
    /// # Errors
    /// [`SecretsError::UnknownKey`] if the key is not in the ring;
    /// [`SecretsError::Decrypt`] for a wrong key, tampered data or another
    /// context; [`SecretsError::Malformed`] for a structurally invalid value.
    pub fn unseal(
        &self,
        sealed: &Sealed,
        ctx: SealContext<'_>,
    ) -> Result<SecretBytes, SecretsError> {
        let parts = sealed.parts()?;
        let cipher = self.cipher(parts.key_id)?;
        let aad = ctx.aad(parts.prefix);
        let mut buffer = Zeroizing::new(parts.ciphertext.to_vec());
        cipher
            .decrypt_inout_detached(parts.nonce, &aad, buffer.as_mut_slice().into(), parts.tag)
            .map_err(|_| SecretsError::Decrypt)?;
        Ok(SecretBytes(buffer))
    }

    /// Like [`unseal`](Self::unseal), for secrets that must be UTF-8 text.
    ///
    /// # Errors
    /// As [`unseal`](Self::unseal), plus [`SecretsError::NotUtf8`].
    pub fn unseal_string(
        &self,
        sealed: &Sealed,
        ctx: SealContext<'_>,
    ) -> Result<SecretString, SecretsError> {
        let mut bytes = self.unseal(sealed, ctx)?.0;
        // Move the buffer out (no copy); `bytes` keeps an empty vector.
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(SecretString(Zeroizing::new(text))),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(SecretsError::NotUtf8)
            }
        }
    }

    /// Open `sealed` with whatever key of the ring it names and seal it again
    /// under the primary key, always with a fresh nonce (even if it already
    /// was under the primary).
    ///
    /// # Errors
    /// As [`unseal`](Self::unseal) and [`seal`](Self::seal).
    pub fn reseal(&self, sealed: &Sealed, ctx: SealContext<'_>) -> Result<Sealed, SecretsError> {
        let plaintext = self.unseal(sealed, ctx)?;
        self.seal(plaintext.expose(), ctx)
    }

    /// Whether `sealed` is under a key other than the primary (and so should
    /// be re-sealed during a rotation).
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id() != Ok(self.primary)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("primary", &self.primary)
            .field("keys", &self.ciphers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An encrypted secret, in the format described in the [module
/// docs](self).
///
/// Always structurally valid (checked by [`from_bytes`](Self::from_bytes));
/// whether it authenticates is only known when unsealing. Serialized with
/// serde as a standard base64 string. `Debug` prints
/// `Sealed { key: k1, len: N }` with `N` the total length in bytes, never the
/// bytes. There is deliberately no `Display`: use
/// [`to_base64`](Self::to_base64).
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

/// Borrowed pieces of a sealed value.
struct Parts<'a> {
    prefix: &'a [u8],
    key_id: KeyId,
    nonce: &'a Nonce<Aes256Gcm>,
    ciphertext: &'a [u8],
    tag: &'a Tag<Aes256Gcm>,
}

impl Sealed {
    /// Validate raw bytes (minimum length, version byte). Never panics.
    ///
    /// # Errors
    /// [`SecretsError::Malformed`] if shorter than [`SEALED_OVERHEAD`] or not
    /// of version [`FORMAT_VERSION`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretsError> {
        if bytes.len() < SEALED_OVERHEAD {
            return Err(SecretsError::Malformed("too short"));
        }
        if bytes.first() != Some(&FORMAT_VERSION) {
            return Err(SecretsError::Malformed("unsupported format version"));
        }
        Ok(Self(bytes))
    }

    /// Decode standard (padded) base64 and validate as in
    /// [`from_bytes`](Self::from_bytes).
    ///
    /// # Errors
    /// [`SecretsError::Malformed`] if not base64 or not a valid sealed value.
    pub fn from_base64(encoded: &str) -> Result<Self, SecretsError> {
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretsError::Malformed("not valid standard base64"))?;
        Self::from_bytes(bytes)
    }

    /// Standard (padded) base64 of the bytes, for storage.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Id of the key that sealed this value.
    ///
    /// # Errors
    /// [`SecretsError::Malformed`] if the value is too short (cannot happen
    /// for values built by this module).
    pub fn key_id(&self) -> Result<KeyId, SecretsError> {
        self.0
            .get(1..PREFIX_LEN)
            .and_then(|id| <[u8; 4]>::try_from(id).ok())
            .map(|id| KeyId::new(u32::from_be_bytes(id)))
            .ok_or(SecretsError::Malformed("too short"))
    }

    fn parts(&self) -> Result<Parts<'_>, SecretsError> {
        const TRUNCATED: SecretsError = SecretsError::Malformed("too short");
        let (header, body) = self.0.split_at_checked(HEADER_LEN).ok_or(TRUNCATED)?;
        let (prefix, nonce) = header.split_at(PREFIX_LEN);
        let tag_start = body.len().checked_sub(TAG_LEN).ok_or(TRUNCATED)?;
        let (ciphertext, tag) = body.split_at(tag_start);
        Ok(Parts {
            prefix,
            key_id: self.key_id()?,
            nonce: nonce.try_into().map_err(|_| TRUNCATED)?,
            ciphertext,
            tag: tag.try_into().map_err(|_| TRUNCATED)?,
        })
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Sealed");
        match self.key_id() {
            Ok(id) => debug.field("key", &id),
            Err(_) => debug.field("key", &format_args!("?")),
        };
        debug.field("len", &self.0.len()).finish()
    }
}

impl std::str::FromStr for Sealed {
    type Err = SecretsError;

    fn from_str(encoded: &str) -> Result<Self, Self::Err> {
        Self::from_base64(encoded)
    }
}

impl serde::Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Sealed;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64-encoded sealed secret")
            }

            fn visit_str<E: serde::de::Error>(self, encoded: &str) -> Result<Sealed, E> {
                Sealed::from_base64(encoded).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Best-effort constant-time equality: the time depends on the lengths, not
/// on the contents.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff = std::hint::black_box(diff | (x ^ y));
    }
    diff == 0
}

/// A text secret in clear (a header value, a signing secret).
///
/// * `Debug` and `Display` print `[redacted]`; read it with
///   [`expose`](Self::expose).
/// * The memory is zeroized on drop (the wrapped `String` only: copies the
///   caller made before wrapping are out of reach).
/// * `Serialize` is deliberately **not** implemented, so it cannot end up in
///   JSON logs or API responses by accident; show [`mask`] instead.
///   `Deserialize` is implemented so configuration and API input can carry
///   secrets (serde and the input buffer may keep transient copies).
/// * `PartialEq` compares in constant time for equal lengths (best effort;
///   the length is not hidden).
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wrap a string.
    pub fn new(secret: String) -> Self {
        Self(Zeroizing::new(secret))
    }

    /// The secret in clear. Every use is a deliberate disclosure.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl From<&str> for SecretString {
    fn from(secret: &str) -> Self {
        Self::new(secret.to_owned())
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(deserializer).map(Self::new)
    }
}

/// A binary secret in clear, as returned by [`KeyRing::unseal`].
///
/// Same rules as [`SecretString`]: redacted `Debug`/`Display`, zeroized on
/// drop, no `Serialize` (and no `Deserialize`), constant-time `PartialEq` for
/// equal lengths.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wrap bytes.
    pub fn new(secret: Vec<u8>) -> Self {
        Self(Zeroizing::new(secret))
    }

    /// The secret in clear. Every use is a deliberate disclosure.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(secret: Vec<u8>) -> Self {
        Self::new(secret)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(secret: &[u8]) -> Self {
        Self::new(secret.to_vec())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_A: [u8; KEY_LEN] = [0x41; KEY_LEN];
    const KEY_B: [u8; KEY_LEN] = [0x42; KEY_LEN];
    const PLAINTEXT: &str = "hunter2-very-secret-token";

    fn key(bytes: &[u8; KEY_LEN]) -> EncryptionKey {
        EncryptionKey::from_bytes(bytes).expect("32-byte test key")
    }

    fn ring(id: u32, bytes: &[u8; KEY_LEN]) -> KeyRing {
        KeyRing::new(KeyId::new(id), key(bytes))
    }

    fn ctx() -> SealContext<'static> {
        SealContext::new("hook_1", "X-Api-Key")
    }

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<KeyRing>();
        assert_send_sync::<Sealed>();
        assert_send_sync::<SecretString>();
        assert_send_sync::<SecretBytes>();
        assert_send_sync::<EncryptionKey>();
        assert_send_sync::<SecretsError>();
    }

    #[test]
    fn round_trip() {
        let ring = ring(1, &KEY_A);
        let sealed = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        assert_eq!(
            ring.unseal(&sealed, ctx()).unwrap().expose(),
            PLAINTEXT.as_bytes()
        );
        assert_eq!(
            ring.unseal_string(&sealed, ctx()).unwrap().expose(),
            PLAINTEXT
        );

        let empty = ring.seal(b"", ctx()).unwrap();
        assert_eq!(empty.as_bytes().len(), SEALED_OVERHEAD);
        assert_eq!(ring.unseal(&empty, ctx()).unwrap().expose(), b"");
    }

    #[test]
    fn format_layout() {
        let ring = ring(0x0102_0304, &KEY_A);
        let sealed = ring.seal(b"abc", ctx()).unwrap();
        let bytes = sealed.as_bytes();
        assert_eq!(bytes.len(), SEALED_OVERHEAD + 3);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(&bytes[1..5], &[1, 2, 3, 4]);
        assert_eq!(sealed.key_id().unwrap(), KeyId::new(0x0102_0304));
        assert_ne!(&bytes[HEADER_LEN..HEADER_LEN + 3], b"abc");
    }

    #[test]
    fn unseal_string_rejects_non_utf8() {
        let ring = ring(1, &KEY_A);
        let sealed = ring.seal(&[0xff, 0xfe], ctx()).unwrap();
        assert_eq!(
            ring.unseal_string(&sealed, ctx()).unwrap_err(),
            SecretsError::NotUtf8
        );
        assert_eq!(ring.unseal(&sealed, ctx()).unwrap().expose(), &[0xff, 0xfe]);
    }

    #[test]
    fn tampering_any_byte_fails() {
        let ring = ring(1, &KEY_A);
        let sealed = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        let bytes = sealed.as_bytes().to_vec();
        for index in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut tampered = bytes.clone();
                tampered[index] ^= flip;
                let result =
                    Sealed::from_bytes(tampered).and_then(|sealed| ring.unseal(&sealed, ctx()));
                let err = result.expect_err("tampered value must not open");
                match index {
                    0 => assert_eq!(err, SecretsError::Malformed("unsupported format version")),
                    // The key id changed to one the ring does not hold.
                    1..=4 => assert!(matches!(err, SecretsError::UnknownKey(_)), "{err:?}"),
                    _ => assert_eq!(err, SecretsError::Decrypt, "byte {index}"),
                }
            }
        }
        // Truncation and extension.
        for len in 0..bytes.len() {
            let result = Sealed::from_bytes(bytes[..len].to_vec())
                .and_then(|sealed| ring.unseal(&sealed, ctx()));
            assert!(
                matches!(
                    result,
                    Err(SecretsError::Malformed(_) | SecretsError::Decrypt)
                ),
                "len {len}"
            );
        }
        let mut extended = bytes.clone();
        extended.push(0);
        let extended = Sealed::from_bytes(extended).unwrap();
        assert_eq!(
            ring.unseal(&extended, ctx()).unwrap_err(),
            SecretsError::Decrypt
        );
    }

    #[test]
    fn key_id_is_authenticated() {
        // Same key material under two ids: relabelling the value still fails.
        let mut ring = ring(1, &KEY_A);
        ring.add(KeyId::new(2), key(&KEY_A)).unwrap();
        let sealed = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        let mut relabelled = sealed.into_bytes();
        relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
        let relabelled = Sealed::from_bytes(relabelled).unwrap();
        assert_eq!(relabelled.key_id().unwrap(), KeyId::new(2));
        assert_eq!(
            ring.unseal(&relabelled, ctx()).unwrap_err(),
            SecretsError::Decrypt
        );
    }

    #[test]
    fn wrong_key_ring_fails() {
        let sealed = ring(1, &KEY_A).seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        assert_eq!(
            ring(1, &KEY_B).unseal(&sealed, ctx()).unwrap_err(),
            SecretsError::Decrypt
        );
        assert_eq!(
            ring(2, &KEY_A).unseal(&sealed, ctx()).unwrap_err(),
            SecretsError::UnknownKey(KeyId::new(1))
        );
        assert!(KeyRing::generate().unwrap().unseal(&sealed, ctx()).is_err());
    }

    #[test]
    fn moved_to_another_row_or_field_fails() {
        let ring = ring(1, &KEY_A);
        let sealed = ring
            .seal(PLAINTEXT.as_bytes(), SealContext::new("A", "X"))
            .unwrap();
        assert!(ring.unseal(&sealed, SealContext::new("A", "X")).is_ok());
        for other in [
            SealContext::new("B", "X"),
            SealContext::new("A", "Y"),
            SealContext::new("", "AX"),
            SealContext::new("AX", ""),
            SealContext::new("a", "X"),
        ] {
            assert_eq!(
                ring.unseal(&sealed, other).unwrap_err(),
                SecretsError::Decrypt,
                "{other:?}"
            );
        }
        // Unambiguous encoding: ("ab", "c") vs ("a", "bc").
        let sealed = ring.seal(b"v", SealContext::new("ab", "c")).unwrap();
        assert_eq!(
            ring.unseal(&sealed, SealContext::new("a", "bc"))
                .unwrap_err(),
            SecretsError::Decrypt
        );
        assert_ne!(
            SealContext::new("ab", "c").aad(&[1]),
            SealContext::new("a", "bc").aad(&[1])
        );
    }

    #[test]
    fn rotation() {
        let mut ring = ring(1, &KEY_A);
        let old_ring = ring.clone();
        let old = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        assert!(!ring.needs_reseal(&old));

        ring.add(KeyId::new(2), key(&KEY_B)).unwrap();
        assert_eq!(ring.primary(), KeyId::new(1));
        ring.set_primary(KeyId::new(2)).unwrap();
        assert_eq!(ring.primary(), KeyId::new(2));
        assert!(ring.needs_reseal(&old));
        // Old values still open before re-sealing.
        assert_eq!(ring.unseal_string(&old, ctx()).unwrap().expose(), PLAINTEXT);

        let new = ring.reseal(&old, ctx()).unwrap();
        assert_eq!(new.key_id().unwrap(), KeyId::new(2));
        assert!(!ring.needs_reseal(&new));
        // Re-sealing under the primary still uses a fresh nonce.
        assert_ne!(ring.reseal(&new, ctx()).unwrap(), new);

        ring.remove(KeyId::new(1)).unwrap();
        assert_eq!(ring.key_ids(), vec![KeyId::new(2)]);
        assert_eq!(ring.unseal_string(&new, ctx()).unwrap().expose(), PLAINTEXT);
        assert_eq!(
            ring.unseal(&old, ctx()).unwrap_err(),
            SecretsError::UnknownKey(KeyId::new(1))
        );

        // The clone taken before the rotation is unaffected and lacks key 2.
        assert_eq!(old_ring.key_ids(), vec![KeyId::new(1)]);
        assert_eq!(
            old_ring.unseal(&new, ctx()).unwrap_err(),
            SecretsError::UnknownKey(KeyId::new(2))
        );
    }

    #[test]
    fn key_ring_management_errors() {
        let mut ring = ring(1, &KEY_A);
        assert_eq!(
            ring.add(KeyId::new(1), key(&KEY_B)).unwrap_err(),
            SecretsError::DuplicateKey(KeyId::new(1))
        );
        assert_eq!(
            ring.set_primary(KeyId::new(9)).unwrap_err(),
            SecretsError::UnknownKey(KeyId::new(9))
        );
        assert_eq!(
            ring.remove(KeyId::new(1)).unwrap_err(),
            SecretsError::PrimaryKeyInUse(KeyId::new(1))
        );
        assert_eq!(
            ring.remove(KeyId::new(9)).unwrap_err(),
            SecretsError::UnknownKey(KeyId::new(9))
        );
        ring.add(KeyId::new(7), key(&KEY_B)).unwrap();
        ring.add(KeyId::new(3), key(&KEY_B)).unwrap();
        assert_eq!(
            ring.key_ids(),
            vec![KeyId::new(1), KeyId::new(3), KeyId::new(7)]
        );
        assert!(ring.contains(KeyId::new(3)));
        assert!(!ring.contains(KeyId::new(4)));
        assert_eq!(KeyRing::generate().unwrap().key_ids(), vec![KeyId::new(1)]);
    }

    #[test]
    fn seals_are_randomized() {
        let ring = ring(1, &KEY_A);
        let first = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        let second = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        assert_ne!(first, second);
        assert_ne!(
            first.as_bytes()[PREFIX_LEN..HEADER_LEN],
            second.as_bytes()[PREFIX_LEN..HEADER_LEN]
        );
    }

    #[test]
    fn debug_output_is_redacted() {
        let key_hex: String = KEY_A.iter().map(|b| format!("{b:02x}")).collect();
        let forbidden = [
            PLAINTEXT.to_owned(),
            b64(&KEY_A),
            key_hex,
            "65, 65, 65".to_owned(),
            "AAAA".to_owned(), // 'A' bytes as chars
        ];
        let ring = ring(1, &KEY_A);
        let sealed = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        let secret = ring.unseal_string(&sealed, ctx()).unwrap();
        let bytes = ring.unseal(&sealed, ctx()).unwrap();
        let outputs = [
            format!("{ring:?}"),
            format!("{ring:#?}"),
            format!("{:?}", key(&KEY_A)),
            format!("{sealed:?}"),
            format!("{secret:?}"),
            format!("{secret}"),
            format!("{bytes:?}"),
            format!("{bytes}"),
            format!("{:?}", key(&KEY_A).to_base64()),
        ];
        for output in &outputs {
            for needle in &forbidden {
                assert!(!output.contains(needle.as_str()), "{output} leaks {needle}");
            }
        }
        assert_eq!(outputs[0], "KeyRing { primary: k1, keys: [k1] }");
        assert_eq!(outputs[2], "EncryptionKey([redacted])");
        assert_eq!(
            outputs[3],
            format!(
                "Sealed {{ key: k1, len: {} }}",
                SEALED_OVERHEAD + PLAINTEXT.len()
            )
        );
        assert_eq!(outputs[4], "[redacted]");
        assert_eq!(outputs[5], "[redacted]");
        assert_eq!(outputs[6], "[redacted]");
        assert_eq!(outputs[7], "[redacted]");
        assert_eq!(format!("{}", KeyId::new(12)), "k12");
        assert_eq!(format!("{:?}", KeyId::new(12)), "k12");
    }

    #[test]
    fn errors_never_echo_key_material() {
        let secretish = "c2VjcmV0LWtleS1tYXRlcmlhbA==";
        let err = EncryptionKey::from_base64(secretish).unwrap_err();
        assert!(matches!(err, SecretsError::InvalidKey(_)));
        assert!(!err.to_string().contains(secretish));
        let err = EncryptionKey::from_base64("zz!!zz").unwrap_err();
        assert!(!err.to_string().contains("zz!!zz"));
        let err = KeyRing::from_env_string(&format!("1:{secretish}")).unwrap_err();
        assert!(!err.to_string().contains(secretish), "{err}");
        assert!(err.to_string().contains("k1"), "{err}");
        for err in [
            SecretsError::Decrypt,
            SecretsError::NotUtf8,
            SecretsError::Rng,
            SecretsError::Malformed("too short"),
        ] {
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn encryption_key_constructors() {
        assert!(EncryptionKey::from_bytes(&[0; 31]).is_err());
        assert!(EncryptionKey::from_bytes(&[0; 33]).is_err());
        assert!(EncryptionKey::from_bytes(&[]).is_err());
        assert!(EncryptionKey::from_base64(&b64(&[0; 31])).is_err());
        assert!(EncryptionKey::from_base64(&b64(&KEY_A).replace('=', "")).is_err());

        let encoded = b64(&KEY_A);
        let from_b64 = EncryptionKey::from_base64(&format!(" {encoded}\n")).unwrap();
        assert_eq!(from_b64.to_base64().expose(), encoded);

        // Keys from different constructors interoperate.
        let sealed = KeyRing::new(KeyId::new(1), from_b64)
            .seal(b"x", ctx())
            .unwrap();
        assert_eq!(
            ring(1, &KEY_A).unseal(&sealed, ctx()).unwrap().expose(),
            b"x"
        );

        let generated = EncryptionKey::generate().unwrap();
        let again = EncryptionKey::from_base64(generated.to_base64().expose()).unwrap();
        assert_eq!(generated.to_base64(), again.to_base64());
        assert_ne!(
            generated.to_base64(),
            EncryptionKey::generate().unwrap().to_base64()
        );
    }

    #[test]
    fn env_string_last_entry_is_primary() {
        let spec = format!(" 1:{} , 2:{}\n", b64(&KEY_A), b64(&KEY_B));
        let ring = KeyRing::from_env_string(&spec).unwrap();
        assert_eq!(ring.primary(), KeyId::new(2));
        assert_eq!(ring.key_ids(), vec![KeyId::new(1), KeyId::new(2)]);
        let sealed = ring.seal(b"x", ctx()).unwrap();
        assert_eq!(sealed.key_id().unwrap(), KeyId::new(2));
        assert_eq!(
            self::ring(2, &KEY_B)
                .unseal(&sealed, ctx())
                .unwrap()
                .expose(),
            b"x"
        );

        let reversed =
            KeyRing::from_env_string(&format!("2:{},1:{}", b64(&KEY_B), b64(&KEY_A))).unwrap();
        assert_eq!(reversed.primary(), KeyId::new(1));

        let single = KeyRing::from_env_string(&format!("42:{}", b64(&KEY_A))).unwrap();
        assert_eq!(single.primary(), KeyId::new(42));
    }

    #[test]
    fn env_string_errors() {
        let a = b64(&KEY_A);
        for bad in [
            String::new(),
            "  ".to_owned(),
            a.clone(),
            format!("x:{a}"),
            format!("-1:{a}"),
            format!("1:{a},"),
            format!("1:{a},,2:{a}"),
            "1:not-base64".to_owned(),
            format!("1:{}", b64(&[0; 16])),
        ] {
            let err = KeyRing::from_env_string(&bad).unwrap_err();
            assert!(
                matches!(err, SecretsError::InvalidKey(_)),
                "{bad:?}: {err:?}"
            );
            assert!(!err.to_string().contains(&a), "{err}");
        }
        assert_eq!(
            KeyRing::from_env_string(&format!("1:{a},1:{a}")).unwrap_err(),
            SecretsError::DuplicateKey(KeyId::new(1))
        );
    }

    #[test]
    fn sealed_serde_round_trip() {
        let ring = ring(1, &KEY_A);
        let sealed = ring.seal(PLAINTEXT.as_bytes(), ctx()).unwrap();
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(json, format!("\"{}\"", sealed.to_base64()));
        assert!(!json.contains(PLAINTEXT));
        let back: Sealed = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(
            ring.unseal_string(&back, ctx()).unwrap().expose(),
            PLAINTEXT
        );

        #[derive(serde::Serialize, serde::Deserialize)]
        struct Row {
            value: Sealed,
        }
        let row: Row = serde_json::from_str(&format!("{{\"value\":{json}}}")).unwrap();
        assert_eq!(row.value, sealed);
        assert!(
            serde_json::to_string(&row)
                .unwrap()
                .contains(&sealed.to_base64())
        );

        assert!(serde_json::from_str::<Sealed>("\"not base64!\"").is_err());
        assert!(serde_json::from_str::<Sealed>("\"AQAAAAE=\"").is_err());
        assert!(serde_json::from_str::<Sealed>("42").is_err());
        assert_eq!(sealed.to_base64().parse::<Sealed>().unwrap(), sealed);
    }

    #[test]
    fn sealed_from_bytes_validation() {
        assert_eq!(
            Sealed::from_bytes(vec![]).unwrap_err(),
            SecretsError::Malformed("too short")
        );
        assert_eq!(
            Sealed::from_bytes(vec![1; SEALED_OVERHEAD - 1]).unwrap_err(),
            SecretsError::Malformed("too short")
        );
        assert_eq!(
            Sealed::from_bytes(vec![2; SEALED_OVERHEAD]).unwrap_err(),
            SecretsError::Malformed("unsupported format version")
        );
        let minimal = Sealed::from_bytes(vec![1; SEALED_OVERHEAD]).unwrap();
        assert_eq!(minimal.key_id().unwrap(), KeyId::new(0x0101_0101));
        assert!(Sealed::from_base64("").is_err());
        assert!(Sealed::from_base64("====").is_err());
    }

    #[test]
    fn secret_wrappers() {
        let a = SecretString::from("abc");
        let b = SecretString::new("abc".to_owned());
        let c = SecretString::from(String::from("abd"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, SecretString::from("abcd"));
        assert_eq!(a.clone().expose(), "abc");
        assert_eq!(mask(&a), MASK);
        assert_eq!(mask(&SecretString::from("")), mask(&c));

        let x = SecretBytes::from(&b"\x00\x01"[..]);
        assert_eq!(x, SecretBytes::new(vec![0, 1]));
        assert_ne!(x, SecretBytes::from(vec![0, 2]));
        assert_eq!(x.expose(), &[0, 1]);

        let parsed: SecretString = serde_json::from_str("\"from-config\"").unwrap();
        assert_eq!(parsed.expose(), "from-config");
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
            owner in ".{0,24}",
            name in ".{0,24}",
        ) {
            let ring = ring(7, &KEY_A);
            let ctx = SealContext::new(&owner, &name);
            let sealed = ring.seal(&plaintext, ctx).unwrap();
            prop_assert_eq!(sealed.as_bytes().len(), SEALED_OVERHEAD + plaintext.len());
            let decoded = Sealed::from_base64(&sealed.to_base64()).unwrap();
            let opened = ring.unseal(&decoded, ctx).unwrap();
            prop_assert_eq!(opened.expose(), &plaintext[..]);
        }

        #[test]
        fn prop_string_round_trip(text in ".{0,256}") {
            let ring = ring(1, &KEY_B);
            let sealed = ring.seal(text.as_bytes(), ctx()).unwrap();
            let opened = ring.unseal_string(&sealed, ctx()).unwrap();
            prop_assert_eq!(opened.expose(), text.as_str());
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic_or_open(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
            force_header in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if force_header && bytes.len() >= PREFIX_LEN {
                // Make the value reach the decryption step.
                bytes[..PREFIX_LEN].copy_from_slice(&[FORMAT_VERSION, 0, 0, 0, 1]);
            }
            let ring = ring(1, &KEY_A);
            let encoded = b64(&bytes);
            if let Ok(sealed) = Sealed::from_bytes(bytes) {
                let _ = format!("{sealed:?}");
                prop_assert!(ring.unseal(&sealed, ctx()).is_err());
                prop_assert!(ring.reseal(&sealed, ctx()).is_err());
                let _ = ring.needs_reseal(&sealed);
                let reparsed = Sealed::from_base64(&encoded).unwrap();
                prop_assert_eq!(reparsed, sealed);
            } else {
                prop_assert!(Sealed::from_base64(&encoded).is_err());
            }
        }

        #[test]
        fn prop_arbitrary_text_never_panics(text in "\\PC{0,96}") {
            let ring = ring(1, &KEY_A);
            if let Ok(sealed) = Sealed::from_base64(&text) {
                prop_assert!(ring.unseal_string(&sealed, ctx()).is_err());
            }
            let _ = serde_json::from_value::<Sealed>(serde_json::Value::String(text.clone()));
            let _ = EncryptionKey::from_base64(&text);
            let _ = KeyRing::from_env_string(&text);
        }

        #[test]
        fn prop_single_mutation_never_opens(
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
            position in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let ring = ring(1, &KEY_A);
            let sealed = ring.seal(&plaintext, ctx()).unwrap();
            let mut bytes = sealed.into_bytes();
            let index = position.index(bytes.len());
            bytes[index] ^= flip;
            let result = Sealed::from_bytes(bytes).and_then(|s| ring.unseal(&s, ctx()));
            prop_assert!(result.is_err());
        }
    }
}
