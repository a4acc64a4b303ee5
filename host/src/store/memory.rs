//! A store in memory: nothing survives the process. For fast unit tests of everything above
//! the seam, and for fault injection ([`MemoryStore::fail_next`], [`MemoryStore::corrupt`]):
//! what a real backend does only on a full disk or a flipped bit, this one does on request.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::{
    AuditEntry, KeyRecord, NameRecord, NewVersion, Store, StoreError, StoreErrorKind, StoreStats,
    append,
};
use crate::digest::Digest;

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    modules: HashMap<Digest, Arc<[u8]>>,
    names: BTreeMap<String, NameRecord>,
    keys: BTreeMap<String, KeyRecord>,
    audit: Vec<AuditEntry>,
    /// The next write fails with this kind, changing nothing.
    fail_next: Option<StoreErrorKind>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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
        Ok(state.names.remove(name))
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
        state.keys.insert(key.id.clone(), key);
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.lock().keys.values().cloned().collect())
    }

    async fn delete_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let mut state = self.lock();
        state.injected()?;
        Ok(state.keys.remove(id))
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
