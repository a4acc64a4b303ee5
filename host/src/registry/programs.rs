//! Compiled programs by digest, shared by every name whose current bytes are the same: one
//! compile and one `InstancePre` per module, however many names serve it. Held weakly, so a
//! program goes away with the last entry (or call) that uses it.
//!
//! Loading a program reads the module bytes from the store (which checks them against their
//! sha256), then loads the cached artifact, or compiles and caches one.

use std::sync::{Arc, Weak};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as Slot;

use crate::artifacts::ArtifactCache;
use crate::digest::Digest;
use crate::sandbox::{Program, Sandbox};
use crate::store::{Store, StoreErrorKind};

#[derive(Debug)]
pub(super) struct Programs {
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
    artifacts: Arc<ArtifactCache>,
    by_digest: DashMap<Digest, Weak<Program>>,
    stats: Arc<crate::metrics::HostStats>,
}

impl Programs {
    pub(super) fn new(
        store: Arc<dyn Store>,
        sandbox: Arc<Sandbox>,
        artifacts: Arc<ArtifactCache>,
        stats: Arc<crate::metrics::HostStats>,
    ) -> Self {
        Self {
            store,
            sandbox,
            artifacts,
            by_digest: DashMap::new(),
            stats,
        }
    }

    /// The program already compiled or loaded for `digest`, if any name still uses it.
    pub(super) fn get(&self, digest: &Digest) -> Option<Arc<Program>> {
        self.by_digest.get(digest).and_then(|p| p.upgrade())
    }

    /// Makes `program` the one every name with its digest shares, unless one raced it there.
    pub(super) fn share(&self, program: Arc<Program>) -> Arc<Program> {
        let shared = match self.by_digest.entry(program.digest) {
            Slot::Occupied(mut slot) => match slot.get().upgrade() {
                Some(existing) => existing,
                None => {
                    slot.insert(Arc::downgrade(&program));
                    program
                }
            },
            Slot::Vacant(slot) => {
                slot.insert(Arc::downgrade(&program));
                program
            }
        };
        // Programs no name uses any more leave only a dead weak pointer: drop those.
        self.by_digest.retain(|_, p| p.strong_count() > 0);
        shared
    }

    /// Loads the program of `digest` for `name`: shared if another name has it, else from the
    /// store's verified bytes and the artifact cache (or a compile). `Err` says why it cannot be
    /// served, as callers and the admin API show it; the details are logged.
    pub(super) async fn load(
        &self,
        name: &Arc<str>,
        digest: Digest,
    ) -> Result<Arc<Program>, String> {
        if let Some(program) = self.get(&digest) {
            return Ok(program);
        }
        let bytes = self.store.module(&digest).await.map_err(|e| {
            if e.kind == StoreErrorKind::Corrupt {
                tracing::error!(%name, %digest, error = %e, "stored module bytes do not match their sha256; not served");
                "its stored module bytes do not match their sha256".to_owned()
            } else {
                tracing::error!(%name, %digest, error = %e, "module bytes unreadable; not served");
                "its stored module bytes cannot be read".to_owned()
            }
        })?;
        let (sandbox, artifacts, name) =
            (self.sandbox.clone(), self.artifacts.clone(), name.clone());
        let stats = self.stats.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            load_program(&sandbox, &artifacts, &stats, &name, digest, &bytes)
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "loading a module failed");
            Err("loading it failed; the host's log has the details".to_owned())
        })?;
        Ok(self.share(loaded))
    }
}

/// Loads the cached artifact of verified `bytes`, or compiles them and caches one (blocking).
fn load_program(
    sandbox: &Sandbox,
    artifacts: &ArtifactCache,
    stats: &crate::metrics::HostStats,
    name: &str,
    digest: Digest,
    bytes: &[u8],
) -> Result<Arc<Program>, String> {
    use std::sync::atomic::Ordering::Relaxed;
    if let Some(artifact) = artifacts.verified(&digest) {
        match sandbox.load_artifact(digest, bytes, &artifact) {
            Ok(program) => {
                stats.artifact_hits.fetch_add(1, Relaxed);
                tracing::info!(name, %digest, from = "artifact", "module loaded");
                return Ok(Arc::new(program));
            }
            Err(e) => tracing::warn!(name, %digest, error = %e, "artifact unusable; recompiling"),
        }
    }
    stats.artifact_misses.fetch_add(1, Relaxed);
    let started = std::time::Instant::now();
    let compiled = sandbox.compile(digest, bytes).map_err(|e| {
        tracing::error!(name, %digest, error = %e, "stored module no longer compiles");
        format!("it no longer compiles: {}", e.message)
    })?;
    stats.compiled(started.elapsed());
    if let Err(e) = artifacts.put(&digest, &compiled.artifact) {
        tracing::warn!(%digest, error = %e, "cannot cache the compiled artifact");
    }
    tracing::info!(name, %digest, from = "compile", "module loaded");
    Ok(Arc::new(compiled.program))
}
