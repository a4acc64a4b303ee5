//! The embedded store: a data directory where every write is atomic.
//!
//! Layout (`docs/STORAGE.md` has the reasoning):
//!
//! ```text
//! <data-dir>/
//!   modules/<sha256>.wasm            module bytes, content-addressed, never rewritten
//!   names/<name>.json                one name's version history; the commit point of a deploy
//!   keys/<key id>.json               one caller key (its secret's SHA-256, never the secret)
//!   audit.log                        the audit log: one JSON entry per line, append-only
//!   tmp/                             files being written; emptied at start, never read
//! ```
//!
//! Every file is written to `tmp/`, fsynced, renamed into place, and its directory fsynced: a
//! crash at any instant leaves the old file or the new one. A commit writes the module bytes
//! first and the name record last, so a name never points at bytes that are not there. One
//! process owns a data directory; within it, commits and garbage collection take turns.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::atomic::{clear_dir, sync_dir, write_atomic};
use super::{
    AuditEntry, KeyRecord, NameRecord, NewVersion, Store, StoreError, StoreErrorKind, StoreStats,
    append,
};
use crate::digest::Digest;

/// The data directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    modules: PathBuf,
    names: PathBuf,
    keys: PathBuf,
    audit: PathBuf,
    tmp: PathBuf,
    /// Commits and garbage collection take turns, so a collection never deletes bytes a commit
    /// has just written for a record it has not written yet.
    writer: Mutex<()>,
    /// The last audit entry's number once known (0: read it from the log first), so an append
    /// does not read the whole log.
    audit_seq: std::sync::atomic::AtomicU64,
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let what = format!("{what} {}", path.display());
    move |e| StoreError::io(what, &e)
}

fn step_err((what, e): (String, io::Error)) -> StoreError {
    StoreError::io(what, &e)
}

impl FileStore {
    /// Opens (creating if needed) the store at `root`. Leftover temp files from an interrupted
    /// write are removed. Blocking.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let inner = Inner {
            root: root.to_owned(),
            modules: root.join("modules"),
            names: root.join("names"),
            keys: root.join("keys"),
            audit: root.join("audit.log"),
            tmp: root.join("tmp"),
            writer: Mutex::new(()),
            audit_seq: std::sync::atomic::AtomicU64::new(0),
        };
        for dir in [&inner.modules, &inner.names, &inner.keys, &inner.tmp] {
            fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        }
        clear_dir(&inner.tmp).map_err(step_err)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the bytes of `digest` live (whether or not they exist).
    pub fn module_path(&self, digest: &Digest) -> PathBuf {
        self.inner.modules.join(format!("{digest}.wasm"))
    }

    fn name_path(&self, name: &str) -> PathBuf {
        self.inner.names.join(format!("{name}.json"))
    }

    /// Runs blocking file work off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FileStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Backend, format!("store task: {e}")))?
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.inner.tmp, path, bytes).map_err(step_err)
    }

    /// Stores module bytes under their digest. Present and intact bytes are left alone; a
    /// present file that no longer matches is replaced.
    fn put_module(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.module_path(digest);
        match fs::read(&path) {
            Ok(existing) if Digest::of(&existing) == *digest => Ok(()),
            Ok(_) => {
                tracing::warn!(%digest, "stored module bytes did not match their hash; rewriting");
                self.write(&path, bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.write(&path, bytes),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    fn read_module(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.module_path(digest);
        let bytes = fs::read(&path).map_err(io_err("cannot read", &path))?;
        if Digest::of(&bytes) != *digest {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                format!("{} does not match its sha256", path.display()),
            ));
        }
        Ok(bytes)
    }

    /// One record, or `None` when absent. An unreadable record counts as absent (it is
    /// reported): its history is lost either way, and the name can be deployed again.
    fn read_name(&self, name: &str) -> Result<Option<NameRecord>, StoreError> {
        let path = self.name_path(name);
        match fs::read(&path) {
            Ok(bytes) => match parse_record(&path, &bytes) {
                Ok(record) => Ok(Some(record)),
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "unreadable name record; ignored");
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    fn write_name(&self, record: &NameRecord) -> Result<(), StoreError> {
        let path = self.name_path(&record.name);
        let json = serde_json::to_vec_pretty(record).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Backend,
                format!("cannot encode {}: {e}", path.display()),
            )
        })?;
        self.write(&path, &json)
    }

    fn read_names(&self) -> Result<Vec<NameRecord>, StoreError> {
        let dir = &self.inner.names;
        let mut records = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
            let path = entry.map_err(io_err("cannot list", dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| parse_record(&path, &b));
            match parsed {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "unreadable name record; skipped")
                }
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    fn module_files(&self) -> Result<Vec<(Digest, PathBuf)>, StoreError> {
        let dir = &self.inner.modules;
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
            let path = entry.map_err(io_err("cannot list", dir))?.path();
            let digest = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.split('.').next())
                .and_then(|d| d.parse::<Digest>().ok());
            if let Some(digest) = digest {
                files.push((digest, path));
            }
        }
        Ok(files)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic while holding it leaves nothing inconsistent.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FileStore {
    fn key_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        // Ids are made here (`key_` + hex), but never trust one to be a file name.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("no key {id:?}"),
            ));
        }
        Ok(self.inner.keys.join(format!("{id}.json")))
    }

    fn read_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let dir = &self.inner.keys;
        let mut keys = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
            let path = entry.map_err(io_err("cannot list", dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<KeyRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(key) => keys.push(key),
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "unreadable key record; skipped")
                }
            }
        }
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    /// Every readable entry of the audit log, in order. A torn last line (a crash while it
    /// was appended) is skipped.
    fn read_audit(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let path = &self.inner.audit;
        let text = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("cannot read", path)(e)),
        };
        Ok(text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice::<AuditEntry>(l).ok())
            .collect())
    }
}

