//! A small pull reader over JSON text, for the one shape the inbound path reads: an object
//! whose keys are looked at one by one, string values kept, everything else skipped.
//!
//! It reads the grammar of RFC 8259 and nothing more: strings (control characters refused,
//! every escape checked, `\u` surrogates paired), numbers by their syntax, `true`, `false`,
//! `null`, arrays and objects nested at most [`MAX_DEPTH`] deep. A string without escapes is
//! borrowed from the input; skipped values are checked but never copied.
//!
//! The input is a `&str`, so it is UTF-8 already: the reader only ever cuts it at ASCII
//! bytes, which are always character boundaries.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of arrays and objects (the outermost object counts as one): 127, what
/// serde_json's default recursion limit of 128 lets through.
pub(crate) const MAX_DEPTH: u32 = 127;

/// Why the text is not JSON, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// What was wrong.
    pub what: &'static str,
    /// Byte offset in the text.
    pub offset: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.what, self.offset)
    }
}

/// A value as the parser looks at it: a string, `null`, or the JSON type of anything else
/// (which has been read past and checked).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scalar<'a> {
    /// A string, borrowed when it has no escapes.
    Str(Cow<'a, str>),
    /// `null`.
    Null,
    /// `"boolean"`, `"number"`, `"array"` or `"object"`.
    Other(&'static str),
}

type Result<T> = std::result::Result<T, SyntaxError>;

/// Reads JSON text front to back.
pub(crate) struct Reader<'a> {
    text: &'a str,
    at: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Reader {
            text,
            at: 0,
            depth: 0,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn fail<T>(&self, what: &'static str) -> Result<T> {
        Err(SyntaxError {
            what,
            offset: self.at,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips whitespace, then takes `byte` or fails with `what`.
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<()> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            self.fail(what)
        }
    }

    fn enter(&mut self) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return self.fail("nested too deep");
        }
        self.depth += 1;
        self.at += 1;
        Ok(())
    }

    /// If the next value is an object, enters it and says `true`; otherwise reads nothing.
    pub fn begin_object(&mut self) -> Result<bool> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return Ok(false);
        }
        self.enter()?;
        Ok(true)
    }

    /// The next key of the object entered with [`begin_object`](Self::begin_object), with
    /// its `:` read; `None` (the object closed) after the last one. `first` tracks whether a
    /// comma is due.
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>> {
        self.skip_ws();
        match self.peek() {
            Some(b'}') if *first => {
                self.at += 1;
                self.depth -= 1;
                return Ok(None);
            }
            _ if *first => {}
            Some(b',') => self.at += 1,
            Some(b'}') => {
                self.at += 1;
                self.depth -= 1;
                return Ok(None);
            }
            None => return self.fail("end of input inside an object"),
            Some(_) => return self.fail("expected `,` or `}`"),
        }
        *first = false;
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return self.fail("expected a key");
        }
        let key = self.string(true)?.unwrap_or_default();
        self.expect(b':', "expected `:`")?;
        Ok(Some(key))
    }

    /// Reads the next value: a string is kept, anything else is read past and named.
    pub fn scalar(&mut self) -> Result<Scalar<'a>> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => Ok(Scalar::Str(self.string(true)?.unwrap_or_default())),
            Some(b'n') => self.literal("null").map(|()| Scalar::Null),
            _ => self.skip_any().map(Scalar::Other),
        }
    }

    /// Reads past the next value, checking it; says its JSON type.
    pub fn skip(&mut self) -> Result<&'static str> {
        self.skip_ws();
        self.skip_any()
    }

    /// After the last value: only whitespace may follow.
    pub fn end(&mut self) -> Result<()> {
        self.skip_ws();
        if self.at == self.text.len() {
            Ok(())
        } else {
            self.fail("trailing characters")
        }
    }

    /// Reads past one value starting at the cursor (whitespace already skipped).
    fn skip_any(&mut self) -> Result<&'static str> {
        match self.peek() {
            Some(b'"') => self.string(false).map(|_| "string"),
            Some(b'n') => self.literal("null").map(|()| "null"),
            Some(b't') => self.literal("true").map(|()| "boolean"),
            Some(b'f') => self.literal("false").map(|()| "boolean"),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| "number"),
            Some(b'[') => self.skip_array().map(|()| "array"),
            Some(b'{') => self.skip_object().map(|()| "object"),
            None => self.fail("end of input where a value was expected"),
            Some(_) => self.fail("expected a value"),
        }
    }

    fn skip_array(&mut self) -> Result<()> {
        self.enter()?;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip()?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                None => return self.fail("end of input inside an array"),
                Some(_) => return self.fail("expected `,` or `]`"),
            }
        }
    }

    fn skip_object(&mut self) -> Result<()> {
        self.enter()?;
        let mut first = true;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') if first => break,
                _ if first => {}
                Some(b',') => self.at += 1,
                Some(b'}') => break,
                None => return self.fail("end of input inside an object"),
                Some(_) => return self.fail("expected `,` or `}`"),
            }
            first = false;
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return self.fail("expected a key");
            }
            self.string(false)?;
            self.expect(b':', "expected `:`")?;
            self.skip()?;
        }
        self.at += 1;
        self.depth -= 1;
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Result<()> {
        if self.bytes()[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(())
        } else {
            self.fail("invalid literal")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, by its syntax only (any
    /// magnitude is a number).
    fn number(&mut self) -> Result<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    /// A string at the cursor (on its opening quote). With `keep`, its value (borrowed when
    /// it has no escapes); without, `None` after checking it.
    fn string(&mut self, keep: bool) -> Result<Option<Cow<'a, str>>> {
        self.at += 1;
        let start = self.at;
        let bytes = self.bytes();
        // The common case: no escape before the closing quote.
        let i = start + plain_run(&bytes[start..]);
        self.at = i;
        match bytes.get(i) {
            Some(b'"') => {
                self.at += 1;
                return Ok(keep.then(|| Cow::Borrowed(&self.text[start..i])));
            }
            Some(b'\\') => {}
            Some(_) => return self.fail("control character in a string"),
            None => return self.fail("end of input inside a string"),
        }
        let mut out = if keep {
            String::from(&self.text[start..i])
        } else {
            String::new()
        };
        loop {
            let b = match bytes.get(self.at) {
                Some(&b) => b,
                None => return self.fail("end of input inside a string"),
            };
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(keep.then_some(Cow::Owned(out)));
                }
                b'\\' => {
                    self.at += 1;
                    let c = self.escape()?;
                    if keep {
                        out.push(c);
                    }
                }
                0..0x20 => return self.fail("control character in a string"),
                _ => {
                    // Up to the next quote, backslash or control character, whole.
                    let run = self.at;
                    self.at += plain_run(&bytes[run..]);
                    if keep {
                        out.push_str(&self.text[run..self.at]);
                    }
                }
            }
        }
    }

    /// The character of an escape, the cursor just past its backslash.
    fn escape(&mut self) -> Result<char> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.at += 1;
                return self.unicode_escape();
            }
            _ => return self.fail("invalid escape"),
        };
        self.at += 1;
        Ok(c)
    }

    /// `XXXX` after `\u`, and the `\uXXXX` that must follow a leading surrogate.
    fn unicode_escape(&mut self) -> Result<char> {
        let first = self.hex4()?;
        let code = match first {
            0xDC00..=0xDFFF => return self.fail("lone trailing surrogate in a \\u escape"),
            0xD800..=0xDBFF => {
                if !self.bytes()[self.at..].starts_with(b"\\u") {
                    return self.fail("lone leading surrogate in a \\u escape");
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return self.fail("lone leading surrogate in a \\u escape");
                }
                0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00)
            }
            _ => u32::from(first),
        };
        match char::from_u32(code) {
            Some(c) => Ok(c),
            None => self.fail("invalid \\u escape"),
        }
    }

    fn hex4(&mut self) -> Result<u16> {
        let mut n: u16 = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return self.fail("invalid \\u escape"),
            };
            n = (n << 4) | u16::from(d);
            self.at += 1;
        }
        Ok(n)
    }
}

