//! What `#[export]` expands to: params in, output buffer out.
//!
//! The macro generates, per function, a native `__fnhost_invoke_<name>(params) -> Vec<u8>`
//! made of [`invoke`] (or [`invoke_raw`]), one [`Args::take`] per parameter, and [`ok`] or
//! [`from_result`] around the call; on wasm32 the `fnhost_call_<name>` export is [`call`]
//! around that. The output is a status byte and a JSON payload, as `docs/ABI.md` says.
//!
//! Params are split once, at the top level only, into borrowed slices (an array by
//! [`split_array`], an object by serde_json into [`RawValue`]s); each parameter is then
//! deserialized from its own slice, so nothing is parsed twice or copied into a `Value`.

use std::borrow::Cow;
use std::fmt;

use fnhost_abi::{GuestError, InvalidParams, Status};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::Error;

/// Params that do not fit the function: becomes a status-2 output.
#[derive(Debug)]
pub struct Reject(InvalidParams);

impl Reject {
    fn new(message: String, param: Option<&str>) -> Self {
        Self(InvalidParams {
            message,
            param: param.map(str::to_owned),
        })
    }

    /// The status-2 output buffer.
    pub fn into_output(self) -> Vec<u8> {
        encode(Status::InvalidParams, &self.0)
    }
}

/// The params of one call, matched to the function's parameters by position or by name.
#[derive(Debug)]
pub struct Args<'a> {
    /// The function's parameter names, in positional order.
    names: &'static [&'static str],
    /// The JSON text given for each parameter, same order; `None` when it was not given.
    values: Vec<Option<&'a str>>,
}

impl<'a> Args<'a> {
    /// Splits `params` (an array, an object, or nothing at all) over `names`.
    pub fn parse(params: &'a [u8], names: &'static [&'static str]) -> Result<Self, Reject> {
        let mut values = vec![None; names.len()];
        match params.iter().find(|b| !b.is_ascii_whitespace()) {
            None => {}
            Some(b'[') => {
                let given = match split_array(params) {
                    Some(given) => given,
                    None => serde_json::from_slice::<Vec<&'a RawValue>>(params)
                        .map_err(not_json)?
                        .into_iter()
                        .map(RawValue::get)
                        .collect(),
                };
                if given.len() > names.len() {
                    let message = match names.len() {
                        0 => format!("expected no parameters, got {}", given.len()),
                        1 => format!("expected at most 1 parameter, got {}", given.len()),
                        n => format!("expected at most {n} parameters, got {}", given.len()),
                    };
                    return Err(Reject::new(message, None));
                }
                for (slot, value) in values.iter_mut().zip(given) {
                    *slot = Some(value);
                }
            }
            Some(b'{') => {
                let given: NamedParams<'a> = serde_json::from_slice(params).map_err(not_json)?;
                for (name, value) in given.0 {
                    let Some(index) = names.iter().position(|n| *n == name) else {
                        let message = if names.is_empty() {
                            format!("unknown parameter `{name}`; the function takes no parameters")
                        } else {
                            format!(
                                "unknown parameter `{name}`; expected one of: {}",
                                names.join(", ")
                            )
                        };
                        return Err(Reject::new(message, Some(&name)));
                    };
                    if values[index].replace(value.get()).is_some() {
                        return Err(Reject::new(
                            format!("parameter `{name}` given more than once"),
                            Some(&name),
                        ));
                    }
                }
            }
            Some(_) => {
                let kind = match serde_json::from_slice::<serde::de::IgnoredAny>(params) {
                    Ok(_) => "params must be an array or an object",
                    Err(_) => "params are not valid JSON",
                };
                return Err(Reject::new(kind.to_owned(), None));
            }
        }
        Ok(Self { names, values })
    }

    /// Decodes parameter `index`. An absent parameter is an error when `required`, and otherwise
    /// decodes as JSON `null` (so `Option<T>` gets `None`).
    pub fn take<T: DeserializeOwned>(&self, index: usize, required: bool) -> Result<T, Reject> {
        let name = self.names[index];
        let decoded = match self.values[index] {
            Some(text) => serde_json::from_str(text),
            None if required => {
                return Err(Reject::new(
                    format!("missing parameter `{name}`"),
                    Some(name),
                ));
            }
            None => T::deserialize(serde_json::Value::Null),
        };
        decoded.map_err(|e| {
            Reject::new(
                format!("parameter `{name}`: {}", without_position(&e)),
                Some(name),
            )
        })
    }
}

/// Runs a function's body over its parsed params: the body takes each parameter with `?`.
pub fn invoke<'a>(
    params: &'a [u8],
    names: &'static [&'static str],
    body: impl FnOnce(&Args<'a>) -> Result<Vec<u8>, Reject>,
) -> Vec<u8> {
    match Args::parse(params, names).and_then(|args| body(&args)) {
        Ok(output) => output,
        Err(reject) => reject.into_output(),
    }
}

