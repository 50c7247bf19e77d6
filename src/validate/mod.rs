//! Validation of inbound input: strict E.164 [`PhoneNumber`]s with a lenient normaliser,
//! and the camelCase-only `calls.execute` parser that reports every ignored key with a
//! "did you mean" suggestion for the request log.

mod execute;
mod json;
mod phone;

pub(crate) use execute::read_calls_execute;
pub use execute::{
    ExecuteError, IgnoredKey, MAX_KEY_LEN, ParseOptions, ParsedExecute, Rejected, ignored_keys,
    max_field_len, parse_calls_execute, parse_calls_execute_logged, suggest_data_key,
};
pub use phone::{CountryCode, E164_HINT, PhoneError, PhoneNumber};