/// How many bytes at the start of `bytes` need no attention inside a string: up to the
/// first `"`, `\\` or control character (or the end). Eight bytes at a time.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` that is zero is set, and perhaps of bytes after the
    // first zero byte (a borrow runs upwards), never of one before it: the lowest set bit
    // is the first zero byte.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let mut n = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(word);
        let special = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if special != 0 {
            // Little-endian: the first byte is the lowest.
            return n + (special.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + bytes[n..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(bytes.len() - n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip_all(text: &str) -> Result<&'static str> {
        let mut r = Reader::new(text);
        let kind = r.skip()?;
        r.end()?;
        Ok(kind)
    }

    #[test]
    fn values_and_their_types() {
        for (text, kind) in [
            (r#""a""#, "string"),
            ("null", "null"),
            (" true ", "boolean"),
            ("false", "boolean"),
            ("-0.5e+10", "number"),
            ("0", "number"),
            ("[1, [], {}]", "array"),
            (r#"{"a": {"b": [null]}}"#, "object"),
        ] {
            assert_eq!(skip_all(text), Ok(kind), "{text}");
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        for (text, what, offset) in [
            ("", "end of input where a value was expected", 0),
            ("01", "trailing characters", 1),
            ("1.", "invalid number", 2),
            ("-", "invalid number", 1),
            ("[1,]", "expected a value", 3),
            (r#"{"a":1,}"#, "expected a key", 7),
            (r#"{"a" 1}"#, "expected `:`", 5),
            ("nul", "invalid literal", 0),
            ("\"a\u{1}\"", "control character in a string", 2),
            (r#""\x""#, "invalid escape", 2),
            (r#""\ud800""#, "lone leading surrogate in a \\u escape", 7),
            (r#""\udc00""#, "lone trailing surrogate in a \\u escape", 7),
            (r#""\u12""#, "invalid \\u escape", 5),
            ("[", "end of input where a value was expected", 1),
            ("[1", "end of input inside an array", 2),
        ] {
            assert_eq!(skip_all(text), Err(SyntaxError { what, offset }), "{text}");
        }
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let mut r = Reader::new(r#""plain""#);
        assert!(matches!(
            r.scalar(),
            Ok(Scalar::Str(Cow::Borrowed("plain")))
        ));
        let mut r = Reader::new(r#""a\"b\u00e9\ud83d\ude00\n""#);
        assert!(matches!(r.scalar(), Ok(Scalar::Str(Cow::Owned(s))) if s == "a\"bé😀\n"));
    }

    #[test]
    fn plain_runs_stop_at_the_first_special_byte() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                for at in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that are close to the special ones but are not.
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = [b'a', b'#', b'!', b' ', 0x7f, 0xc3, b']'][i % 7];
                    }
                    if at < len {
                        bytes[at] = special;
                        // A second one after it changes nothing.
                        if at + 2 < len {
                            bytes[at + 2] = special;
                        }
                    }
                    assert_eq!(plain_run(&bytes), at, "len {len} special {special} at {at}");
                }
            }
        }
    }

    #[test]
    fn nesting_stops_at_the_limit() {
        let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert_eq!(skip_all(&ok), Ok("array"));
        let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert_eq!(
            skip_all(&deep),
            Err(SyntaxError {
                what: "nested too deep",
                offset: 127
            })
        );
    }
}