/// Runs a `#[export(raw)]` function: the whole params value is its one argument, `null` when
/// there were no params.
pub fn invoke_raw<T: DeserializeOwned>(params: &[u8], body: impl FnOnce(T) -> Vec<u8>) -> Vec<u8> {
    let decoded = if params.iter().all(u8::is_ascii_whitespace) {
        T::deserialize(serde_json::Value::Null)
    } else {
        serde_json::from_slice(params)
    };
    match decoded {
        Ok(value) => body(value),
        Err(e) => {
            Reject::new(format!("invalid params: {}", without_position(&e)), None).into_output()
        }
    }
}

/// The status-0 output for a function's return value.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut output = vec![Status::Ok as u8];
    match serde_json::to_writer(&mut output, value) {
        Ok(()) => output,
        Err(e) => error(Error::new(format!(
            "the result could not be encoded as JSON: {e}"
        ))),
    }
}

/// The output for a function returning `Result`: status 0 or status 1.
pub fn from_result<T: Serialize, E: Into<Error>>(result: Result<T, E>) -> Vec<u8> {
    match result {
        Ok(value) => ok(&value),
        Err(e) => error(e.into()),
    }
}

/// The status-1 output for a guest error.
pub fn error(error: Error) -> Vec<u8> {
    encode(Status::Error, &GuestError::from(error))
}

fn encode(status: Status, payload: &impl Serialize) -> Vec<u8> {
    let mut output = vec![status as u8];
    serde_json::to_writer(&mut output, payload).expect("error payloads are plain JSON");
    output
}

/// The body of a `fnhost_call_<name>` export: reads the params the host wrote, runs `invoke`,
/// leaks the output and returns where it is, packed as the ABI says.
///
/// # Safety
///
/// `ptr..ptr+len` must be readable memory holding the params (the host got it from
/// `fnhost_alloc` and filled it), or `len` must be 0.
#[cfg(target_arch = "wasm32")]
pub unsafe fn call(ptr: i32, len: i32, invoke: fn(&[u8]) -> Vec<u8>) -> i64 {
    crate::panic::install_hook();
    let params: &[u8] = match usize::try_from(len) {
        Ok(len) if len > 0 => {
            // SAFETY: the caller's contract; on wasm32 addresses are 32-bit.
            unsafe { core::slice::from_raw_parts(ptr as u32 as usize as *const u8, len) }
        }
        _ => &[],
    };
    // The instance is discarded after the call, so the output never needs freeing.
    let output: &'static mut [u8] = invoke(params).leak();
    fnhost_abi::pack(output.as_ptr() as usize as u32, output.len() as u32)
}

