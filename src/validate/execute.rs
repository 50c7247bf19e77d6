//! One-pass parsing and validation of a `calls.execute` body, with the ignored keys.

use std::fmt;

use super::json::{Reader, Scalar, SyntaxError};
use super::phone::{CountryCode, E164_HINT, PhoneError, PhoneNumber};
use crate::model::{CallsExecute, Contact};

/// Longest key kept verbatim in an [`IgnoredKey`]; longer ones are cut (the request log stays
/// bounded whatever a client sends).
pub const MAX_KEY_LEN: usize = 128;

/// A key that was ignored because it is not one of the documented camelCase names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredKey {
    /// Where it was: `data.first_name`, or a top-level key such as `phoneNumber`.
    pub path: String,
    /// The documented key it probably meant, as a path (`data.firstName`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

impl fmt::Display for IgnoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.suggestion {
            Some(s) => write!(f, "{} (did you mean {s}?)", self.path),
            None => write!(f, "{}", self.path),
        }
    }
}

/// The camelCase `data` key that `key` probably meant: `first_name` → `firstName`,
/// `company` → `companyName`, `Phone` → `phoneNumber`. `None` for a documented key itself
/// and for keys that resemble none.
pub fn suggest_data_key(key: &str) -> Option<&'static str> {
    if key.len() > 64 || Contact::FIELDS.contains(&key) {
        return None;
    }
    let norm: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match norm.as_str() {
        "phonenumber" | "phone" | "phoneno" | "mobile" | "mobilenumber" | "mobilephone" | "tel"
        | "telephone" | "cell" | "cellphone" | "number" => "phoneNumber",
        "firstname" | "first" | "givenname" | "fname" | "forename" => "firstName",
        "lastname" | "last" | "surname" | "familyname" | "lname" => "lastName",
        "email" | "emailaddress" | "mail" => "email",
        "companyname" | "company" | "organization" | "organisation" | "org" | "business" => {
            "companyName"
        }
        "note" | "notes" | "comment" | "comments" | "context" => "note",
        "address1" | "address" | "addressline1" | "street" | "streetaddress" | "line1" => {
            "address1"
        }
        "address2" | "addressline2" | "line2" => "address2",
        "city" | "town" => "city",
        "state" | "province" | "region" => "state",
        "zipcode" | "zip" | "postalcode" | "postcode" | "postal" => "zipCode",
        _ => return None,
    })
}

/// Lists every key of a `calls.execute` JSON value that parsing ignores, with suggestions.
/// The same list [`parse_calls_execute`] returns, for a body already parsed as a `Value`.
pub fn ignored_keys(body: &serde_json::Value) -> Vec<IgnoredKey> {
    let mut out = Vec::new();
    let Some(obj) = body.as_object() else {
        return out;
    };
    for (key, value) in obj {
        match key.as_str() {
            "type" => {}
            "data" => {
                if let Some(data) = value.as_object() {
                    for k in data.keys() {
                        if !Contact::FIELDS.contains(&k.as_str()) {
                            out.push(ignored_data_key(k));
                        }
                    }
                }
            }
            other => out.push(ignored_top_key(other)),
        }
    }
    out
}

fn cut(key: &str) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key.to_owned();
    }
    let mut end = MAX_KEY_LEN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}

fn ignored_data_key(key: &str) -> IgnoredKey {
    IgnoredKey {
        path: format!("data.{}", cut(key)),
        suggestion: suggest_data_key(key).map(|s| format!("data.{s}")),
    }
}

fn ignored_top_key(key: &str) -> IgnoredKey {
    let suggestion = if key.eq_ignore_ascii_case("type") {
        Some("type".to_owned())
    } else if key.eq_ignore_ascii_case("data") {
        Some("data".to_owned())
    } else if Contact::FIELDS.contains(&key) {
        Some(format!("data.{key}"))
    } else {
        suggest_data_key(key).map(|s| format!("data.{s}"))
    };
    IgnoredKey {
        path: cut(key),
        suggestion,
    }
}

