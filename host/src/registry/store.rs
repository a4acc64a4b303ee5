//! The embedded store: a data directory where every write is atomic.
//!
//! Layout (`docs/STORAGE.md` has the reasoning):
//!
//! ```text
//! <data-dir>/
//!   admin-token                      generated admin token (0600), unless given by env
//!   modules/<sha256>.wasm            module bytes, content-addressed, never rewritten
//!   names/<name>.json                one name's version history; the commit point of a deploy
//!   artifacts/<engine>/<sha256>.cwasm   precompiled code for one engine (a disposable cache)
//!   artifacts/<engine>/<sha256>.cwasm.sha256   its checksum, checked before it is loaded
//!   tmp/                             files being written; emptied at start, never read
//! ```
//!
//! Every file is written to `tmp/`, fsynced, renamed into place, and its directory fsynced: a
//! crash at any instant leaves the old file or the new one. A deploy writes the module bytes
//! first and the name record last, so a name never points at bytes that are not there.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::LimitOverrides;
use crate::digest::Digest;

/// A store operation failed; the path says where.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct StoreError {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl StoreError {
    pub(crate) fn other(what: &'static str, path: &Path, message: String) -> Self {
        Self {
            what,
            path: path.to_owned(),
            source: io::Error::other(message),
        }
    }
}

fn ctx(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError { what, path, source }
}

/// One deployed version of a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// 1, 2, 3, ... per name.
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

