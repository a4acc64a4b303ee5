//! The fnhost guest ABI, defined once and shared by the host and the guest SDK.
//!
//! `docs/ABI.md` is the prose version of this file; the two must say the same thing. Everything
//! here is plain data: names, numbers, and the serde shapes of the records that cross the
//! boundary, so both sides agree by construction rather than by convention.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// The ABI version the SDK builds: the newest this crate describes. A guest declares the version
/// it was built for in each metadata record; a host refuses versions it does not speak (this
/// crate's host speaks v1 and v2).
pub const ABI_VERSION: u32 = 2;

/// The exported linear memory the host reads and writes.
pub const MEMORY_EXPORT: &str = "memory";

/// ABI v1 only: `(len: i32) -> i32`, allocates `len` bytes for the params, returns the address
/// or 0. (In v2 the guest pulls its params with [`PARAMS_IMPORT`] instead.)
pub const ALLOC_EXPORT: &str = "fnhost_alloc";

/// Prefix of every RPC function export: `fnhost_call_<function>`, of the type
/// `(params_ptr: i32, params_len: i32) -> i64` in ABI v1 and `(params_len: i32) -> i64` in v2.
pub const CALL_PREFIX: &str = "fnhost_call_";

/// The custom section holding one JSON [`FunctionMeta`] record per exported function.
pub const META_SECTION: &str = "fnhost.functions";

/// The import module of the host functions.
pub const HOST_MODULE: &str = "fnhost";

/// `(level: i32, ptr: i32, len: i32)`: writes a message to the host's log.
pub const LOG_IMPORT: &str = "log";

/// ABI v2: `(ptr: i32)`, copies the call's params (`params_len` bytes, as the call function was
/// told) into guest memory at `ptr`; traps when that range is outside memory.
pub const PARAMS_IMPORT: &str = "params";

/// Longest function name (the part after [`CALL_PREFIX`]).
pub const MAX_FUNCTION_NAME: usize = 63;

/// A log message is cut to this many bytes.
pub const MAX_LOG_MESSAGE: usize = 4096;

/// At most this many log lines per call; further lines are dropped and counted.
pub const MAX_LOG_LINES: u32 = 100;

/// First byte of a function's output: what the rest of it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The payload is the function's result.
    Ok = 0,
    /// The payload is a [`GuestError`].
    Error = 1,
    /// The payload is an [`InvalidParams`].
    InvalidParams = 2,
}

impl Status {
    /// The status for a byte, or `None` for a byte the ABI does not define.
    ///
    /// ```
    /// use fnhost_abi::Status;
    ///
    /// assert_eq!(Status::from_byte(1), Some(Status::Error));
    /// assert_eq!(Status::from_byte(3), None);
    /// ```
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Ok),
            1 => Some(Self::Error),
            2 => Some(Self::InvalidParams),
            _ => None,
        }
    }
}

/// Log levels of the `log` host function: the `level` argument's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    /// 0: something failed.
    Error = 0,
    /// 1: something looks wrong.
    Warn = 1,
    /// 2: what happened (also what an unknown level means).
    Info = 2,
    /// 3: detail for whoever debugs the guest.
    Debug = 3,
    /// 4: more detail still.
    Trace = 4,
}

impl LogLevel {
    /// The level for a raw value; unknown values log at `Info`.
    ///
    /// ```
    /// use fnhost_abi::LogLevel;
    ///
    /// assert_eq!(LogLevel::from_raw(0), LogLevel::Error);
    /// assert_eq!(LogLevel::from_raw(42), LogLevel::Info);
    /// ```
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Self::Error,
            1 => Self::Warn,
            3 => Self::Debug,
            4 => Self::Trace,
            _ => Self::Info,
        }
    }
}