/// Why a `calls.execute` body was refused. Each variant has a stable [`code`](Self::code)
/// and the HTTP status the inbound path answers with ([`http_status`](Self::http_status)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError {
    /// Not JSON (or trailing bytes after it, or nested too deep). 400 `malformed_json`.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON, but not an object. 400 `body_not_object`.
    #[error("the body must be a JSON object with \"type\" and \"data\"")]
    NotAnObject,
    /// A key appears twice in one object. 400 `duplicate_key`.
    #[error("the key {0:?} appears more than once")]
    DuplicateKey(String),
    /// No `type`. 400 `missing_type`.
    #[error("\"type\" is required and must be \"calls.execute\"")]
    MissingType,
    /// `type` is not `"calls.execute"`. 400 `invalid_type`.
    #[error("\"type\" must be \"calls.execute\", got {0}")]
    WrongType(String),
    /// No `data`. 400 `missing_data`.
    #[error("\"data\" is required: an object with at least \"phoneNumber\"")]
    MissingData,
    /// `data` is not an object. 400 `invalid_data`.
    #[error("\"data\" must be an object, got {0}")]
    DataNotObject(&'static str),
    /// No `data.phoneNumber`. 422 `missing_phone_number`.
    #[error("{}", missing_phone_message(.sent_instead.as_deref()))]
    MissingPhoneNumber {
        /// The ignored key that looks like a phone number (e.g. `phone_number`), if any.
        sent_instead: Option<String>,
    },
    /// `data.phoneNumber` cannot be normalised to E.164. 422 `invalid_phone_number`.
    #[error("data.phoneNumber is invalid: {0}")]
    InvalidPhoneNumber(PhoneError),
    /// A field longer than its limit ([`max_field_len`]). 422 `field_too_long`.
    #[error("data.{field} is {len} bytes long, over its {max}-byte limit")]
    FieldTooLong {
        /// The camelCase field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A documented field with a JSON type other than string (or null). 422
    /// `invalid_field_type`.
    #[error("data.{field} must be a string, got {found}")]
    WrongFieldType {
        /// The camelCase field.
        field: &'static str,
        /// The JSON type that was sent.
        found: &'static str,
    },
}

fn missing_phone_message(sent_instead: Option<&str>) -> String {
    match sent_instead {
        Some(k) => format!(
            "data.phoneNumber is required; {k:?} was sent instead and ignored: field names are camelCase, use \"phoneNumber\" ({E164_HINT})"
        ),
        None => format!("data.phoneNumber is required ({E164_HINT})"),
    }
}

impl ExecuteError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ExecuteError::MalformedJson(_) => "malformed_json",
            ExecuteError::NotAnObject => "body_not_object",
            ExecuteError::DuplicateKey(_) => "duplicate_key",
            ExecuteError::MissingType => "missing_type",
            ExecuteError::WrongType(_) => "invalid_type",
            ExecuteError::MissingData => "missing_data",
            ExecuteError::DataNotObject(_) => "invalid_data",
            ExecuteError::MissingPhoneNumber { .. } => "missing_phone_number",
            ExecuteError::InvalidPhoneNumber(_) => "invalid_phone_number",
            ExecuteError::WrongFieldType { .. } => "invalid_field_type",
            ExecuteError::FieldTooLong { .. } => "field_too_long",
        }
    }

    /// 400 for a body that is not a `calls.execute` at all, 422 for one whose `data` is
    /// unusable.
    pub fn http_status(&self) -> u16 {
        match self {
            ExecuteError::MissingPhoneNumber { .. }
            | ExecuteError::InvalidPhoneNumber(_)
            | ExecuteError::WrongFieldType { .. }
            | ExecuteError::FieldTooLong { .. } => 422,
            _ => 400,
        }
    }

    /// The JSON path the error is about, if one.
    pub fn field(&self) -> Option<String> {
        match self {
            ExecuteError::MissingType | ExecuteError::WrongType(_) => Some("type".into()),
            ExecuteError::MissingData | ExecuteError::DataNotObject(_) => Some("data".into()),
            ExecuteError::MissingPhoneNumber { .. } | ExecuteError::InvalidPhoneNumber(_) => {
                Some("data.phoneNumber".into())
            }
            ExecuteError::WrongFieldType { field, .. }
            | ExecuteError::FieldTooLong { field, .. } => Some(format!("data.{field}")),
            ExecuteError::DuplicateKey(k) => Some(k.clone()),
            _ => None,
        }
    }
}

/// The longest value accepted for a `data` field, in bytes: 64 for `phoneNumber`, 4096 for
/// `note`, 1024 for the others.
pub fn max_field_len(field: &str) -> usize {
    match field {
        "phoneNumber" => 64,
        "note" => 4096,
        _ => 1024,
    }
}

/// How to read phone numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Country calling code for national numbers; `None` refuses them.
    pub default_country: Option<CountryCode>,
}

/// A valid `calls.execute`, its normalised phone number and the keys that were ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedExecute {
    /// The request; `data.phoneNumber` holds the normalised E.164 number.
    pub request: CallsExecute,
    /// The normalised number.
    pub phone: PhoneNumber,
    /// Keys that were ignored, in the order they appeared.
    pub ignored: Vec<IgnoredKey>,
}

