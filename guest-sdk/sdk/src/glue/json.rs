//! The little JSON the glue reads and writes itself, without serde_json's generic machinery:
//! splitting the params at their top level, reading one scalar (null, a boolean, a number, a
//! string), and writing strings and integers into an output.
//!
//! Why by hand: serde_json instantiated for a call's params and outputs brought its whole
//! deserializer, its error type (whose messages format floats and `Debug`-quote strings, pulling
//! in `core::fmt`'s float formatting and Unicode tables) and a `Value` serializer into every
//! guest, about half of a two-function module (docs/GUESTS.md, *Size*). The scans here follow
//! RFC 8259's grammar exactly for what they read. A split array or object is not checked
//! element by element here: each element is read when it is decoded (`de.rs`), which rejects a
//! malformed one.

use std::borrow::Cow;

/// Whether `b` is JSON whitespace (RFC 8259: space, tab, line feed, carriage return).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `text` without leading and trailing JSON whitespace.
pub fn trim(text: &str) -> &str {
    let bytes = text.as_bytes();
    let start = skip_ws(bytes, 0);
    let mut end = bytes.len();
    while end > start && is_ws(bytes[end - 1]) {
        end -= 1;
    }
    text.get(start..end).unwrap_or_default()
}

/// The first index at or after `i` that is not whitespace.
fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).copied().is_some_and(is_ws) {
        i += 1;
    }
    i
}

/// Where the JSON value starting at `i` ends, following only strings and nesting (the value
/// itself is checked when it is decoded): at the first top-level `,`, `]` or `}`. `None` when
/// the text ends first.
fn value_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        match *bytes.get(i)? {
            b'"' => i = string_end(bytes, i + 1)?,
            b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            b']' | b'}' | b',' if depth == 0 => return Some(i),
            _ => i += 1,
        }
    }
}

/// Where the JSON string whose contents start at `i` ends: just past its closing quote.
fn string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// `text[start..end]` without trailing whitespace; `None` when nothing is left.
///
/// Slices here and below are taken with `get`, which cannot panic: an index panic formats its
/// message with `Debug` of `char`, which brings in Unicode tables (docs/GUESTS.md, *Size*).
fn trimmed(text: &str, start: usize, mut end: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    while end > start && is_ws(bytes[end - 1]) {
        end -= 1;
    }
    text.get(start..end).filter(|_| end > start)
}

/// Why params could not be split: what was wrong, and at which byte.
#[derive(Debug, PartialEq)]
pub struct Malformed {
    pub what: &'static str,
    pub at: usize,
}

/// The top-level elements of the JSON array `text`, each without surrounding whitespace.
///
/// For valid JSON it finds exactly the slices serde_json's `Vec<&RawValue>` would (a property
/// test checks that) for far fewer wasm operators: a whole `math.add [2,3]` call ran 3,061
/// instead of 3,975 (docs/PERFORMANCE.md). Elements are not checked here: each parameter is
/// decoded from its own slice later, which rejects a malformed one with a message about it.
pub fn split_array(text: &str) -> Result<Vec<&str>, Malformed> {
    let bytes = text.as_bytes();
    let fail = |what, at| Err(Malformed { what, at });
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return fail("expected `[`", i);
    }
    let mut items = Vec::new();
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b']') {
        return end_of_params(bytes, i + 1).map(|()| items);
    }
    loop {
        let Some(end) = value_end(bytes, i) else {
            return fail("unclosed array", bytes.len());
        };
        let Some(item) = trimmed(text, i, end) else {
            return fail("expected a value", i);
        };
        items.push(item);
        match bytes[end] {
            b',' => i = skip_ws(bytes, end + 1),
            b']' => return end_of_params(bytes, end + 1).map(|()| items),
            _ => return fail("expected `,` or `]`", end),
        }
    }
}

/// The members of the JSON object `text` in order: each key (unescaped) and its value's text
/// without surrounding whitespace. Values are left unchecked, as in [`split_array`].
pub fn split_object(text: &str) -> Result<Vec<(Cow<'_, str>, &str)>, Malformed> {
    let bytes = text.as_bytes();
    let fail = |what, at| Err(Malformed { what, at });
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return fail("expected `{`", i);
    }
    let mut members = Vec::new();
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return end_of_params(bytes, i + 1).map(|()| members);
    }
    loop {
        if bytes.get(i) != Some(&b'"') {
            return fail("expected a string key", i);
        }
        let Some(key_end) = string_end(bytes, i + 1) else {
            return fail("unclosed string", bytes.len());
        };
        let Some(key) = text.get(i + 1..key_end - 1).and_then(unescape) else {
            return fail("invalid string", i);
        };
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return fail("expected `:`", i);
        }
        i = skip_ws(bytes, i + 1);
        let Some(end) = value_end(bytes, i) else {
            return fail("unclosed object", bytes.len());
        };
        let Some(value) = trimmed(text, i, end) else {
            return fail("expected a value", i);
        };
        members.push((key, value));
        match bytes[end] {
            b',' => i = skip_ws(bytes, end + 1),
            b'}' => return end_of_params(bytes, end + 1).map(|()| members),
            _ => return fail("expected `,` or `}`", end),
        }
    }
}