/// Decodes a record, which must name the file it is in.
fn parse_record(path: &Path, bytes: &[u8]) -> Result<NameRecord, String> {
    let record: NameRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if path.file_stem().and_then(|s| s.to_str()) != Some(&record.name) {
        return Err(format!(
            "the record names `{}`, not its file name",
            record.name
        ));
    }
    Ok(record)
}

#[async_trait]
impl Store for FileStore {
    fn describe(&self) -> String {
        format!("file store at {}", self.inner.root.display())
    }

    async fn commit_version(
        &self,
        name: &str,
        version: NewVersion,
        bytes: Option<Arc<[u8]>>,
    ) -> Result<NameRecord, StoreError> {
        let name = name.to_owned();
        self.blocking(move |store| {
            let _writer = store.lock();
            let digest = version.sha256;
            match &bytes {
                Some(bytes) => store.put_module(&digest, bytes)?,
                // A version of bytes already stored (a rollback): they must be there, intact.
                None => drop(store.read_module(&digest)?),
            }
            let record = append(store.read_name(&name)?, &name, version);
            store.write_name(&record)?;
            Ok(record)
        })
        .await
    }

    async fn module(&self, digest: &Digest) -> Result<Arc<[u8]>, StoreError> {
        let digest = *digest;
        self.blocking(move |store| store.read_module(&digest).map(Arc::from))
            .await
    }

    async fn name(&self, name: &str) -> Result<Option<NameRecord>, StoreError> {
        let name = name.to_owned();
        self.blocking(move |store| store.read_name(&name)).await
    }

    async fn names(&self) -> Result<Vec<NameRecord>, StoreError> {
        self.blocking(FileStore::read_names).await
    }

    async fn remove_name(&self, name: &str) -> Result<Option<NameRecord>, StoreError> {
        let name = name.to_owned();
        self.blocking(move |store| {
            let _writer = store.lock();
            let record = store.read_name(&name)?;
            let path = store.name_path(&name);
            match fs::remove_file(&path) {
                Ok(()) => {
                    sync_dir(&path).map_err(step_err)?;
                    // An unreadable record is removed too, but there is no history to return.
                    Ok(record.or_else(|| {
                        Some(NameRecord {
                            name: name.clone(),
                            versions: Vec::new(),
                        })
                    }))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("cannot remove", &path)(e)),
            }
        })
        .await
    }