/// Parses and validates a `calls.execute` body in one pass over the bytes.
///
/// camelCase only: a key that is not one of the documented names is skipped without being
/// read into memory and listed in [`ParsedExecute::ignored`] with its suggestion; `null`
/// counts as absent; a documented field that holds a number, boolean, array or object is
/// [`ExecuteError::WrongFieldType`]. The phone number is normalised with
/// [`PhoneNumber::normalize`].
///
/// ```
/// use atllas_webhooks::validate::{parse_calls_execute, ParseOptions};
/// let body = br#"{"type":"calls.execute","data":{"phoneNumber":"+1 555 123 4567","first_name":"Jane"}}"#;
/// let parsed = parse_calls_execute(body, &ParseOptions::default()).unwrap();
/// assert_eq!(parsed.phone.as_str(), "+15551234567");
/// assert_eq!(parsed.request.data.first_name, None);
/// assert_eq!(parsed.ignored[0].to_string(), "data.first_name (did you mean data.firstName?)");
/// ```
pub fn parse_calls_execute(
    body: &[u8],
    options: &ParseOptions,
) -> Result<ParsedExecute, ExecuteError> {
    parse_calls_execute_logged(body, options).map_err(|r| r.error)
}

/// A refused `calls.execute`: the error and the keys ignored before it was found (for the
/// request log, without parsing the body a second time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Why it was refused.
    pub error: ExecuteError,
    /// Keys ignored up to the point of the error.
    pub ignored: Vec<IgnoredKey>,
}

/// [`parse_calls_execute`], keeping the ignored keys when the body is refused.
pub fn parse_calls_execute_logged(
    body: &[u8],
    options: &ParseOptions,
) -> Result<ParsedExecute, Rejected> {
    let (request, ignored) = read_calls_execute(body, options)?;
    let phone = PhoneNumber::normalized(request.data.phone_number.clone());
    Ok(ParsedExecute {
        request,
        phone,
        ignored,
    })
}

/// [`parse_calls_execute_logged`] without the separate copy of the phone number, for the
/// inbound handler (the number is in the contact).
pub(crate) fn read_calls_execute(
    body: &[u8],
    options: &ParseOptions,
) -> Result<(CallsExecute, Vec<IgnoredKey>), Rejected> {
    let mut state = State::default();
    match parse_into(body, options, &mut state) {
        Ok(request) => Ok((request, state.ignored)),
        Err(error) => Err(Rejected {
            error,
            ignored: state.ignored,
        }),
    }
}

