//! Every failure fnhost reports, in one table.
//!
//! An [`Error`] is a [`Kind`] plus a human message and optional structured `data`. The kind
//! decides the JSON-RPC code and the HTTP status; nothing else in the crate picks a number.
//! `docs/ERRORS.md` mirrors [`Kind::ALL`]: a test checks that every kind is documented there.
//!
//! Internal details (paths, error chains) are logged where they happen and never put in a
//! message: messages and data are what a caller sees.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What went wrong, as a caller can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    // JSON-RPC 2.0's own codes.
    /// The body is not JSON (or not well-formed XML for XML-RPC).
    ParseError,
    /// JSON, but not a valid request object.
    InvalidRequest,
    /// No module or no function of that name.
    MethodNotFound,
    /// The params do not fit the function.
    InvalidParams,
    /// A fault of the host itself; details are in the host's log.
    Internal,
    // fnhost's own, in -32000..-32099.
    /// The call used up its fuel (CPU budget).
    OutOfFuel,
    /// The call ran past its wall-clock deadline.
    DeadlineExceeded,
    /// The guest asked for more linear memory or table space than it may have.
    MemoryLimit,
    /// The guest's wasm stack overflowed (deep recursion).
    StackOverflow,
    /// The guest trapped (`unreachable`, out-of-bounds access, division by zero, ...).
    GuestTrap,
    /// The guest's output broke the ABI (bad pointer or length, bad UTF-8 or JSON, bad status).
    BadGuestOutput,
    /// Too many calls in flight; try again later.
    Busy,
    /// The guest returned an error of its own.
    GuestError,
    /// The module is registered but cannot be served (its stored bytes failed verification).
    ModuleUnavailable,
    // Admin API only.
    /// Missing or wrong admin token.
    Unauthorized,
    /// A module name outside `[a-z][a-z0-9_-]{0,62}`, or a reserved one.
    BadName,
    /// The uploaded bytes are not an acceptable module (not wasm, wrong ABI, bad import, ...).
    BadModule,
    /// A requested limit is malformed or above the host's maximum.
    BadLimits,
    /// A body larger than the limit of its route.
    PayloadTooLarge,
    /// No such module (admin API).
    NotFound,
}

impl Kind {
    /// Every kind, in the order `docs/ERRORS.md` lists them.
    pub const ALL: [Kind; 20] = [
        Kind::ParseError,
        Kind::InvalidRequest,
        Kind::MethodNotFound,
        Kind::InvalidParams,
        Kind::Internal,
        Kind::OutOfFuel,
        Kind::DeadlineExceeded,
        Kind::MemoryLimit,
        Kind::StackOverflow,
        Kind::GuestTrap,
        Kind::BadGuestOutput,
        Kind::Busy,
        Kind::GuestError,
        Kind::ModuleUnavailable,
        Kind::Unauthorized,
        Kind::BadName,
        Kind::BadModule,
        Kind::BadLimits,
        Kind::PayloadTooLarge,
        Kind::NotFound,
    ];

    /// The JSON-RPC error code (also the XML-RPC faultCode).
    pub const fn code(self) -> i64 {
        match self {
            Kind::ParseError => -32700,
            Kind::InvalidRequest => -32600,
            Kind::MethodNotFound => -32601,
            Kind::InvalidParams => -32602,
            Kind::Internal => -32603,
            Kind::OutOfFuel => -32000,
            Kind::DeadlineExceeded => -32001,
            Kind::MemoryLimit => -32002,
            Kind::StackOverflow => -32003,
            Kind::GuestTrap => -32004,
            Kind::BadGuestOutput => -32005,
            Kind::Busy => -32006,
            Kind::ModuleUnavailable => -32007,
            Kind::GuestError => -32010,
            Kind::Unauthorized => -32040,
            Kind::BadName => -32041,
            Kind::BadModule => -32042,
            Kind::BadLimits => -32043,
            Kind::PayloadTooLarge => -32044,
            Kind::NotFound => -32045,
        }
    }