fn end_of_params(bytes: &[u8], i: usize) -> Result<(), Malformed> {
    let i = skip_ws(bytes, i);
    if i == bytes.len() {
        Ok(())
    } else {
        Err(Malformed {
            what: "trailing characters",
            at: i,
        })
    }
}

/// One JSON value, read as far as the glue reads it itself.
#[derive(Debug, PartialEq)]
pub enum Token<'a> {
    Null,
    Bool(bool),
    /// A number, checked against JSON's grammar; its text.
    Number(&'a str),
    /// A string, checked (escapes, no raw control characters); its contents between the quotes,
    /// still escaped.
    Str(&'a str),
    /// An array (`[`) or an object (`{`): not read here.
    Nested,
}

/// Reads `text` (no surrounding whitespace) as one JSON value; `None` when it is not one. Arrays
/// and objects are only recognised by their first byte.
pub fn token(text: &str) -> Option<Token<'_>> {
    let bytes = text.as_bytes();
    match *bytes.first()? {
        b'[' | b'{' => Some(Token::Nested),
        b'"' => {
            let end = string_end(bytes, 1)?;
            let contents = text.get(1..end - 1)?;
            (end == bytes.len() && valid_string(contents)).then_some(Token::Str(contents))
        }
        b'-' | b'0'..=b'9' => valid_number(bytes).then_some(Token::Number(text)),
        _ => match text {
            "null" => Some(Token::Null),
            "true" => Some(Token::Bool(true)),
            "false" => Some(Token::Bool(false)),
            _ => None,
        },
    }
}

/// `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`, the whole of `bytes`.
fn valid_number(bytes: &[u8]) -> bool {
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    let digits = |mut i: usize| {
        let start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => match digits(i) {
            Some(end) => i = end,
            None => return false,
        },
        _ => return false,
    }
    if bytes.get(i) == Some(&b'.') {
        match digits(i + 1) {
            Some(end) => i = end,
            None => return false,
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        match digits(i) {
            Some(end) => i = end,
            None => return false,
        }
    }
    i == bytes.len()
}

/// Whether the contents of a string (between its quotes) are valid JSON: no raw control
/// characters, only the escapes JSON has, and `\u` surrogates in pairs.
fn valid_string(contents: &str) -> bool {
    unescape(contents).is_some()
}

/// A number as the glue hands it to a visitor: serde_json's classification, so the same types
/// accept the same numbers.
#[derive(Debug, PartialEq)]
pub enum Number {
    /// A non-negative integer that fits `u64`.
    U64(u64),
    /// A negative integer that fits `i64`.
    I64(i64),
    /// Anything else: a fraction or exponent, `-0`, or an integer too large for 64 bits.
    F64(f64),
}

/// The value of a number `token` has checked; `None` when it is a float too large for an `f64`
/// (or, `SINGLE`, for an `f32`), which serde_json calls "number out of range".
///
/// `SINGLE` parses fractions and exponents straight to `f32` (as serde_json does for an `f32`),
/// so they are rounded once, not twice through `f64`.
pub fn number<const SINGLE: bool>(text: &str) -> Option<Number> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        let mut magnitude: u64 = 0;
        let fits = digits.bytes().all(|b| {
            match magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(b - b'0')))
            {
                Some(m) => {
                    magnitude = m;
                    true
                }
                None => false,
            }
        });
        if fits {
            if !negative {
                return Some(Number::U64(magnitude));
            }
            // `-0` is a float, as in serde_json; so is anything below i64::MIN.
            if magnitude != 0 && magnitude <= 1 << 63 {
                return Some(Number::I64((magnitude as i64).wrapping_neg()));
            }
        }
    }
    // Both parsers round correctly (the issue `tests/numbers.rs` pins: a double must come back
    // with the bits it was sent with); `token` has checked the grammar. An `f32` goes through
    // Rust's parser (float.rs is for `f64` only).
    let value = if SINGLE {
        text.parse::<f32>().map_or(f64::NAN, f64::from)
    } else {
        super::float::parse(text)
    };
    Some(Number::F64(value)).filter(|_| value.is_finite())
}

