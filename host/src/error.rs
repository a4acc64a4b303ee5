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

/// Declares [`Kind`] from one table: each row is a kind with its JSON-RPC code, HTTP status,
/// stable name and meaning. Everything that maps a kind to a number or a string is generated
/// from the row, so nothing can drift; `docs/ERRORS.md` mirrors the table (a test checks).
macro_rules! kinds {
    ($( $(#[$attr:meta])* $kind:ident => $code:literal, $status:ident, $name:literal, $meaning:literal; )*) => {
        /// What went wrong, as a caller can act on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $( $(#[$attr])* #[doc = $meaning] $kind, )*
        }

        impl Kind {
            /// Every kind, in the order `docs/ERRORS.md` lists them.
            pub const ALL: [Kind; [$(Kind::$kind),*].len()] = [$(Kind::$kind),*];

            /// The JSON-RPC error code (also the XML-RPC faultCode).
            pub const fn code(self) -> i64 {
                match self { $(Kind::$kind => $code,)* }
            }

            /// The HTTP status of the admin API (and of `/rpc` for transport-level failures).
            pub const fn status(self) -> StatusCode {
                match self { $(Kind::$kind => StatusCode::$status,)* }
            }

            /// A stable snake_case name, put in every error's `data.kind` so clients can match on it.
            pub const fn name(self) -> &'static str {
                match self { $(Kind::$kind => $name,)* }
            }

            /// What the kind means, in one sentence (the table's last column).
            pub const fn meaning(self) -> &'static str {
                match self { $(Kind::$kind => $meaning,)* }
            }
        }
    };
}

kinds! {
    // JSON-RPC 2.0's own codes.
    ParseError => -32700, BAD_REQUEST, "parse_error",
        "The body is not JSON (or not well-formed XML for XML-RPC).";
    InvalidRequest => -32600, BAD_REQUEST, "invalid_request",
        "JSON, but not a valid request object.";
    MethodNotFound => -32601, NOT_FOUND, "method_not_found",
        "No module or no function of that name.";
    InvalidParams => -32602, BAD_REQUEST, "invalid_params",
        "The params do not fit the function.";
    Internal => -32603, INTERNAL_SERVER_ERROR, "internal_error",
        "A fault of the host itself; details are in the host's log.";
    // fnhost's own, in -32000..-32099.
    OutOfFuel => -32000, UNPROCESSABLE_ENTITY, "out_of_fuel",
        "The call used up its fuel (CPU budget).";
    DeadlineExceeded => -32001, UNPROCESSABLE_ENTITY, "deadline_exceeded",
        "The call ran past its wall-clock deadline.";
    MemoryLimit => -32002, UNPROCESSABLE_ENTITY, "memory_limit",
        "The guest asked for more linear memory or table space than it may have.";
    StackOverflow => -32003, UNPROCESSABLE_ENTITY, "stack_overflow",
        "The guest's wasm stack overflowed (deep recursion).";
    GuestTrap => -32004, UNPROCESSABLE_ENTITY, "guest_trap",
        "The guest trapped (`unreachable`, out-of-bounds access, division by zero, ...).";
    BadGuestOutput => -32005, UNPROCESSABLE_ENTITY, "bad_guest_output",
        "The guest's output broke the ABI (bad pointer or length, bad UTF-8 or JSON, bad status).";
    Busy => -32006, SERVICE_UNAVAILABLE, "busy",
        "Too many calls (or compiles) in flight; try again later.";
    GuestError => -32010, UNPROCESSABLE_ENTITY, "guest_error",
        "The guest returned an error of its own.";
    ModuleUnavailable => -32007, SERVICE_UNAVAILABLE, "module_unavailable",
        "The module is registered but cannot be served (its stored bytes failed verification).";
    // Admin API only.
    Unauthorized => -32040, UNAUTHORIZED, "unauthorized",
        "Missing or wrong admin token.";
    BadName => -32041, BAD_REQUEST, "bad_name",
        "A module name outside `[a-z][a-z0-9_-]{0,62}`, or a reserved one.";
    BadModule => -32042, UNPROCESSABLE_ENTITY, "bad_module",
        "The uploaded bytes are not an acceptable module (not wasm, wrong ABI, bad import, ...).";
    BadLimits => -32043, BAD_REQUEST, "bad_limits",
        "A requested limit is malformed or above the host's maximum.";
    PayloadTooLarge => -32044, PAYLOAD_TOO_LARGE, "payload_too_large",
        "A body larger than the limit of its route.";
    NotFound => -32045, NOT_FOUND, "not_found",
        "No such module (admin API).";
    StoreFull => -32046, INSUFFICIENT_STORAGE, "store_full",
        "The store has no space left for the write; nothing was changed.";
    RequestTimeout => -32047, REQUEST_TIMEOUT, "request_timeout",
        "The request body did not arrive within the body timeout; nothing was run.";
    Forbidden => -32048, FORBIDDEN, "forbidden",
        "The caller may not do this (its address, or its key's scope).";
    RateLimited => -32049, TOO_MANY_REQUESTS, "rate_limited",
        "The caller is over its rate of calls; retry after `data.retry_after_ms`.";
    StoreUnavailable => -32050, SERVICE_UNAVAILABLE, "store_unavailable",
        "The shared store (database) cannot be reached; nothing was changed, calls keep serving.";
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

    /// `busy`: `scope` (`host`, `module`, `compile`, ...) is at its `limit`; `message` says
    /// what is full and that trying again later helps.
    pub fn busy(scope: &'static str, limit: impl Into<Value>, message: impl Into<String>) -> Self {
        Self::new(Kind::Busy, message)
            .with("limit", limit)
            .with("scope", scope)
    }

    /// The admin API's answer for a name that is not deployed.
    pub fn not_found(name: &str) -> Self {
        Self::new(
            Kind::NotFound,
            format!("no module named `{name}` is deployed"),
        )
        .with("name", name)
    }

    /// `payload_too_large`: `what` (the request body, a module, a line) is over `limit` bytes.
    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            Kind::PayloadTooLarge,
            format!("the {what} is larger than the limit of {limit} bytes"),
        )
        .with("limit_bytes", limit)
    }

    /// `store_full`: a write found no space; nothing was changed. The path and the OS error
    /// are logged where it happened, never sent.
    pub fn store_unavailable() -> Self {
        Self::new(
            Kind::StoreUnavailable,
            "the host's store cannot be reached; nothing was changed and the current version \
             keeps serving: retry shortly",
        )
    }

    pub fn store_full() -> Self {
        Self::new(
            Kind::StoreFull,
            "the host's store is out of space; nothing was changed and the current version \
             keeps serving",
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
    fn every_kind_has_a_full_row() {
        for k in Kind::ALL {
            let status = k.status().as_u16();
            assert!(
                (400..600).contains(&status),
                "{k:?} has status {status}, not an error status"
            );
            assert!(!k.meaning().is_empty(), "{k:?} has no meaning");
            assert_eq!(Kind::ALL[k as usize], k, "ALL is in declaration order");
        }
    }

    #[test]
    fn the_doc_has_no_row_for_a_kind_that_does_not_exist() {
        let doc = include_str!("../../docs/ERRORS.md");
        let rows = doc
            .lines()
            .filter(|l| l.starts_with("| -32") && l.matches('`').count() >= 2)
            .count();
        assert_eq!(rows, Kind::ALL.len(), "docs/ERRORS.md's table rows");
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
