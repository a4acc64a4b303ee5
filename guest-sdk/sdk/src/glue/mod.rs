//! What `#[export]` expands to: params in, output buffer out.
//!
//! The macro generates, per function, a native `__fnhost_invoke_<name>(params) -> Vec<u8>`
//! made of [`invoke`] (or [`invoke_raw`]), one [`Args::take`] per parameter, and [`ok`] or
//! [`from_result`] around the call; on wasm32 the `fnhost_call_<name>` export is `call`
//! around that. The output is a status byte and a JSON payload, as `docs/ABI.md` says.
//!
//! Params are split once, at the top level only, into borrowed slices ([`json`]); each
//! parameter is then decoded from its own slice ([`de`]), so nothing is parsed twice or copied
//! into a `Value`. Scalars are read and the status-1 and status-2 payloads written by hand, so
//! a guest of numbers and strings does not carry serde_json's deserializer, its error
//! formatting or a `Value` serializer: half of a small module's size (docs/GUESTS.md, *Size*).
//! Messages are built without `format!` for the same reason.

mod de;
mod float;
mod json;

#[cfg(target_arch = "wasm32")]
pub(crate) use json::push_u64;

use fnhost_abi::Status;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Params that do not fit the function: becomes a status-2 output.
#[derive(Debug)]
pub struct Reject {
    message: String,
    param: Option<String>,
}

impl Reject {
    #[cold]
    fn new(message: String, param: Option<&str>) -> Self {
        Self {
            message,
            param: param.map(str::to_owned),
        }
    }

    /// The status-2 output buffer: `{"message": ..., "param"?: ...}`.
    #[cold]
    pub fn into_output(self) -> Vec<u8> {
        let mut output = Vec::with_capacity(self.message.len() + 32);
        output.push(Status::InvalidParams as u8);
        output.extend_from_slice(b"{\"message\":");
        json::write_str(&mut output, &self.message);
        if let Some(param) = &self.param {
            output.extend_from_slice(b",\"param\":");
            json::write_str(&mut output, param);
        }
        output.push(b'}');
        output
    }
}

/// `parts` concatenated (`format!` without `core::fmt`).
fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        s.push_str(part);
    }
    s
}

fn count(n: usize) -> String {
    let mut s = String::new();
    json::push_u64(&mut s, n as u64);
    s
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
        let Ok(text) = std::str::from_utf8(params) else {
            return Err(Reject::new(
                "params are not valid JSON: not UTF-8".into(),
                None,
            ));
        };
        let text = json::trim(text);
        match text.as_bytes().first() {
            None => {}
            Some(b'[') => {
                let given = json::split_array(text).map_err(not_json)?;
                if given.len() > names.len() {
                    let got = count(given.len());
                    let message = match names.len() {
                        0 => concat(&["expected no parameters, got ", &got]),
                        1 => concat(&["expected at most 1 parameter, got ", &got]),
                        n => concat(&["expected at most ", &count(n), " parameters, got ", &got]),
                    };
                    return Err(Reject::new(message, None));
                }
                for (slot, value) in values.iter_mut().zip(given) {
                    *slot = Some(value);
                }
            }
            Some(b'{') => {
                for (name, value) in json::split_object(text).map_err(not_json)? {
                    let Some(index) = names.iter().position(|n| *n == name) else {
                        return Err(unknown(&name, names));
                    };
                    if values[index].replace(value).is_some() {
                        let name = names[index];
                        return Err(Reject::new(
                            concat(&["parameter `", name, "` given more than once"]),
                            Some(name),
                        ));
                    }
                }
            }
            Some(_) => {
                let kind = match json::token(text) {
                    Some(_) => "params must be an array or an object",
                    None => "params are not valid JSON",
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
        let text = match self.values[index] {
            Some(text) => text,
            None if required => {
                return Err(Reject::new(
                    concat(&["missing parameter `", name, "`"]),
                    Some(name),
                ));
            }
            None => "null",
        };
        T::deserialize(de::Param::new(text))
            .map_err(|e| Reject::new(concat(&["parameter `", name, "`: ", &e.0]), Some(name)))
    }
}

/// An unknown named parameter; its name in the status-2 output is the one given.
#[cold]
fn unknown(name: &str, names: &'static [&'static str]) -> Reject {
    let mut message = concat(&["unknown parameter `", name, "`; "]);
    if names.is_empty() {
        message.push_str("the function takes no parameters");
    } else {
        message.push_str("expected one of: ");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                message.push_str(", ");
            }
            message.push_str(n);
        }
    }
    Reject::new(message, Some(name))
}