/// The top-level elements of the JSON array `params`, each without surrounding whitespace,
/// found by a scan that only follows strings and nesting: no element is parsed here (each
/// parameter is decoded from its own slice later, which checks it). `None` when `params` is not
/// an array this scan can split; the caller then lets serde_json parse it, for its error.
///
/// For valid JSON it finds exactly the slices serde_json's `Vec<&RawValue>` would (a property
/// test checks that) for far fewer wasm operators: a whole `math.add [2,3]` call runs 3,061
/// instead of 3,975 (docs/PERFORMANCE.md). The host passes only params that parsed as JSON;
/// on malformed input (natively, in a guest's unit tests) this returns `None` or slices that
/// fail to decode, so the call is still rejected, with a message about the parameter.
fn split_array(params: &[u8]) -> Option<Vec<&str>> {
    let text = std::str::from_utf8(params).ok()?;
    let bytes = text.as_bytes();
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut i = skip_ws(0);
    if bytes.get(i) != Some(&b'[') {
        return None;
    }
    let mut items = Vec::new();
    i = skip_ws(i + 1);
    if bytes.get(i) == Some(&b']') {
        return (skip_ws(i + 1) == bytes.len()).then_some(items);
    }
    loop {
        let start = i;
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
                b']' | b'}' | b',' if depth == 0 => break,
                _ => i += 1,
            }
        }
        let mut end = i;
        while end > start && bytes[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        if end == start {
            return None;
        }
        items.push(&text[start..end]);
        match bytes[i] {
            b',' => i = skip_ws(i + 1),
            b']' => return (skip_ws(i + 1) == bytes.len()).then_some(items),
            _ => return None,
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

fn not_json(e: serde_json::Error) -> Reject {
    Reject::new(format!("params are not valid JSON: {e}"), None)
}

/// serde_json's message without its " at line L column C" suffix, which means nothing to a
/// client when the text is one parameter's slice.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// The members of a named-params object, in order, keys borrowed when they have no escapes.
struct NamedParams<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for NamedParams<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = NamedParams<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of named params")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(NamedParams(members))
            }
        }

        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// An object key, borrowed from the input unless it had to be unescaped.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a parameter name")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn split(output: &[u8]) -> (u8, Value) {
        (output[0], serde_json::from_slice(&output[1..]).unwrap())
    }

    const XY: &[&str] = &["x", "y"];

    #[test]
    fn positional_named_and_empty() {
        let args = Args::parse(b"[1, 2]", XY).unwrap();
        assert_eq!(args.take::<i64>(1, true).unwrap(), 2);
        let args = Args::parse(br#" {"y": 2, "x": 1} "#, XY).unwrap();
        assert_eq!(args.take::<i64>(0, true).unwrap(), 1);
        let args = Args::parse(b"", XY).unwrap();
        assert_eq!(args.take::<Option<i64>>(0, false).unwrap(), None);
    }

    #[test]
    fn escaped_keys_match() {
        let args = Args::parse(br#"{"\u0078": 5}"#, XY).unwrap();
        assert_eq!(args.take::<i64>(0, true).unwrap(), 5);
    }

    #[test]
    fn duplicate_named_param_is_rejected() {
        let e = Args::parse(br#"{"x": 1, "x": 2}"#, XY).unwrap_err();
        assert_eq!(e.0.message, "parameter `x` given more than once");
    }

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
                split_array(params.as_bytes()).unwrap(),
                serde_split(params),
                "{params}"
            );
        }
    }

    #[test]
    fn split_array_leaves_malformed_arrays_to_serde() {
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
            assert_eq!(split_array(params.as_bytes()), None, "{params:?}");
        }
        // Invalid inside an element: the slice is handed on and fails to decode there.
        let args = Args::parse(b"[tru, 2]", XY).unwrap();
        assert!(args.take::<bool>(0, true).is_err());
        assert!(Args::parse(b"[1,]", XY).is_err());
        assert!(Args::parse(&[b'[', 0xff, b']'], XY).is_err());
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
                Just('"'),
                Just('\\'),
                Just(' '),
                Just('\n'),
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

    proptest! {
        #[test]
        fn split_array_matches_serde_json(
            items in prop::collection::vec(json(), 0..6),
            pretty in any::<bool>(),
        ) {
            let array = Value::Array(items);
            let params = if pretty {
                serde_json::to_string_pretty(&array).unwrap()
            } else {
                serde_json::to_string(&array).unwrap()
            };
            prop_assert_eq!(split_array(params.as_bytes()).unwrap(), serde_split(&params));
        }
    }

    #[test]
    fn scalars_and_garbage_are_rejected() {
        assert_eq!(
            Args::parse(b"3", XY).unwrap_err().0.message,
            "params must be an array or an object"
        );
        assert_eq!(
            Args::parse(b"nul", XY).unwrap_err().0.message,
            "params are not valid JSON"
        );
        assert!(
            Args::parse(b"[1,", XY)
                .unwrap_err()
                .0
                .message
                .starts_with("params are not valid JSON: ")
        );
    }

    #[test]
    fn no_parameter_functions_say_so() {
        assert_eq!(
            Args::parse(b"[1]", &[]).unwrap_err().0.message,
            "expected no parameters, got 1"
        );
        assert_eq!(
            Args::parse(b"[1, 2]", &["a"]).unwrap_err().0.message,
            "expected at most 1 parameter, got 2"
        );
        assert_eq!(
            Args::parse(br#"{"a": 1}"#, &[]).unwrap_err().0.message,
            "unknown parameter `a`; the function takes no parameters"
        );
    }

    #[test]
    fn unencodable_result_is_a_guest_error() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1], 1);
        let (status, payload) = split(&ok(&map));
        assert_eq!(status, 1);
        assert!(
            payload["message"]
                .as_str()
                .unwrap()
                .starts_with("the result could not be encoded")
        );
    }

    #[test]
    fn raw_gets_null_without_params() {
        let (status, payload) = split(&invoke_raw::<Value>(b"", |v| ok(&v)));
        assert_eq!((status, payload), (0, Value::Null));
        let (status, payload) = split(&invoke_raw::<Value>(b" [1] ", |v| ok(&v)));
        assert_eq!((status, payload), (0, json!([1])));
    }
}