    /// The HTTP status the admin API answers with (and `/rpc` for transport-level failures).
    pub const fn status(self) -> StatusCode {
        match self {
            Kind::ParseError
            | Kind::InvalidRequest
            | Kind::InvalidParams
            | Kind::BadName
            | Kind::BadLimits => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::MethodNotFound | Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::BadModule => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Busy | Kind::ModuleUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::OutOfFuel
            | Kind::DeadlineExceeded
            | Kind::MemoryLimit
            | Kind::StackOverflow
            | Kind::GuestTrap
            | Kind::BadGuestOutput
            | Kind::GuestError => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// A stable snake_case name, put in every error's `data.kind` so clients can match on it.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::ParseError => "parse_error",
            Kind::InvalidRequest => "invalid_request",
            Kind::MethodNotFound => "method_not_found",
            Kind::InvalidParams => "invalid_params",
            Kind::Internal => "internal_error",
            Kind::OutOfFuel => "out_of_fuel",
            Kind::DeadlineExceeded => "deadline_exceeded",
            Kind::MemoryLimit => "memory_limit",
            Kind::StackOverflow => "stack_overflow",
            Kind::GuestTrap => "guest_trap",
            Kind::BadGuestOutput => "bad_guest_output",
            Kind::Busy => "busy",
            Kind::GuestError => "guest_error",
            Kind::ModuleUnavailable => "module_unavailable",
            Kind::Unauthorized => "unauthorized",
            Kind::BadName => "bad_name",
            Kind::BadModule => "bad_module",
            Kind::BadLimits => "bad_limits",
            Kind::PayloadTooLarge => "payload_too_large",
            Kind::NotFound => "not_found",
        }
    }
}

/// A failure as a caller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: Kind,
    /// Says what happened, for a person.
    pub message: String,
    /// Structured details: always an object with at least `kind`.
    pub data: Value,
    /// The guest's own code, for guest errors that carry one outside the reserved range.
    pub guest_code: Option<i64>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            data: json!({ "kind": kind.name() }),
            guest_code: None,
        }
    }

    /// Adds one member to `data`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.data {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// The JSON-RPC code: the kind's, or the guest's own for guest errors that set one.
    pub fn code(&self) -> i64 {
        self.guest_code.unwrap_or(self.kind.code())
    }

    /// The JSON-RPC `error` object.
    pub fn to_rpc_object(&self) -> Value {
        json!({ "code": self.code(), "message": self.message, "data": self.data })
    }

    pub fn internal() -> Self {
        Self::new(
            Kind::Internal,
            "internal error; the host's log has the details",
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.name(),
            self.code(),
            self.message
        )
    }
}

impl std::error::Error for Error {}

/// Admin API errors answer `{"error": {code, kind, message, data}}` with the kind's status.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "code": self.code(),
            "kind": self.kind.name(),
            "message": self.message,
            "data": self.data,
        }});
        (self.kind.status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_names_are_unique_and_ours_are_in_range() {
        let codes: HashSet<i64> = Kind::ALL.iter().map(|k| k.code()).collect();
        let names: HashSet<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(codes.len(), Kind::ALL.len());
        assert_eq!(names.len(), Kind::ALL.len());
        for k in Kind::ALL {
            let c = k.code();
            assert!(
                (-32099..=-32000).contains(&c) || (-32768..=-32600).contains(&c),
                "{k:?} has code {c} outside the reserved ranges"
            );
        }
    }

    #[test]
    fn every_kind_is_documented() {
        let doc = include_str!("../../docs/ERRORS.md");
        for k in Kind::ALL {
            let row = format!(
                "| {} | `{}` | {} |",
                k.code(),
                k.name(),
                k.status().as_u16()
            );
            assert!(doc.contains(&row), "docs/ERRORS.md lacks the row `{row}`");
        }
    }

    #[test]
    fn data_always_names_the_kind_and_collects_members() {
        let e = Error::new(Kind::OutOfFuel, "x")
            .with("limit", 5)
            .with("module", "m");
        assert_eq!(
            e.data,
            json!({"kind": "out_of_fuel", "limit": 5, "module": "m"})
        );
        assert_eq!(e.to_rpc_object()["code"], -32000);
    }

    #[test]
    fn guest_code_overrides() {
        let mut e = Error::new(Kind::GuestError, "nope");
        assert_eq!(e.code(), -32010);
        e.guest_code = Some(42);
        assert_eq!(e.code(), 42);
    }
}
