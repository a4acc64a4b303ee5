//! Everything fnhost persists, behind one async trait: module bytes by digest, and name records
//! with their version history.
//!
//! [`Store`] is the seam between the registry and a backend. The embedded [`FileStore`] (the
//! default: a data directory where every write is a rename) and the in-memory [`MemoryStore`]
//! (fast unit tests, fault injection) implement it, and so does [`PostgresStore`], for hosts
//! that share one registry; every backend passes the same [`contract`] suite. Precompiled
//! artifacts are not here: they are a local cache of one engine's machine code
//! ([`crate::artifacts`]), whatever the backend.
//!
//! Errors are typed by cause ([`StoreErrorKind`]) so the registry can tell a caller "the store
//! is full" (507) without ever showing a path; the detail goes to the host's log.
//! `docs/STORAGE.md` describes the contract and each backend's layout.

mod atomic;
#[cfg(any(test, feature = "store-contract"))]
pub mod contract;
mod file;
mod memory;
mod postgres;
mod records;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::LimitOverrides;
use crate::digest::Digest;
use crate::error::Error;

pub use atomic::{clear_dir, write_atomic};
pub use file::FileStore;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use postgres::migrate::{MIGRATIONS, Migration};
pub use records::{Access, AuditEntry, KeyRecord, Role};

/// One deployed version of a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// 1, 2, 3, ... per name, assigned by the store when the version is committed.
    pub version: u32,
    pub sha256: Digest,
    /// Module size in bytes.
    pub size: u64,
    /// RFC 3339, UTC, seconds.
    pub deployed_at: String,
    /// Limits the deployer asked for.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// The module's functions (its metadata), so listings need not load the module.
    #[serde(default)]
    pub functions: Vec<fnhost_abi::FunctionMeta>,
    /// Who may call it (CIDRs, within the host's `--allow-from`); empty: the host's callers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<ipnet::IpNet>,
    /// Who may call it.
    #[serde(default, skip_serializing_if = "is_public")]
    pub access: Access,
}

fn is_public(a: &Access) -> bool {
    *a == Access::Public
}

/// A name and its history; the last version is the one served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameRecord {
    pub name: String,
    pub versions: Vec<VersionRecord>,
}

impl NameRecord {
    pub fn current(&self) -> Option<&VersionRecord> {
        self.versions.last()
    }
}

/// A version about to be committed: everything but its number, which the store assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub sha256: Digest,
    pub size: u64,
    pub deployed_at: String,
    pub limits: LimitOverrides,
    pub functions: Vec<fnhost_abi::FunctionMeta>,
    pub allow_from: Vec<ipnet::IpNet>,
    pub access: Access,
}

impl NewVersion {
    /// The record of this version once it is number `version`.
    pub fn numbered(self, version: u32) -> VersionRecord {
        VersionRecord {
            version,
            sha256: self.sha256,
            size: self.size,
            deployed_at: self.deployed_at,
            limits: self.limits,
            functions: self.functions,
            allow_from: self.allow_from,
            access: self.access,
        }
    }
}

/// How much a store holds, for tests and gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Distinct module byte strings stored.
    pub modules: usize,
    /// Their total size.
    pub module_bytes: u64,
    /// Names with a history.
    pub names: usize,
}

/// The persistent state of a host. Implementations are safe to share between tasks; every
/// write is atomic (a crash or an error leaves the old state or the new one, never a mix).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Where the data lives, for the log (may name a path or a server; never a secret).
    fn describe(&self) -> String;

    /// Appends `version` to `name`'s history as its new current version, numbered one past the
    /// last, and returns the whole record. With `bytes`, they are stored under `version.sha256`
    /// in the same step (stored once, however many names or versions use them); without, the
    /// bytes must already be stored ([`StoreErrorKind::NotFound`] otherwise). Concurrent
    /// commits to one name each get their own number; none is lost.
    async fn commit_version(
        &self,
        name: &str,
        version: NewVersion,
        bytes: Option<Arc<[u8]>>,
    ) -> Result<NameRecord, StoreError>;

    /// The module bytes of `digest`, checked against it ([`StoreErrorKind::Corrupt`] when they
    /// no longer match, [`StoreErrorKind::NotFound`] when absent).
    async fn module(&self, digest: &Digest) -> Result<Arc<[u8]>, StoreError>;

    /// One name's record.
    async fn name(&self, name: &str) -> Result<Option<NameRecord>, StoreError>;

    /// Every name's record, sorted by name. A record the backend cannot read is logged and
    /// skipped, so one damaged record does not stop a host from starting.
    async fn names(&self) -> Result<Vec<NameRecord>, StoreError>;

    /// Removes `name` and its history; returns what was removed, `None` when there was none.
    /// Module bytes stay until [`Store::collect_garbage`].
    async fn remove_name(&self, name: &str) -> Result<Option<NameRecord>, StoreError>;

    /// Deletes module bytes that no name's history refers to; returns how many.
    async fn collect_garbage(&self) -> Result<usize, StoreError>;

    /// What the store holds.
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Stores a key (a new one, or an update of the one with its id), atomically.
    async fn put_key(&self, key: KeyRecord) -> Result<(), StoreError>;

    /// Every key, sorted by id.
    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Removes a key; returns it, `None` when there was none.
    async fn delete_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Appends to the audit log, numbering the entry one past the last; returns its number.
    /// Entries are never changed or removed.
    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError>;

    /// Audit entries numbered above `after`, oldest first, at most `limit`.
    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// For a store that several hosts share: the changes (to names and keys) numbered above
    /// `after`, oldest first, so a replica catches up with what others did. A store only one
    /// host uses has none to report.
    async fn changes_since(&self, _after: u64) -> Result<Vec<Change>, StoreError> {
        Ok(Vec::new())
    }

    /// The number of the last change (0 when there is none, or the store is not shared).
    async fn last_change(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Announcements of new changes (their numbers), for a store that several hosts share;
    /// `None` otherwise. Announcements may be missed (a lost connection): replicas also poll
    /// [`Store::changes_since`].
    fn watch(&self) -> Option<tokio::sync::broadcast::Receiver<u64>> {
        None
    }

    /// Whether the store is reachable now (a shared store's connection); always for a local one.
    fn healthy(&self) -> bool {
        true
    }
}