/// Packs an output location into the `i64` a call function returns: the address in the high 32
/// bits, the length in the low 32.
///
/// ```
/// let ret = fnhost_abi::pack(0x1000, 7);
/// assert_eq!(ret, 0x1000_0000_0007);
/// assert_eq!(fnhost_abi::unpack(ret), (0x1000, 7));
/// ```
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// Splits a call function's return value into `(ptr, len)`; the inverse of [`pack`].
pub fn unpack(ret: i64) -> (u32, u32) {
    let bits = ret as u64;
    ((bits >> 32) as u32, bits as u32)
}

/// Whether `name` is a valid function name: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes.
///
/// ```
/// use fnhost_abi::is_valid_function_name;
///
/// assert!(is_valid_function_name("divide"));
/// assert!(!is_valid_function_name("math.divide"));
/// assert!(!is_valid_function_name("2x"));
/// ```
pub fn is_valid_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    name.len() <= MAX_FUNCTION_NAME && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One record of the [`META_SECTION`]: what the host knows about a function before running it.
///
/// Members a record leaves out take their defaults, and unknown members are ignored:
///
/// ```
/// use fnhost_abi::FunctionMeta;
///
/// let meta: FunctionMeta = serde_json::from_str(
///     r#"{"abi": 1, "name": "add", "params": [{"name": "x", "schema": {"type": "integer"}}]}"#,
/// )
/// .unwrap();
/// assert_eq!(meta.params[0].name, "x");
/// assert!(meta.params[0].required);
/// assert_eq!(meta.result, serde_json::json!({}));
/// assert!(!meta.raw);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionMeta {
    /// The ABI version the function was built for.
    pub abi: u32,
    /// The function's name (without [`CALL_PREFIX`]).
    pub name: String,
    /// Its doc comment.
    #[serde(default)]
    pub doc: String,
    /// Its parameters, in positional order.
    #[serde(default)]
    pub params: Vec<ParamMeta>,
    /// JSON Schema of its success value.
    #[serde(default = "any_schema")]
    pub result: serde_json::Value,
    /// Whether the function takes the whole params value as its one argument.
    #[serde(default)]
    pub raw: bool,
}

/// One parameter of a [`FunctionMeta`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamMeta {
    /// The parameter's name, for params given by name.
    pub name: String,
    /// JSON Schema of the parameter.
    #[serde(default = "any_schema")]
    pub schema: serde_json::Value,
    /// False when the parameter may be omitted.
    #[serde(default = "yes")]
    pub required: bool,
}

fn any_schema() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

fn yes() -> bool {
    true
}

/// Payload of a [`Status::Error`] output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestError {
    /// What went wrong; the JSON-RPC error's message.
    pub message: String,
    /// The guest's own error code; the host uses it unless it is in JSON-RPC's reserved range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Structured detail; the client gets it as `data.guest_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// Payload of a [`Status::InvalidParams`] output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvalidParams {
    /// Why the params did not fit.
    pub message: String,
    /// The parameter at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_full_range() {
        for (p, l) in [(0, 0), (1, 2), (u32::MAX, u32::MAX), (0x8000_0000, 7)] {
            assert_eq!(unpack(pack(p, l)), (p, l));
        }
    }

    #[test]
    fn function_names() {
        assert!(is_valid_function_name("add"));
        assert!(is_valid_function_name("_x9"));
        assert!(!is_valid_function_name(""));
        assert!(!is_valid_function_name("9a"));
        assert!(!is_valid_function_name("a.b"));
        assert!(!is_valid_function_name(&"a".repeat(64)));
        assert!(is_valid_function_name(&"a".repeat(63)));
    }

    #[test]
    fn status_bytes() {
        assert_eq!(Status::from_byte(0), Some(Status::Ok));
        assert_eq!(Status::from_byte(2), Some(Status::InvalidParams));
        assert_eq!(Status::from_byte(3), None);
    }

    #[test]
    fn meta_defaults_fill_missing_members() {
        let m: FunctionMeta = serde_json::from_str(r#"{"abi":1,"name":"f"}"#).unwrap();
        assert_eq!(m.params, vec![]);
        assert!(!m.raw);
        assert_eq!(m.result, serde_json::json!({}));
    }
}
