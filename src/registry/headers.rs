//! Custom headers: validated with the `http` crate's types, reserved names refused, values
//! kept as [`SecretString`]s until they are sealed; helpers for the documented examples.

use base64::Engine as _;
use http::{HeaderName, HeaderValue};

use super::RegistryError;
use crate::secrets::SecretString;

/// Header names a custom header may not set: the signature headers (`webhook-*`) and the
/// ones the HTTP layer owns.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
];

/// A custom header to be sealed: a valid name and a secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomHeader {
    name: HeaderName,
    value: SecretString,
}

impl std::fmt::Debug for CustomHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomHeader")
            .field("name", &self.name)
            .field("value", &self.value)
            .finish()
    }
}

impl CustomHeader {
    /// Validates a name and a value: the name is a valid HTTP header name and not reserved
    /// (see [`RESERVED_HEADERS`] and any `webhook-*`); the value is a valid header value
    /// (visible ASCII and spaces, no line breaks).
    pub fn new(name: &str, value: impl Into<SecretString>) -> Result<Self, RegistryError> {
        let value = value.into();
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            RegistryError::InvalidHeader {
                name: shown(name),
                reason: "not a valid HTTP header name".into(),
            }
        })?;
        let lower = header.as_str();
        if lower.starts_with("webhook-") || RESERVED_HEADERS.contains(&lower) {
            return Err(RegistryError::ReservedHeader(lower.to_owned()));
        }
        HeaderValue::from_str(value.expose()).map_err(|_| RegistryError::InvalidHeader {
            name: lower.to_owned(),
            reason: "the value must be visible ASCII characters and spaces, without line breaks"
                .into(),
        })?;
        Ok(CustomHeader {
            name: header,
            value,
        })
    }

    /// Parses `Name: value`.
    pub fn parse_line(line: &str) -> Result<Self, RegistryError> {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| RegistryError::InvalidHeader {
                name: shown(line.split(':').next().unwrap_or_default()),
                reason: "expected 'Name: value'".into(),
            })?;
        Self::new(name, value.trim())
    }

    /// The lowercase name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The secret value.
    pub fn value(&self) -> &SecretString {
        &self.value
    }
}

fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

/// `Authorization: Bearer <token>` (HubSpot and most APIs).
pub fn bearer(token: &str) -> Result<CustomHeader, RegistryError> {
    CustomHeader::new("authorization", format!("Bearer {token}"))
}

/// `Authorization: Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> Result<CustomHeader, RegistryError> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    CustomHeader::new("authorization", format!("Basic {encoded}"))
}

/// The three headers FollowUp Boss requires: `X-System`, `X-System-Key` and
/// `Authorization: Basic base64(api-key:)`.
pub fn follow_up_boss(
    system: &str,
    system_key: &str,
    api_key: &str,
) -> Result<Vec<CustomHeader>, RegistryError> {
    Ok(vec![
        CustomHeader::new("x-system", system)?,
        CustomHeader::new("x-system-key", system_key)?,
        basic(api_key, "")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_invalid_headers_are_refused() {
        for name in [
            "webhook-id",
            "Webhook-Signature",
            "content-type",
            "Host",
            "transfer-encoding",
            "content-length",
        ] {
            assert!(
                matches!(
                    CustomHeader::new(name, "x"),
                    Err(RegistryError::ReservedHeader(_))
                ),
                "{name}"
            );
        }
        assert!(matches!(
            CustomHeader::new("bad name", "x"),
            Err(RegistryError::InvalidHeader { .. })
        ));
        assert!(matches!(
            CustomHeader::new("x-ok", "line\nbreak"),
            Err(RegistryError::InvalidHeader { .. })
        ));
        assert!(CustomHeader::new("X-Custom", "v").is_ok());
    }

    #[test]
    fn helpers_build_the_documented_examples() {
        let b = bearer("token123").unwrap();
        assert_eq!(b.name().as_str(), "authorization");
        assert_eq!(b.value().expose(), "Bearer token123");
        let fub = follow_up_boss("atllas-integration", "sys-key", "api-key").unwrap();
        assert_eq!(fub[0].name().as_str(), "x-system");
        assert_eq!(fub[1].value().expose(), "sys-key");
        assert_eq!(fub[2].value().expose(), "Basic YXBpLWtleTo=");
        let parsed = CustomHeader::parse_line("X-System: atllas-integration").unwrap();
        assert_eq!(parsed.value().expose(), "atllas-integration");
        assert!(!format!("{parsed:?}").contains("atllas-integration"));
    }
}