#[cold]
fn not_json(e: json::Malformed) -> Reject {
    let message = concat(&[
        "params are not valid JSON: ",
        e.what,
        " at byte ",
        &count(e.at),
    ]);
    Reject::new(message, None)
}

/// Runs a function's body over its parsed params: the body takes each parameter with `?`.
///
/// Not generic (the body is a `&dyn Fn`), so every function shares one copy of it.
pub fn invoke(
    params: &[u8],
    names: &'static [&'static str],
    body: &dyn Fn(&Args<'_>) -> Result<Vec<u8>, Reject>,
) -> Vec<u8> {
    match Args::parse(params, names).and_then(|args| body(&args)) {
        Ok(output) => output,
        Err(reject) => reject.into_output(),
    }
}

/// Runs a `#[export(raw)]` function: the whole params value is its one argument, `null` when
/// there were no params.
///
/// A `Box<RawValue>` argument is the params text itself, not read again: the host hands over
/// one well-formed JSON value (`docs/ABI.md`, *One call*), and reading 10 KB of it again in
/// wasm was nearly all of a raw echo's work (docs/PERFORMANCE.md, *10 KB echo*). Any other
/// type is decoded (and so checked) as usual.
pub fn invoke_raw<T: DeserializeOwned + 'static>(
    params: &[u8],
    body: impl FnOnce(T) -> Vec<u8>,
) -> Vec<u8> {
    let decoded = match std::str::from_utf8(params) {
        Ok(text) => {
            let text = json::trim(text);
            let text = if text.is_empty() { "null" } else { text };
            match as_given::<T>(text) {
                Some(raw) => Ok(raw),
                None => T::deserialize(de::Param::new(text)),
            }
        }
        Err(_) => Err(de::DeError("not UTF-8".into())),
    };
    match decoded {
        Ok(value) => body(value),
        Err(e) => Reject::new(concat(&["invalid params: ", &e.0]), None).into_output(),
    }
}

/// `text` as a `Box<RawValue>`, when that is what `T` is, without parsing it.
fn as_given<T: 'static>(text: &str) -> Option<T> {
    use serde_json::value::RawValue;
    use std::any::{Any, TypeId};
    if TypeId::of::<T>() != TypeId::of::<Box<RawValue>>() {
        return None;
    }
    // SAFETY: `from_string_unchecked` needs one well-formed JSON value without whitespace
    // around it. The host guarantees the params are one JSON value (it parsed the request to
    // find them, or wrote them itself: docs/ABI.md); `text` is trimmed, and `null` stands for
    // no params. (Debug builds check it again inside serde_json.)
    let raw = unsafe { RawValue::from_string_unchecked(text.to_owned()) };
    let raw: Box<dyn Any> = Box::new(raw);
    raw.downcast::<T>().ok().map(|t| *t)
}

/// The status-0 output for a function's return value.
pub fn ok<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut output = vec![Status::Ok as u8];
    match serde_json::to_writer(&mut output, value) {
        Ok(()) => output,
        Err(e) => not_encodable(&e),
    }
}

#[cold]
fn not_encodable(e: &serde_json::Error) -> Vec<u8> {
    error(Error::new(concat(&[
        "the result could not be encoded as JSON: ",
        &e.to_string(),
    ])))
}

/// The output for a function returning `Result`: status 0 or status 1.
pub fn from_result<T: Serialize, E: Into<Error>>(result: Result<T, E>) -> Vec<u8> {
    match result {
        Ok(value) => ok(&value),
        Err(e) => error(e.into()),
    }
}

/// The status-1 output for a guest error: `{"message": ..., "code"?: ..., "data"?: ...}`.
#[cold]
pub fn error(error: Error) -> Vec<u8> {
    let mut output = Vec::with_capacity(error.message.len() + 16);
    output.push(Status::Error as u8);
    output.extend_from_slice(b"{\"message\":");
    json::write_str(&mut output, &error.message);
    if let Some(code) = error.code {
        output.extend_from_slice(b",\"code\":");
        json::write_i64(&mut output, code);
    }
    if let Some(data) = &error.data {
        output.extend_from_slice(b",\"data\":");
        // A `Value` always encodes (its map keys are strings).
        let _ = serde_json::to_writer(&mut output, data);
    }
    output.push(b'}');
    output
}