/// One change to a shared store, as replicas learn of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Numbered by the store, increasing.
    pub seq: u64,
    pub what: Changed,
}

/// What changed: a name's history (deployed, rolled back or removed), or a key (created or
/// revoked). Replicas read the current state of it from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Changed {
    Name(String),
    Key(String),
}

/// Why a store operation failed, as the registry can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// What was asked for is not there.
    NotFound,
    /// Stored bytes no longer match their digest (or a record cannot be decoded).
    Corrupt,
    /// A concurrent writer got there first, or the write contradicts what is stored.
    Conflict,
    /// No space left (disk full, quota): nothing was written.
    OutOfSpace,
    /// The backend failed otherwise (I/O error, connection lost, ...).
    Backend,
}

/// A failed store operation: its cause, and a detail for the host's log (it may name a path or
/// a server, so it is never sent to a caller).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub detail: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// An I/O error while doing `what`, typed by its cause.
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => StoreErrorKind::NotFound,
            K::StorageFull | K::QuotaExceeded | K::FileTooLarge => StoreErrorKind::OutOfSpace,
            K::InvalidData => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Backend,
        };
        Self::new(kind, format!("{what}: {e}"))
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == StoreErrorKind::NotFound
    }
}

/// What a caller is told: a full store is `store_full` (507), an unreachable one (a shared
/// database down, an I/O error) `store_unavailable` (503, retry); anything else is an internal
/// error. The detail is logged here, never sent.
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, kind = ?e.kind, "store operation failed");
        match e.kind {
            StoreErrorKind::OutOfSpace => Error::store_full(),
            StoreErrorKind::Backend => Error::store_unavailable(),
            _ => Error::internal(),
        }
    }
}

/// Opens the store `config` names: PostgreSQL for a `postgres://` (or `postgresql://`)
/// `store_url`, otherwise the embedded file store in the data directory.
pub async fn open(config: &crate::Config) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(url) = &config.store_url {
        return match crate::config::store_scheme(url) {
            Some("postgres" | "postgresql") => {
                let store = PostgresStore::open(url).await?;
                tracing::info!(store = %store.describe(), "opened the store");
                Ok(Arc::new(store))
            }
            other => Err(StoreError::new(
                StoreErrorKind::Backend,
                format!(
                    "no store backend for {:?} URLs (postgres:// is the one there is)",
                    other.unwrap_or_default()
                ),
            )),
        };
    }
    let root = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || FileStore::open(&root))
        .await
        .map_err(|e| StoreError::new(StoreErrorKind::Backend, e.to_string()))??;
    Ok(Arc::new(store))
}

/// The version history `record` gets when `version` is committed to it (the number assigned).
pub(crate) fn append(record: Option<NameRecord>, name: &str, version: NewVersion) -> NameRecord {
    let mut record = record.unwrap_or_else(|| NameRecord {
        name: name.to_owned(),
        versions: Vec::new(),
    });
    let number = record.current().map_or(1, |v| v.version + 1);
    record.versions.push(version.numbered(number));
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn io_errors_are_typed_by_cause() {
        use std::io::{Error as E, ErrorKind as K};
        let kind = |k| StoreError::io("write x", &E::from(k)).kind;
        assert_eq!(kind(K::StorageFull), StoreErrorKind::OutOfSpace);
        assert_eq!(kind(K::QuotaExceeded), StoreErrorKind::OutOfSpace);
        assert_eq!(kind(K::NotFound), StoreErrorKind::NotFound);
        assert_eq!(kind(K::PermissionDenied), StoreErrorKind::Backend);
        // ENOSPC as the OS reports it.
        let enospc = StoreError::io("write x", &E::from_raw_os_error(28));
        assert_eq!(enospc.kind, StoreErrorKind::OutOfSpace);
    }

    #[test]
    fn callers_are_told_full_or_internal_without_the_detail() {
        let full: Error =
            StoreError::new(StoreErrorKind::OutOfSpace, "/secret/path: ENOSPC").into();
        assert_eq!(full.kind, Kind::StoreFull);
        assert_eq!(full.kind.status().as_u16(), 507);
        assert!(!full.message.contains("/secret"), "{}", full.message);
        let down: Error = StoreError::new(StoreErrorKind::Backend, "/secret/path: EIO").into();
        assert_eq!(down.kind, Kind::StoreUnavailable);
        assert_eq!(down.kind.status().as_u16(), 503);
        assert!(!down.message.contains("/secret"));
        let other: Error = StoreError::new(StoreErrorKind::Corrupt, "/secret/path: bad").into();
        assert_eq!(other.kind, Kind::Internal);
        assert!(!other.message.contains("/secret"));
    }
}
