//! E.164 phone numbers: a strict parser and a lenient normaliser.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an E.164 number looks like, quoted in every phone error.
pub const E164_HINT: &str = "expected E.164: '+', the country calling code and the number, 7 to 15 digits in all, e.g. +15551234567";

/// Errors of parsing or normalising a phone number. Every message shows the expected format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// The input is empty (or only formatting characters).
    #[error("the phone number is empty; {E164_HINT}")]
    Empty,
    /// Strict E.164 starts with `+`.
    #[error("the phone number must start with '+'; {E164_HINT}")]
    MissingPlus,
    /// A character other than an ASCII digit after the `+` (strict), or other than a digit
    /// or the accepted formatting characters (lenient).
    #[error("the phone number contains {found:?}, which is not allowed; {E164_HINT}")]
    InvalidCharacter {
        /// The offending character.
        found: char,
    },
    /// Fewer than 7 digits.
    #[error("the phone number has {digits} digits, fewer than 7; {E164_HINT}")]
    TooShort {
        /// How many digits it has.
        digits: usize,
    },
    /// More than 15 digits.
    #[error("the phone number has {digits} digits, more than 15; {E164_HINT}")]
    TooLong {
        /// How many digits it has.
        digits: usize,
    },
    /// The country calling code cannot start with 0.
    #[error("the country calling code cannot start with 0; {E164_HINT}")]
    LeadingZero,
    /// A national number (no `+` or `00`) and no default country code is configured.
    #[error(
        "the phone number has no country calling code and no default country is configured; {E164_HINT}"
    )]
    NoCountryCode,
    /// A default country code that is not 1 to 3 digits, the first not 0.
    #[error(
        "invalid country calling code {0:?}: expected 1 to 3 digits, the first not 0 (e.g. 1, 44)"
    )]
    InvalidCountryCode(String),
}

/// A phone number in strict E.164: `+`, then 7 to 15 ASCII digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses strict E.164: no spaces, no formatting, no Unicode digits, no extension.
    ///
    /// ```
    /// use atllas_webhooks::validate::PhoneNumber;
    /// assert_eq!(PhoneNumber::parse("+15551234567").unwrap().as_str(), "+15551234567");
    /// assert!(PhoneNumber::parse("+1 555 123 4567").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let digits = match input.strip_prefix('+') {
            Some(d) => d,
            None if input.is_empty() => return Err(PhoneError::Empty),
            None => return Err(PhoneError::MissingPlus),
        };
        check_digits(digits)?;
        Ok(PhoneNumber(input.to_owned()))
    }

    /// Normalises a number as people write it: strips spaces, `-`, `.`, `(` and `)`, reads a
    /// leading `00` as `+`, and, only when `default_country` is given, reads a number without
    /// `+` or `00` as national: one leading trunk `0` is dropped and the country code is put
    /// in front (for country code 1, eleven digits starting with 1 already include it). The
    /// result must then be strict E.164.
    ///
    /// ```
    /// use atllas_webhooks::validate::{CountryCode, PhoneNumber};
    /// let uk = CountryCode::parse("44").unwrap();
    /// assert_eq!(PhoneNumber::normalize("(0)20 7946-0958", Some(uk)).unwrap().as_str(), "+442079460958");
    /// assert_eq!(PhoneNumber::normalize("0044 20 7946 0958", None).unwrap().as_str(), "+442079460958");
    /// assert!(PhoneNumber::normalize("020 7946 0958", None).is_err());
    /// ```
    pub fn normalize(
        input: &str,
        default_country: Option<CountryCode>,
    ) -> Result<Self, PhoneError> {
        // Fast path: already strict E.164.
        if let Ok(p) = Self::parse(input) {
            return Ok(p);
        }
        let trimmed = input.trim();
        let mut plus = false;
        let mut digits = String::with_capacity(16);
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                '+' if i == 0 => plus = true,
                other => return Err(PhoneError::InvalidCharacter { found: other }),
            }
            if digits.len() > 20 {
                return Err(PhoneError::TooLong {
                    digits: digits.len(),
                });
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        let international = if plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_owned()
        } else {
            let cc = default_country.ok_or(PhoneError::NoCountryCode)?;
            let cc_str = cc.0.to_string();
            if cc.0 == 1 && digits.len() == 11 && digits.starts_with('1') {
                digits
            } else {
                let national = digits.strip_prefix('0').unwrap_or(&digits);
                format!("{cc_str}{national}")
            }
        };
        check_digits(&international)?;
        Ok(PhoneNumber(format!("+{international}")))
    }

    /// [`normalize`](Self::normalize) of an owned string: a number that is already strict
    /// E.164 (the usual case) is kept without copying it.
    pub(crate) fn normalize_owned(
        input: String,
        default_country: Option<CountryCode>,
    ) -> Result<Self, PhoneError> {
        match input.strip_prefix('+') {
            Some(digits) if check_digits(digits).is_ok() => Ok(PhoneNumber(input)),
            _ => Self::normalize(&input, default_country),
        }
    }

    /// A number that came out of [`normalize`](Self::normalize) before, as it is.
    pub(crate) fn normalized(e164: String) -> Self {
        PhoneNumber(e164)
    }

    /// The number, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Takes the string out.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn check_digits(digits: &str) -> Result<(), PhoneError> {
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(PhoneError::InvalidCharacter { found: bad });
    }
    let n = digits.len();
    if n == 0 {
        return Err(PhoneError::Empty);
    }
    if digits.starts_with('0') {
        return Err(PhoneError::LeadingZero);
    }
    if n < 7 {
        return Err(PhoneError::TooShort { digits: n });
    }
    if n > 15 {
        return Err(PhoneError::TooLong { digits: n });
    }
    Ok(())
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    /// Strict E.164.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PhoneNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A country calling code (1 to 3 digits, the first not 0), used to read national numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode(u16);

impl CountryCode {
    /// Parses `1`, `44`, `+44`.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let s = input.trim();
        let s = s.strip_prefix('+').unwrap_or(s);
        let ok = (1..=3).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        match s.parse::<u16>() {
            Ok(n) if ok => Ok(CountryCode(n)),
            _ => Err(PhoneError::InvalidCountryCode(
                input.chars().take(16).collect(),
            )),
        }
    }

    /// The code as a number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl std::str::FromStr for CountryCode {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
