//! A store in memory: nothing survives the process. For fast unit tests of everything above
//! the seam, and for fault injection ([`MemoryStore::fail_next`], [`MemoryStore::corrupt`]):
//! what a real backend does only on a full disk or a flipped bit, this one does on request.
//! [`MemoryStore::shared`] makes one that several hosts in one process share, numbering and
//! announcing its changes as a database backend does, so replica behaviour is testable without
//! a database ([`MemoryStore::mute`] drops announcements, as a lost connection would).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    AuditEntry, Change, Changed, KeyRecord, NameRecord, NewVersion, Store, StoreError,
    StoreErrorKind, StoreStats, append,
};
use crate::digest::Digest;

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Set for a shared store: where changes are announced.
    announce: Option<broadcast::Sender<u64>>,
    /// Announcements are dropped (replicas must catch up by polling).
    muted: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    modules: HashMap<Digest, Arc<[u8]>>,
    names: BTreeMap<String, NameRecord>,
    keys: BTreeMap<String, KeyRecord>,
    audit: Vec<AuditEntry>,
    /// The next write fails with this kind, changing nothing.
    fail_next: Option<StoreErrorKind>,
    /// A shared store's changes, numbered from 1.
    changes: Vec<Change>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store several hosts share: changes are numbered and announced.
    pub fn shared() -> Self {
        Self {
            announce: Some(broadcast::channel(64).0),
            ..Self::default()
        }
    }

    /// Drops (`true`) or sends again (`false`) the announcements of changes.
    pub fn mute(&self, muted: bool) {
        self.muted.store(muted, Relaxed);
    }

    /// Records a change of a shared store and announces it, after `state` is released.
    fn changed(&self, mut state: MutexGuard<'_, State>, what: Changed) {
        if self.announce.is_none() {
            return;
        }
        let seq = state.changes.len() as u64 + 1;
        state.changes.push(Change { seq, what });
        drop(state);
        if let Some(tx) = &self.announce
            && !self.muted.load(Relaxed)
        {
            let _ = tx.send(seq);
        }
    }

    /// Makes the next write (commit, removal, collection) fail with `kind` and change nothing.
    pub fn fail_next(&self, kind: StoreErrorKind) {
        self.lock().fail_next = Some(kind);
    }

    /// Flips a bit of the stored bytes of `digest`, as a failing disk would.
    pub fn corrupt(&self, digest: &Digest) {
        let mut state = self.lock();
        if let Some(bytes) = state.modules.get_mut(digest) {
            let mut flipped = bytes.to_vec();
            if let Some(b) = flipped.first_mut() {
                *b ^= 0xff;
            }
            *bytes = Arc::from(flipped);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every write below builds its result before touching the state: nothing is left
        // half-done by a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn injected(&mut self) -> Result<(), StoreError> {
        match self.fail_next.take() {
            Some(kind) => Err(StoreError::new(kind, format!("injected {kind:?} failure"))),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory store".to_owned()
    }

    async fn commit_version(
        &self,
        name: &str,
        version: NewVersion,
        bytes: Option<Arc<[u8]>>,
    ) -> Result<NameRecord, StoreError> {
        let mut state = self.lock();
        state.injected()?;
        let digest = version.sha256;
        match bytes {
            Some(bytes) => {
                let intact = state
                    .modules
                    .get(&digest)
                    .is_some_and(|b| Digest::of(b) == digest);
                if !intact {
                    state.modules.insert(digest, bytes);
                }
            }
            None if state.modules.contains_key(&digest) => {}
            None => {
                return Err(StoreError::new(
                    StoreErrorKind::NotFound,
                    format!("no module {digest}"),
                ));
            }
        }
        let record = append(state.names.get(name).cloned(), name, version);
        state.names.insert(name.to_owned(), record.clone());
        self.changed(state, Changed::Name(name.to_owned()));
        Ok(record)
    }

    async fn module(&self, digest: &Digest) -> Result<Arc<[u8]>, StoreError> {
        let state = self.lock();
        let bytes = state.modules.get(digest).ok_or_else(|| {
            StoreError::new(StoreErrorKind::NotFound, format!("no module {digest}"))
        })?;
        if Digest::of(bytes) != *digest {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                format!("module {digest} does not match its sha256"),
            ));
        }
        Ok(bytes.clone())
    }

    async fn name(&self, name: &str) -> Result<Option<NameRecord>, StoreError> {
        Ok(self.lock().names.get(name).cloned())
    }

    async fn names(&self) -> Result<Vec<NameRecord>, StoreError> {
        Ok(self.lock().names.values().cloned().collect())
    }

    async fn remove_name(&self, name: &str) -> Result<Option<NameRecord>, StoreError> {
        let mut state = self.lock();
        state.injected()?;
        let removed = state.names.remove(name);
        if removed.is_some() {
            self.changed(state, Changed::Name(name.to_owned()));
        }
        Ok(removed)
    }

    async fn collect_garbage(&self) -> Result<usize, StoreError> {
        let mut state = self.lock();
        state.injected()?;
        let referenced: HashSet<Digest> = state
            .names
            .values()
            .flat_map(|r| r.versions.iter().map(|v| v.sha256))
            .collect();
        let before = state.modules.len();
        state.modules.retain(|d, _| referenced.contains(d));
        Ok(before - state.modules.len())
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let state = self.lock();
        Ok(StoreStats {
            modules: state.modules.len(),
            module_bytes: state.modules.values().map(|b| b.len() as u64).sum(),
            names: state.names.len(),
        })
    }

    async fn put_key(&self, key: KeyRecord) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.injected()?;
        let id = key.id.clone();
        state.keys.insert(id.clone(), key);
        self.changed(state, Changed::Key(id));
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.lock().keys.values().cloned().collect())
    }

    async fn delete_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let mut state = self.lock();
        state.injected()?;
        let removed = state.keys.remove(id);
        if removed.is_some() {
            self.changed(state, Changed::Key(id.to_owned()));
        }
        Ok(removed)
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        let mut state = self.lock();
        state.injected()?;
        let seq = state.audit.last().map_or(0, |e| e.seq) + 1;
        state.audit.push(AuditEntry { seq, ..entry });
        Ok(seq)
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .lock()
            .audit
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn changes_since(&self, after: u64) -> Result<Vec<Change>, StoreError> {
        let state = self.lock();
        Ok(state
            .changes
            .iter()
            .skip(usize::try_from(after).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn last_change(&self) -> Result<u64, StoreError> {
        Ok(self.lock().changes.len() as u64)
    }

    fn watch(&self) -> Option<broadcast::Receiver<u64>> {
        self.announce.as_ref().map(broadcast::Sender::subscribe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{self, Backend};

    /// One store that every `open` returns: "reopening" memory is looking at it again.
    struct Memory(Arc<MemoryStore>);

    #[async_trait]
    impl Backend for Memory {
        async fn open(&self) -> Arc<dyn Store> {
            self.0.clone()
        }

        async fn corrupt(&self, digest: &Digest) {
            self.0.corrupt(digest);
        }
    }

    crate::store_contract_tests!(Memory(Arc::new(MemoryStore::new())));

    #[tokio::test]
    async fn an_injected_failure_changes_nothing() {
        let store = MemoryStore::new();
        let v = contract::version(b"a");
        store
            .commit_version("n", v.clone(), Some(Arc::from(&b"a"[..])))
            .await
            .unwrap();
        store.fail_next(StoreErrorKind::OutOfSpace);
        let e = store
            .commit_version("n", contract::version(b"b"), Some(Arc::from(&b"b"[..])))
            .await
            .unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::OutOfSpace);
        let record = store.name("n").await.unwrap().unwrap();
        assert_eq!(record.versions.len(), 1);
        assert_eq!(store.stats().await.unwrap().modules, 1);
    }
}