    async fn collect_garbage(&self) -> Result<usize, StoreError> {
        self.blocking(|store| {
            let _writer = store.lock();
            let referenced: HashSet<Digest> = store
                .read_names()?
                .iter()
                .flat_map(|r| r.versions.iter().map(|v| v.sha256))
                .collect();
            let mut removed = 0;
            for (digest, path) in store.module_files()? {
                if !referenced.contains(&digest) {
                    fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.blocking(|store| {
            let files = store.module_files()?;
            let mut module_bytes = 0;
            for (_, path) in &files {
                module_bytes += fs::metadata(path)
                    .map_err(io_err("cannot stat", path))?
                    .len();
            }
            Ok(StoreStats {
                modules: files.len(),
                module_bytes,
                names: store.read_names()?.len(),
            })
        })
        .await
    }

    async fn put_key(&self, key: KeyRecord) -> Result<(), StoreError> {
        self.blocking(move |store| {
            let path = store.key_path(&key.id)?;
            let json = serde_json::to_vec_pretty(&key).map_err(|e| {
                StoreError::new(StoreErrorKind::Backend, format!("cannot encode: {e}"))
            })?;
            store.write(&path, &json)
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.blocking(FileStore::read_keys).await
    }

    async fn delete_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.blocking(move |store| {
            let path = match store.key_path(&id) {
                Ok(path) => path,
                Err(_) => return Ok(None),
            };
            let key = store.read_keys()?.into_iter().find(|k| k.id == id);
            match fs::remove_file(&path) {
                Ok(()) => {
                    sync_dir(&path).map_err(step_err)?;
                    Ok(key)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("cannot remove", &path)(e)),
            }
        })
        .await
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        self.blocking(move |store| store.append_line(entry)).await
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.blocking(move |store| {
            Ok(store
                .read_audit()?
                .into_iter()
                .filter(|e| e.seq > after)
                .take(limit)
                .collect())
        })
        .await
    }
}

impl FileStore {
    fn append_line(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        use std::io::Write;
        let _writer = self.lock();
        let path = &self.inner.audit;
        use std::sync::atomic::Ordering::Relaxed;
        let last = match self.inner.audit_seq.load(Relaxed) {
            0 => self.read_audit()?.last().map_or(0, |e| e.seq),
            n => n,
        };
        let seq = last + 1;
        let mut line = serde_json::to_vec(&AuditEntry { seq, ..entry })
            .map_err(|e| StoreError::new(StoreErrorKind::Backend, format!("cannot encode: {e}")))?;
        line.push(b'\n');
        let mut file = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_err("cannot open", path))?;
        // After a torn last line, start a fresh one rather than gluing onto it.
        let len = file.metadata().map_err(io_err("cannot stat", path))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            use std::os::unix::fs::FileExt;
            file.read_exact_at(&mut last, len - 1)
                .map_err(io_err("cannot read", path))?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        file.write_all(&line)
            .map_err(io_err("cannot append to", path))?;
        file.sync_all().map_err(io_err("cannot fsync", path))?;
        self.inner.audit_seq.store(seq, Relaxed);
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::{self, Backend};

    /// A data directory that each `open` opens anew, as a restarted host would.
    struct Dir(tempfile::TempDir);

    #[async_trait]
    impl Backend for Dir {
        async fn open(&self) -> Arc<dyn Store> {
            Arc::new(FileStore::open(self.0.path()).unwrap())
        }

        async fn corrupt(&self, digest: &Digest) {
            let path = self.0.path().join(format!("modules/{digest}.wasm"));
            let mut bytes = fs::read(&path).unwrap();
            bytes[0] ^= 0xff;
            fs::write(&path, bytes).unwrap();
        }
    }

    crate::store_contract_tests!(Dir(tempfile::tempdir().unwrap()));

    #[test]
    fn stale_temp_files_are_removed_and_corrupt_modules_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        fs::write(dir.path().join("tmp/1-1.tmp"), b"half").unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        let d = Digest::of(b"abc");
        fs::write(dir.path().join(format!("modules/{d}.wasm")), b"abd").unwrap();
        store.put_module(&d, b"abc").unwrap();
        assert_eq!(store.read_module(&d).unwrap(), b"abc");
    }

    #[tokio::test]
    async fn unreadable_or_misnamed_records_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        fs::write(dir.path().join("names/bad.json"), b"{not json").unwrap();
        let good = contract::version(b"g");
        store
            .commit_version("good", good.clone(), Some(Arc::from(&b"g"[..])))
            .await
            .unwrap();
        let mut other = store.read_name("good").unwrap().unwrap();
        other.name = "other".into();
        fs::write(
            dir.path().join("names/misnamed.json"),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        let names: Vec<String> = store
            .names()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, vec!["good"]);
    }

    #[tokio::test]
    async fn a_torn_last_audit_line_is_skipped_and_the_next_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let entry = |action: &str| AuditEntry {
            seq: 0,
            time: "t".into(),
            actor: "admin".into(),
            key_name: None,
            client: None,
            action: action.into(),
            target: "m".into(),
            sha256: None,
            outcome: "ok".into(),
            detail: None,
        };
        store.append_audit(entry("deploy")).await.unwrap();
        // A crash in the middle of the next append.
        let path = dir.path().join("audit.log");
        let mut torn = fs::read(&path).unwrap();
        torn.extend_from_slice(b"{\"seq\":2,\"time\":\"t\",\"act");
        fs::write(&path, torn).unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.append_audit(entry("remove")).await.unwrap(), 2);
        let all = store.audit(0, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["deploy", "remove"]
        );
    }

    #[tokio::test]
    async fn the_layout_on_disk_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let v = contract::version(b"abc");
        let digest = v.sha256;
        store
            .commit_version("math", v, Some(Arc::from(&b"abc"[..])))
            .await
            .unwrap();
        assert_eq!(
            fs::read(dir.path().join(format!("modules/{digest}.wasm"))).unwrap(),
            b"abc"
        );
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("names/math.json")).unwrap()).unwrap();
        assert_eq!(record["name"], "math");
        assert_eq!(record["versions"][0]["version"], 1);
        assert_eq!(record["versions"][0]["sha256"], digest.to_hex());
    }
}