fn parse_into(
    body: &[u8],
    options: &ParseOptions,
    state: &mut State,
) -> Result<CallsExecute, ExecuteError> {
    // JSON text is UTF-8 (RFC 8259 §8.1): check the whole body once; the reader then works
    // on text and never checks a string again.
    let text = std::str::from_utf8(body).map_err(|e| {
        ExecuteError::MalformedJson(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut reader = Reader::new(text);
    let top = read_top(&mut reader, state).and_then(|top| {
        reader.end()?;
        Ok(top)
    });
    let Top { type_seen, data } = match top {
        Ok(Some(top)) => top,
        Ok(None) => return Err(ExecuteError::NotAnObject),
        Err(Stop::Syntax(e)) => return Err(ExecuteError::MalformedJson(e.to_string())),
        Err(Stop::Refused(e)) => return Err(e),
    };
    match type_seen {
        None => return Err(ExecuteError::MissingType),
        Some(Err(found)) => return Err(ExecuteError::WrongType(found)),
        Some(Ok(())) => {}
    }
    match data {
        None => return Err(ExecuteError::MissingData),
        Some(Err(kind)) => return Err(ExecuteError::DataNotObject(kind)),
        Some(Ok(())) => {}
    }
    let Some(raw) = state.phone.take() else {
        let sent_instead = state
            .ignored
            .iter()
            .find(|k| k.suggestion.as_deref() == Some("data.phoneNumber"))
            .map(|k| k.path.trim_start_matches("data.").to_owned());
        return Err(ExecuteError::MissingPhoneNumber { sent_instead });
    };
    let phone = PhoneNumber::normalize_owned(raw, options.default_country)
        .map_err(ExecuteError::InvalidPhoneNumber)?;
    let mut contact = std::mem::take(&mut state.contact);
    contact.phone_number = phone.into_string();
    Ok(CallsExecute::new(contact))
}

#[derive(Default)]
struct State {
    /// The documented fields of `data` but the phone number, filled in place.
    contact: Contact,
    /// `data.phoneNumber` as sent.
    phone: Option<String>,
    ignored: Vec<IgnoredKey>,
}

/// What ends reading early: text that is not JSON, or JSON that is refused on the spot (a
/// repeated key, a field of the wrong type or too long) without reading further, so the
/// first problem in the body is the one reported.
enum Stop {
    Syntax(SyntaxError),
    Refused(ExecuteError),
}

impl From<SyntaxError> for Stop {
    fn from(e: SyntaxError) -> Self {
        Stop::Syntax(e)
    }
}

/// The top level as read: `type` and `data` as found.
struct Top {
    /// `Some(Ok)` for `"calls.execute"`, `Some(Err(what))` for anything else.
    type_seen: Option<Result<(), String>>,
    /// `Some(Ok(()))` for an object (its fields are in the [`State`]); `Some(Err(json
    /// type))` otherwise.
    data: Option<Result<(), &'static str>>,
}

/// The body's value: `Some(Top)` for an object, `None` (read past) for any other value.
fn read_top(r: &mut Reader<'_>, state: &mut State) -> Result<Option<Top>, Stop> {
    if !r.begin_object()? {
        r.skip()?;
        return Ok(None);
    }
    let mut top = Top {
        type_seen: None,
        data: None,
    };
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        match &*key {
            "type" => {
                if top.type_seen.is_some() {
                    return Err(Stop::Refused(ExecuteError::DuplicateKey("type".into())));
                }
                top.type_seen = Some(match r.scalar()? {
                    Scalar::Str(s) if s == CallsExecute::TYPE => Ok(()),
                    Scalar::Str(s) => Err(format!("{:?}", cut(&s))),
                    Scalar::Null => Err("null".into()),
                    Scalar::Other(kind) => Err(format!("a {kind}")),
                });
            }
            "data" => {
                if top.data.is_some() {
                    return Err(Stop::Refused(ExecuteError::DuplicateKey("data".into())));
                }
                top.data = Some(read_data(r, state)?);
            }
            other => {
                state.ignored.push(ignored_top_key(other));
                r.skip()?;
            }
        }
    }
    Ok(Some(top))
}

/// `data`: its documented fields into the [`State`], or the JSON type it has instead of
/// being an object.
fn read_data(r: &mut Reader<'_>, state: &mut State) -> Result<Result<(), &'static str>, Stop> {
    if !r.begin_object()? {
        return Ok(Err(r.skip()?));
    }
    let mut seen: u16 = 0;
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        let Some(idx) = field_index(&key) else {
            state.ignored.push(ignored_data_key(&key));
            r.skip()?;
            continue;
        };
        let field = Contact::FIELDS[idx];
        if seen & (1 << idx) != 0 {
            return Err(Stop::Refused(ExecuteError::DuplicateKey(format!(
                "data.{field}"
            ))));
        }
        seen |= 1 << idx;
        let value = match r.scalar()? {
            Scalar::Str(s) if s.len() > max_field_len(field) => {
                let (len, max) = (s.len(), max_field_len(field));
                return Err(Stop::Refused(ExecuteError::FieldTooLong {
                    field,
                    len,
                    max,
                }));
            }
            Scalar::Str(s) => Some(s.into_owned()),
            Scalar::Null => None,
            Scalar::Other(found) => {
                return Err(Stop::Refused(ExecuteError::WrongFieldType { field, found }));
            }
        };
        *field_slot(state, idx) = value;
    }
    Ok(Ok(()))
}

/// The index of a documented field in [`Contact::FIELDS`].
fn field_index(key: &str) -> Option<usize> {
    Some(match key {
        "phoneNumber" => 0,
        "firstName" => 1,
        "lastName" => 2,
        "email" => 3,
        "companyName" => 4,
        "note" => 5,
        "address1" => 6,
        "address2" => 7,
        "city" => 8,
        "state" => 9,
        "zipCode" => 10,
        _ => return None,
    })
}

/// Where the value of `Contact::FIELDS[idx]` goes.
fn field_slot(state: &mut State, idx: usize) -> &mut Option<String> {
    match idx
        .checked_sub(1)
        .and_then(|i| state.contact.optional_mut().into_iter().nth(i))
    {
        Some(slot) => slot,
        None => &mut state.phone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_index_follows_the_documented_order() {
        for (i, f) in Contact::FIELDS.iter().enumerate() {
            assert_eq!(field_index(f), Some(i), "{f}");
        }
        assert_eq!(field_index("phone_number"), None);
    }

    #[test]
    fn every_documented_field_lands_in_its_own_slot() {
        let data: serde_json::Map<String, serde_json::Value> = Contact::FIELDS
            .iter()
            .map(|&f| {
                let v = if f == "phoneNumber" {
                    "+15551234567"
                } else {
                    f
                };
                (f.to_owned(), serde_json::Value::from(v))
            })
            .collect();
        let body = serde_json::json!({"type": "calls.execute", "data": data}).to_string();
        let parsed = parse_calls_execute(body.as_bytes(), &ParseOptions::default()).unwrap();
        let back = serde_json::to_value(&parsed.request.data).unwrap();
        for f in Contact::FIELDS {
            let want = if f == "phoneNumber" {
                "+15551234567"
            } else {
                f
            };
            assert_eq!(back[f], want, "{f}");
        }
        assert!(parsed.ignored.is_empty());
    }
}
