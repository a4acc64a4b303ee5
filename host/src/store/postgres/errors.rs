//! Driver and pool errors typed as [`StoreErrorKind`]s (docs/STORAGE.md has the table), and
//! the JSON records' encoding, whose failures are `Corrupt`.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::{StoreError, StoreErrorKind};

/// A driver error, typed by SQLSTATE (or as `Backend`: a lost connection, ...).
pub fn pg_error(what: &str, e: tokio_postgres::Error) -> StoreError {
    let kind = match e.code() {
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::FOREIGN_KEY_VIOLATION
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreErrorKind::Conflict
        }
        Some(c) if *c == SqlState::DISK_FULL => StoreErrorKind::OutOfSpace,
        _ => StoreErrorKind::Backend,
    };
    // The server's detail lines may quote values; its message and code are enough. Other
    // errors say what failed, and their cause why (`Connection refused`).
    let message = match (e.as_db_error(), std::error::Error::source(&e)) {
        (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    };
    StoreError::new(kind, format!("postgres: {what}: {message}"))
}

/// No connection within the wait, or none could be made: `Backend`.
pub fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_error("connect", e),
        other => StoreError::new(
            StoreErrorKind::Backend,
            format!("postgres: no connection: {other}"),
        ),
    }
}

pub fn corrupt(what: impl std::fmt::Display, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format!("postgres: {what}: {e}"))
}

pub fn decode<T: serde::de::DeserializeOwned>(
    what: impl std::fmt::Display,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| corrupt(what, e))
}

pub fn encode<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value)
        .map_err(|e| StoreError::new(StoreErrorKind::Backend, format!("encode a record: {e}")))
}