/// The contents of a JSON string with its escapes resolved: borrowed when there are none.
/// `None` when the contents are not valid JSON (see [`valid_string`]).
pub fn unescape(contents: &str) -> Option<Cow<'_, str>> {
    let bytes = contents.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == b'\\' || b < 0x20) else {
        return Some(Cow::Borrowed(contents));
    };
    let mut out = String::with_capacity(contents.len());
    out.push_str(contents.get(..first)?);
    let mut i = first;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x20 {
            return None;
        }
        if b != b'\\' {
            // Copy the run up to the next escape in one go (it is valid UTF-8: `contents` is a
            // &str and runs end at ASCII bytes).
            let run = bytes[i..]
                .iter()
                .position(|&b| b == b'\\' || b < 0x20)
                .map_or(bytes.len(), |n| i + n);
            out.push_str(contents.get(i..run)?);
            i = run;
            continue;
        }
        let c = match *bytes.get(i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = hex4(bytes, i + 2)?;
                i += 6;
                let code = match high {
                    0xD800..=0xDBFF => {
                        if bytes.get(i..i + 2) != Some(b"\\u") {
                            return None;
                        }
                        let low = hex4(bytes, i + 2)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        i += 6;
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => high,
                };
                out.push(char::from_u32(code)?);
                continue;
            }
            _ => return None,
        };
        out.push(c);
        i += 2;
    }
    Some(Cow::Owned(out))
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(acc * 16 + digit)
    })
}

