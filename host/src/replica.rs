//! Keeping a replica in step with a store that several hosts share (PostgreSQL).
//!
//! Every change (a deploy, rollback or removal of a name; a key created or revoked) is numbered
//! by the store and announced ([`Store::watch`]). Announcements can be missed (a connection
//! lost while one was sent), so a replica never trusts them alone: it keeps the number of the
//! last change it applied and, on every announcement, every reconnect and every
//! [`POLL`] anyway, asks the store for the changes after it ([`Store::changes_since`]) and
//! applies each by reading the current state of what changed. Applying is idempotent, so a
//! change seen twice (its own deploy, an announcement and a poll) does nothing the second time.
//!
//! Readiness ([`Replica::readiness`], `GET /readyz`): a replica is caught up when the store is
//! reachable and its last catch-up succeeded within [`STALE_AFTER`]. Calls never wait for
//! either: a replica serves what it has from memory.
//!
//! A store only one host uses has no watch; then nothing here runs and the host is always
//! ready.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::App;
use crate::store::{Changed, Store, StoreError};

/// How often a replica catches up when no announcement arrives.
pub const POLL: Duration = Duration::from_millis(500);

/// A replica whose last successful catch-up is older than this is not ready.
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// A replica's progress through the store's changes.
#[derive(Debug)]
pub struct Replica {
    /// Whether the store is shared (it has announcements); a local store is always ready.
    shared: bool,
    /// The number of the last change applied.
    applied: AtomicU64,
    /// When the last catch-up succeeded, and the last failure's cause since then.
    synced: Mutex<(Option<Instant>, Option<String>)>,
}

/// What `/readyz` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    pub json: Value,
}

impl Replica {
    /// A replica that has applied every change up to `applied` (read before the registry
    /// loaded the names, so nothing between the two is missed).
    pub fn new(store: &dyn Store, applied: u64) -> Self {
        Self {
            shared: store.watch().is_some(),
            applied: AtomicU64::new(applied),
            synced: Mutex::new((Some(Instant::now()), None)),
        }
    }

    pub fn applied(&self) -> u64 {
        self.applied.load(Relaxed)
    }

    fn synced(&self) -> std::sync::MutexGuard<'_, (Option<Instant>, Option<String>)> {
        self.synced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn readiness(&self, store: &dyn Store) -> Readiness {
        if !self.shared {
            return Readiness {
                ready: true,
                json: json!({ "ready": true, "store": "local" }),
            };
        }
        let (last, error) = self.synced().clone();
        let age = last.map(|t| t.elapsed());
        let why = if !store.healthy() {
            Some("the store's connection is down".to_owned())
        } else if age.is_none_or(|a| a > STALE_AFTER) {
            Some(match error {
                Some(e) => format!("cannot catch up with the store: {e}"),
                None => "not caught up with the store yet".to_owned(),
            })
        } else {
            None
        };
        Readiness {
            ready: why.is_none(),
            json: json!({
                "ready": why.is_none(),
                "store": "shared",
                "applied_change": self.applied(),
                "last_sync_ms_ago": age.map(|a| a.as_millis() as u64),
                "why": why,
            }),
        }
    }
}

/// Applies the changes after the last applied one; returns how many there were.
pub async fn catch_up(app: &Arc<App>) -> Result<usize, StoreError> {
    let result = apply_changes(app).await;
    let mut synced = app.replica.synced();
    match &result {
        Ok(_) => *synced = (Some(Instant::now()), None),
        Err(e) => synced.1 = Some(e.to_string()),
    }
    result
}

async fn apply_changes(app: &Arc<App>) -> Result<usize, StoreError> {
    let store = app.registry.store().clone();
    let changes = store.changes_since(app.replica.applied()).await?;
    let Some(last) = changes.last().map(|c| c.seq) else {
        return Ok(0);
    };
    let mut names = BTreeSet::new();
    let mut keys = false;
    for change in &changes {
        match &change.what {
            Changed::Name(name) => {
                names.insert(name.clone());
            }
            Changed::Key(_) => keys = true,
        }
    }
    if keys {
        app.keys.refresh().await?;
    }
    for name in names {
        if let Some(entry) = app.registry.sync_name(&name).await? {
            // Load (from the local artifact cache, or compile) now, off this loop, so the
            // first call does not wait for it and never reads the store.
            let weak = Arc::downgrade(app);
            tokio::spawn(async move {
                if let Some(app) = weak.upgrade() {
                    let _ = app.registry.program(&entry).await;
                }
            });
        }
    }
    app.replica.applied.fetch_max(last, Relaxed);
    Ok(changes.len())
}

/// Starts the catch-up loop for a shared store: on every announcement, and every [`POLL`].
/// Ends with the host.
pub fn spawn(app: &Arc<App>) {
    let Some(mut announcements) = app.registry.store().watch() else {
        return;
    };
    let weak: Weak<App> = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                got = announcements.recv() => match got {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => {
                        let Some(app) = weak.upgrade() else { return };
                        match app.registry.store().watch() {
                            Some(next) => announcements = next,
                            None => return,
                        }
                    }
                },
                () = tokio::time::sleep(POLL) => {}
            }
            let Some(app) = weak.upgrade() else { return };
            match catch_up(&app).await {
                Ok(n) => {
                    if failing {
                        tracing::info!(
                            applied = app.replica.applied(),
                            "caught up with the store again"
                        );
                    }
                    failing = false;
                    if n > 0 {
                        tracing::debug!(changes = n, applied = app.replica.applied(), "caught up");
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot catch up with the store; serving what is loaded, retrying");
                    }
                    failing = true;
                }
            }
        }
    });
}
