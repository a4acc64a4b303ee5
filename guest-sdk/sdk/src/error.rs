//! The error a guest function returns: a message, and optionally a code and data.
//!
//! It becomes a status-1 output (`docs/ABI.md`, *Guest errors*), which the host turns into a
//! JSON-RPC error. A `code` outside JSON-RPC's reserved range (-32768..=-32000) reaches the
//! client as is; without one (or with a reserved one) the host uses its *guest error* code.

use std::fmt;

use serde::Serialize;

/// `Result` with this crate's [`Error`] as the default error type: `Result<f64>` is
/// `Result<f64, Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// An error of the guest's own, sent to the client as a JSON-RPC error.
///
/// Return it from an `#[export]` function as the `Err` of a `Result`; strings convert into it,
/// so `Result<T, String>` and `Result<T, &str>` work too.
///
/// ```
/// use fnhost_guest::{Error, Result, export};
///
/// /// Withdraws an amount from a balance.
/// #[export]
/// pub fn withdraw(balance: u64, amount: u64) -> Result<u64> {
///     balance.checked_sub(amount).ok_or_else(|| {
///         Error::new("insufficient funds")
///             .with_code(4001)
///             .with_data(fnhost_guest::serde_json::json!({"short_by": amount - balance}))
///     })
/// }
///
/// // What the host gets for [5, 7]: status 1, then the error.
/// assert_eq!(
///     __fnhost_invoke_withdraw(b"[5, 7]"),
///     b"\x01{\"message\":\"insufficient funds\",\"code\":4001,\"data\":{\"short_by\":2}}"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// What went wrong, for a human; the JSON-RPC error's `message`.
    pub message: String,
    /// The JSON-RPC error code to use, if the guest has its own codes.
    pub code: Option<i64>,
    /// Structured detail; the JSON-RPC error's `data`.
    pub data: Option<serde_json::Value>,
}

impl Error {
    /// An error with this message, no code and no data. The client gets code -32010
    /// (*guest error*).
    ///
    /// ```
    /// let e = fnhost_guest::Error::new("division by zero");
    /// assert_eq!((e.message.as_str(), e.code, e.data), ("division by zero", None, None));
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: None,
            data: None,
        }
    }

    /// Sets the JSON-RPC error code. Codes in -32768..=-32000 are the host's: it replaces them.
    ///
    /// ```
    /// let e = fnhost_guest::Error::new("not found").with_code(404);
    /// assert_eq!(e.code, Some(404));
    /// ```
    pub fn with_code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    /// Sets the error's data (the client finds it as `data.guest_data`). A value that cannot be
    /// serialized to JSON is replaced by a string saying why, so the error itself is never lost.
    ///
    /// ```
    /// use serde::Serialize;
    ///
    /// #[derive(Serialize)]
    /// struct Missing {
    ///     field: &'static str,
    /// }
    ///
    /// let e = fnhost_guest::Error::new("incomplete").with_data(Missing { field: "name" });
    /// assert_eq!(e.data, Some(fnhost_guest::serde_json::json!({"field": "name"})));
    /// ```
    pub fn with_data(mut self, data: impl Serialize) -> Self {
        self.data = Some(serde_json::to_value(data).unwrap_or_else(|e| {
            serde_json::Value::String(format!("error data could not be serialized: {e}"))
        }));
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::new(error.to_string())
    }
}

impl From<Error> for fnhost_abi::GuestError {
    fn from(error: Error) -> Self {
        Self {
            message: error.message,
            code: error.code,
            data: error.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_code_and_data() {
        let e = Error::new("nope")
            .with_code(7)
            .with_data(serde_json::json!({"x": 1}));
        assert_eq!(e.message, "nope");
        assert_eq!(e.code, Some(7));
        assert_eq!(e.data, Some(serde_json::json!({"x": 1})));
        assert_eq!(e.to_string(), "nope");
    }

    #[test]
    fn unserializable_data_becomes_a_message() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3);
        let e = Error::new("x").with_data(map);
        let data = e.data.unwrap();
        assert!(
            data.as_str()
                .unwrap()
                .starts_with("error data could not be serialized")
        );
    }

    #[test]
    fn converts_from_strings() {
        assert_eq!(Error::from("a"), Error::new("a"));
        assert_eq!(Error::from(String::from("b")), Error::new("b"));
    }
}