/// The data directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    modules: PathBuf,
    names: PathBuf,
    artifacts: PathBuf,
    tmp: PathBuf,
    /// Makes temp file names unique within the process (the pid separates processes).
    tmp_seq: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the store at `root`; `engine_key` selects the artifact cache.
    /// Leftover temp files from an interrupted write are removed.
    pub fn open(root: &Path, engine_key: &str) -> Result<Self, StoreError> {
        let store = Self {
            root: root.to_owned(),
            modules: root.join("modules"),
            names: root.join("names"),
            artifacts: root.join("artifacts").join(engine_key),
            tmp: root.join("tmp"),
            tmp_seq: AtomicU64::new(0),
        };
        for dir in [&store.modules, &store.names, &store.artifacts, &store.tmp] {
            fs::create_dir_all(dir).map_err(ctx("cannot create", dir))?;
        }
        for entry in fs::read_dir(&store.tmp).map_err(ctx("cannot list", &store.tmp))? {
            let path = entry.map_err(ctx("cannot list", &store.tmp))?.path();
            fs::remove_file(&path).map_err(ctx("cannot remove stale temp file", &path))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn module_path(&self, digest: &Digest) -> PathBuf {
        self.modules.join(format!("{digest}.wasm"))
    }

    fn name_path(&self, name: &str) -> PathBuf {
        self.names.join(format!("{name}.json"))
    }

    /// Where the artifact of `digest` lives (whether or not it exists).
    pub fn artifact_path(&self, digest: &Digest) -> PathBuf {
        self.artifacts.join(format!("{digest}.cwasm"))
    }

    fn artifact_sum_path(&self, digest: &Digest) -> PathBuf {
        self.artifacts.join(format!("{digest}.cwasm.sha256"))
    }

    /// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}-{seq}.tmp", std::process::id()));
        let result = (|| {
            let mut file = File::create(&tmp).map_err(ctx("cannot create", &tmp))?;
            file.write_all(bytes).map_err(ctx("cannot write", &tmp))?;
            file.sync_all().map_err(ctx("cannot fsync", &tmp))?;
            fs::rename(&tmp, path).map_err(ctx("cannot rename into", path))?;
            sync_dir(path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Stores module bytes under their digest. Present and intact bytes are left alone; a
    /// present file that no longer matches is replaced.
    pub fn put_module(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.module_path(digest);
        match fs::read(&path) {
            Ok(existing) if Digest::of(&existing) == *digest => Ok(()),
            Ok(_) => {
                tracing::warn!(%digest, "stored module bytes did not match their hash; rewriting");
                self.write_atomic(&path, bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.write_atomic(&path, bytes),
            Err(e) => Err(ctx("cannot read", &path)(e)),
        }
    }

    /// Reads module bytes. The caller checks them against the digest.
    pub fn read_module(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.module_path(digest);
        fs::read(&path).map_err(ctx("cannot read", &path))
    }

    /// Caches a precompiled artifact and its checksum (checksum last: an artifact without one
    /// is never loaded).
    pub fn put_artifact(&self, digest: &Digest, artifact: &[u8]) -> Result<(), StoreError> {
        self.write_atomic(&self.artifact_path(digest), artifact)?;
        let sum = Digest::of(artifact).to_hex();
        self.write_atomic(&self.artifact_sum_path(digest), sum.as_bytes())
    }

    /// The artifact of `digest` if it exists and matches its recorded checksum.
    pub fn verified_artifact(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.artifact_path(digest);
        let sum = fs::read_to_string(self.artifact_sum_path(digest)).ok()?;
        let bytes = fs::read(&path).ok()?;
        if Digest::of(&bytes).to_hex() == sum.trim() {
            Some(path)
        } else {
            tracing::warn!(%digest, path = %path.display(), "artifact checksum mismatch; recompiling");
            None
        }
    }

    /// Commits a name's history (the commit point of a deploy).
    pub fn write_name(&self, record: &NameRecord) -> Result<(), StoreError> {
        let path = self.name_path(&record.name);
        let json = serde_json::to_vec_pretty(record).map_err(|e| StoreError {
            what: "cannot encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        self.write_atomic(&path, &json)
    }

    /// Removes a name; `false` when there was none.
    pub fn remove_name(&self, name: &str) -> Result<bool, StoreError> {
        let path = self.name_path(name);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&path).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ctx("cannot remove", &path)(e)),
        }
    }

    /// Every name record on disk. A record that cannot be read is reported and skipped.
    pub fn load_names(&self) -> Result<Vec<NameRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in fs::read_dir(&self.names).map_err(ctx("cannot list", &self.names))? {
            let path = entry.map_err(ctx("cannot list", &self.names))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<NameRecord>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(record) if path.file_stem().and_then(|s| s.to_str()) == Some(&record.name) => {
                    records.push(record)
                }
                Ok(record) => tracing::error!(
                    path = %path.display(), name = record.name,
                    "name record does not match its file name; skipped"
                ),
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "unreadable name record; skipped")
                }
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Deletes module files and artifacts no name's history refers to.
    pub fn collect_garbage(&self, referenced: &HashSet<Digest>) -> Result<usize, StoreError> {
        let mut removed = 0;
        for dir in [&self.modules, &self.artifacts] {
            for entry in fs::read_dir(dir).map_err(ctx("cannot list", dir))? {
                let path = entry.map_err(ctx("cannot list", dir))?.path();
                let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                let Some(Ok(digest)) = file.split('.').next().map(str::parse::<Digest>) else {
                    continue;
                };
                if !referenced.contains(&digest) {
                    fs::remove_file(&path).map_err(ctx("cannot remove", &path))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ctx("cannot fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, digest: Digest) -> NameRecord {
        NameRecord {
            name: name.into(),
            versions: vec![VersionRecord {
                version: 1,
                sha256: digest,
                size: 3,
                deployed_at: "2026-01-01T00:00:00Z".into(),
                limits: LimitOverrides::default(),
                functions: Vec::new(),
            }],
        }
    }

    #[test]
    fn modules_names_and_gc() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "k").unwrap();
        let d = Digest::of(b"abc");
        store.put_module(&d, b"abc").unwrap();
        store.put_module(&d, b"abc").unwrap();
        assert_eq!(store.read_module(&d).unwrap(), b"abc");
        store.write_name(&record("math", d)).unwrap();
        assert_eq!(store.load_names().unwrap(), vec![record("math", d)]);

        let other = Digest::of(b"xyz");
        store.put_module(&other, b"xyz").unwrap();
        assert_eq!(store.collect_garbage(&HashSet::from([d])).unwrap(), 1);
        assert!(store.read_module(&other).is_err());

        assert!(store.remove_name("math").unwrap());
        assert!(!store.remove_name("math").unwrap());
        assert!(store.load_names().unwrap().is_empty());
    }

    #[test]
    fn stale_temp_files_are_removed_and_corrupt_modules_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        fs::write(dir.path().join("tmp/1-1.tmp"), b"half").unwrap();
        let store = Store::open(dir.path(), "k").unwrap();
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        let d = Digest::of(b"abc");
        fs::write(dir.path().join(format!("modules/{d}.wasm")), b"abd").unwrap();
        store.put_module(&d, b"abc").unwrap();
        assert_eq!(store.read_module(&d).unwrap(), b"abc");
    }

    #[test]
    fn artifacts_need_a_matching_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "k").unwrap();
        let d = Digest::of(b"m");
        assert!(store.verified_artifact(&d).is_none());
        store.put_artifact(&d, b"code").unwrap();
        assert!(store.verified_artifact(&d).is_some());
        fs::write(store.artifact_path(&d), b"c0de").unwrap();
        assert!(store.verified_artifact(&d).is_none());
    }

    #[test]
    fn unreadable_records_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), "k").unwrap();
        fs::write(dir.path().join("names/bad.json"), b"{not json").unwrap();
        store.write_name(&record("good", Digest::of(b"g"))).unwrap();
        let names: Vec<String> = store
            .load_names()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, vec!["good"]);
    }
}