/// The body of a `fnhost_call_<name>` export (ABI v2): pulls the call's `len` bytes of params
/// from the host into a buffer of our own (`fnhost.params`), runs `invoke`, leaks the output and
/// returns where it is, packed as the ABI says. One entry into the guest per call.
#[cfg(target_arch = "wasm32")]
pub fn call(len: i32, invoke: fn(&[u8]) -> Vec<u8>) -> i64 {
    #[link(wasm_import_module = "fnhost")]
    unsafe extern "C" {
        /// `fnhost_abi::HOST_MODULE`.`fnhost_abi::PARAMS_IMPORT`; see `docs/ABI.md`.
        #[link_name = "params"]
        fn fnhost_params(ptr: i32);
    }

    crate::panic::install_hook();
    let len = usize::try_from(len).unwrap_or(0);
    let mut params: Vec<u8> = Vec::with_capacity(len);
    if len > 0 {
        // SAFETY: the host writes exactly the `len` bytes it announced at the address it is
        // given (or traps, and this instance never runs again), so they are initialised after
        // the call. On wasm32 a pointer is 32 bits.
        unsafe {
            fnhost_params(params.as_mut_ptr() as usize as i32);
            params.set_len(len);
        }
    }
    // The instance is discarded after the call, so the output never needs freeing.
    let output: &'static mut [u8] = invoke(&params).leak();
    fnhost_abi::pack(output.as_ptr() as usize as u32, output.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(e.message, "parameter `x` given more than once");
    }

    #[test]
    fn malformed_elements_fail_when_decoded() {
        // Invalid inside an element: the slice is handed on and fails to decode there.
        let args = Args::parse(b"[tru, 2]", XY).unwrap();
        assert!(args.take::<bool>(0, true).is_err());
        assert_eq!(args.take::<i64>(1, true).unwrap(), 2);
        assert!(Args::parse(b"[1,]", XY).is_err());
        assert!(Args::parse(&[b'[', 0xff, b']'], XY).is_err());
    }

    #[test]
    fn scalars_and_garbage_are_rejected() {
        assert_eq!(
            Args::parse(b"3", XY).unwrap_err().message,
            "params must be an array or an object"
        );
        assert_eq!(
            Args::parse(b"nul", XY).unwrap_err().message,
            "params are not valid JSON"
        );
        assert!(
            Args::parse(b"[1,", XY)
                .unwrap_err()
                .message
                .starts_with("params are not valid JSON: ")
        );
    }

    #[test]
    fn no_parameter_functions_say_so() {
        assert_eq!(
            Args::parse(b"[1]", &[]).unwrap_err().message,
            "expected no parameters, got 1"
        );
        assert_eq!(
            Args::parse(b"[1, 2]", &["a"]).unwrap_err().message,
            "expected at most 1 parameter, got 2"
        );
        assert_eq!(
            Args::parse(br#"{"a": 1}"#, &[]).unwrap_err().message,
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
    fn raw_values_are_handed_over_as_given_and_other_types_still_checked() {
        use serde_json::value::RawValue;
        let echo = |params: &[u8]| invoke_raw::<Box<RawValue>>(params, |v| ok(&v));
        assert_eq!(echo(b"[1,  {\"a\" : 2.50}]"), b"\x00[1,  {\"a\" : 2.50}]");
        assert_eq!(echo(b" \n{\"x\":null} "), b"\x00{\"x\":null}");
        assert_eq!(echo(b""), b"\x00null");
        // Not UTF-8 is still refused (the host never sends it).
        assert_eq!(echo(b"[\"\xff\"]")[0], 2);
        // A `Value` is decoded, so broken text is an error, not passed on.
        assert_eq!(invoke_raw::<Value>(b"[1,", |v| ok(&v))[0], 2);
    }

    #[test]
    fn raw_gets_null_without_params() {
        let (status, payload) = split(&invoke_raw::<Value>(b"", |v| ok(&v)));
        assert_eq!((status, payload), (0, Value::Null));
        let (status, payload) = split(&invoke_raw::<Value>(b" [1] ", |v| ok(&v)));
        assert_eq!((status, payload), (0, json!([1])));
    }
}