/// Appends `s` as a JSON string, quotes included (escaping what JSON requires, as serde_json
/// does: `"`, `\` and control characters).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `n`, with a `-` when it is negative.
pub fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Appends the decimal digits of `n`.
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `write_u64` into a `String`.
pub fn push_u64(out: &mut String, n: u64) {
    let mut digits = Vec::with_capacity(20);
    write_u64(&mut digits, n);
    // Only ASCII digits were written.
    out.extend(digits.into_iter().map(char::from));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;
    use serde_json::value::RawValue;

    /// serde_json's split of a JSON array, which `split_array` must match.
    fn serde_split(params: &str) -> Vec<&str> {
        serde_json::from_str::<Vec<&RawValue>>(params)
            .unwrap()
            .into_iter()
            .map(RawValue::get)
            .collect()
    }

    #[test]
    fn split_array_follows_strings_and_nesting() {
        for params in [
            "[]",
            " [ ] ",
            "[1]",
            "[1,2]",
            " [ 1 ,\n\t2 ] ",
            r#"["a,b", "c]d", "e}f", "{[", "\"", "\\", "x\\\"y,"]"#,
            r#"[[1, [2, 3]], {"a": [4, {"b": "]"}]}, null, true, -1.5e3]"#,
            r#"["\u005d", "é ✓", {}]"#,
        ] {
            assert_eq!(
                split_array(params).unwrap(),
                serde_split(params),
                "{params}"
            );
        }
    }

    #[test]
    fn split_array_refuses_malformed_arrays() {
        for params in [
            "",
            "1",
            "{}",
            "[",
            "[1",
            "[1,",
            "[1,]",
            "[,1]",
            "[1]]",
            "[1} ",
            "[\"a]",
            "[\"a\\\"]",
            "[[1]",
            "[1] x",
            "[{]}",
            "[1,,2]",
        ] {
            assert!(split_array(params).is_err(), "{params:?}");
        }
        assert_eq!(
            split_array("[1,]"),
            Err(Malformed {
                what: "expected a value",
                at: 3
            })
        );
    }

    #[test]
    fn split_object_unescapes_keys() {
        let members = split_object(r#" { "x" : 1 , "\u0079\n" : [1, {"a": "}"}] } "#).unwrap();
        assert_eq!(
            members,
            [
                (Cow::Borrowed("x"), "1"),
                (Cow::Owned("y\n".to_owned()), r#"[1, {"a": "}"}]"#)
            ]
        );
        assert_eq!(split_object("{}").unwrap(), []);
        for params in [
            "{",
            "{1: 2}",
            r#"{"a" 1}"#,
            r#"{"a": }"#,
            r#"{"a": 1,}"#,
            r#"{"a": 1"#,
            r#"{"a": 1} x"#,
            r#"{"\x": 1}"#,
            "[]",
        ] {
            assert!(split_object(params).is_err(), "{params:?}");
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        // Strings made of the characters the split has to get right.
        let text = prop::collection::vec(
            prop_oneof![
                Just('['),
                Just(']'),
                Just('{'),
                Just('}'),
                Just(','),
                Just(':'),
                Just('"'),
                Just('\\'),
                Just(' '),
                Just('\n'),
                Just('\u{1}'),
                Just('é'),
                Just('a'),
            ],
            0..8,
        )
        .prop_map(|chars| chars.into_iter().collect::<String>());
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((text.clone(), inner), 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn print(value: &Value, pretty: bool) -> String {
        if pretty {
            serde_json::to_string_pretty(value).unwrap()
        } else {
            serde_json::to_string(value).unwrap()
        }
    }

    proptest! {
        #[test]
        fn split_array_matches_serde_json(
            items in prop::collection::vec(json(), 0..6),
            pretty in any::<bool>(),
        ) {
            let params = print(&Value::Array(items), pretty);
            prop_assert_eq!(split_array(&params).unwrap(), serde_split(&params));
        }

        #[test]
        fn split_object_matches_serde_json(
            members in prop::collection::vec((".{0,6}", json()), 0..6),
            pretty in any::<bool>(),
        ) {
            let object: serde_json::Map<String, Value> = members.into_iter().collect();
            let params = print(&Value::Object(object.clone()), pretty);
            let split = split_object(&params).unwrap();
            prop_assert_eq!(split.len(), object.len());
            for ((key, text), (want_key, want)) in split.iter().zip(&object) {
                prop_assert_eq!(key, want_key);
                prop_assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), want);
            }
        }

        /// Every JSON string serde_json writes is one `token` reads back, and `write_str`
        /// writes what serde_json writes.
        #[test]
        fn strings_round_trip(s in any::<String>()) {
            let json = serde_json::to_string(&s).unwrap();
            let mut written = Vec::new();
            write_str(&mut written, &s);
            prop_assert_eq!(std::str::from_utf8(&written).unwrap(), json.as_str());
            let Some(Token::Str(contents)) = token(&json) else {
                panic!("{json} is not a string token");
            };
            prop_assert_eq!(unescape(contents).unwrap(), s.as_str());
        }

        #[test]
        fn tokens_agree_with_serde_json(text in "[-0-9.eE+]{1,8}|\"[a\\\\u0-9\"]{0,8}\"|nul+|true|fals") {
            let ours = token(&text).is_some();
            let theirs = serde_json::from_str::<Value>(&text).is_ok();
            prop_assert_eq!(ours, theirs, "{}", text);
        }

        #[test]
        fn integers_are_written_as_rust_writes_them(n in any::<i64>(), u in any::<u64>()) {
            let mut out = Vec::new();
            write_i64(&mut out, n);
            prop_assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
            let mut out = String::new();
            push_u64(&mut out, u);
            prop_assert_eq!(out, u.to_string());
        }
    }

    fn number_(text: &str) -> Number {
        number::<false>(text).unwrap()
    }

    #[test]
    fn numbers_are_classified_as_serde_json_does() {
        assert_eq!(number::<false>("1e400"), None);
        assert_eq!(number::<true>("1e39"), None);
        assert_eq!(number::<false>("1e39"), Some(Number::F64(1e39)));
        assert_eq!(number_("0"), Number::U64(0));
        assert_eq!(number_("18446744073709551615"), Number::U64(u64::MAX));
        assert_eq!(
            number_("18446744073709551616"),
            Number::F64(18446744073709551616.0)
        );
        assert_eq!(number_("-1"), Number::I64(-1));
        assert_eq!(number_("-9223372036854775808"), Number::I64(i64::MIN));
        assert_eq!(
            number_("-9223372036854775809"),
            Number::F64(-9223372036854775809.0)
        );
        let Number::F64(minus_zero) = number_("-0") else {
            panic!("-0 is a float")
        };
        assert!(minus_zero == 0.0 && minus_zero.is_sign_negative());
        assert_eq!(number_("1.5e3"), Number::F64(1500.0));
        assert_eq!(number_("1E-2"), Number::F64(0.01));
    }

    #[test]
    fn tokens() {
        assert_eq!(token("null"), Some(Token::Null));
        assert_eq!(token("false"), Some(Token::Bool(false)));
        assert_eq!(token("-0.5e+7"), Some(Token::Number("-0.5e+7")));
        assert_eq!(token(r#""a\"b""#), Some(Token::Str(r#"a\"b"#)));
        assert_eq!(token("[tru]"), Some(Token::Nested));
        for bad in [
            "",
            "nul",
            "tru",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "-",
            "1 2",
            "\"a",
            "\"a\"b",
            "\"\t\"",
            r#""\x""#,
            r#""\ud800""#,
            r#""\udc00x""#,
            "NaN",
            "Infinity",
        ] {
            assert_eq!(token(bad), None, "{bad:?}");
        }
    }
}
