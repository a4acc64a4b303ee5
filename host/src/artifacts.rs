//! Precompiled machine code, cached on local disk per engine, whatever the store backend.
//!
//! ```text
//! <data-dir>/artifacts/<engine-key>/<sha256>.cwasm          precompiled code
//! <data-dir>/artifacts/<engine-key>/<sha256>.cwasm.sha256   its checksum, written last
//! <data-dir>/artifacts/<engine-key>/.tmp/                   files being written
//! ```
//!
//! The engine key is the engine's compatibility hash: a different wasmtime or configuration
//! never loads another's code. An artifact is handed out only when its checksum matches, and
//! only this host writes here, so [`crate::sandbox::Sandbox::load_artifact`] (which must trust
//! what it loads) only ever sees bytes it serialized itself. Losing the cache costs a compile,
//! nothing else. Blocking: call from the blocking pool.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::store::write_atomic;

/// One engine's artifact directory.
#[derive(Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    tmp: PathBuf,
}

/// A cache operation failed; the message names the path (for the log only).
#[derive(Debug, thiserror::Error)]
#[error("{0}: {1}")]
pub struct CacheError(String, #[source] io::Error);

impl From<(String, io::Error)> for CacheError {
    fn from((what, e): (String, io::Error)) -> Self {
        Self(what, e)
    }
}

fn ctx(what: &str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let what = format!("{what} {}", path.display());
    move |e| CacheError(what, e)
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache of `engine_key` under `root`; leftover temp files
    /// are removed.
    pub fn open(root: &Path, engine_key: &str) -> Result<Self, CacheError> {
        let dir = root.join("artifacts").join(engine_key);
        let tmp = dir.join(".tmp");
        fs::create_dir_all(&tmp).map_err(ctx("cannot create", &tmp))?;
        crate::store::clear_dir(&tmp)?;
        Ok(Self { dir, tmp })
    }

    /// Where the artifact of `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    fn sum_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm.sha256"))
    }

    /// Caches an artifact and its checksum (checksum last: an artifact without one is never
    /// loaded).
    pub fn put(&self, digest: &Digest, artifact: &[u8]) -> Result<(), CacheError> {
        write_atomic(&self.tmp, &self.path(digest), artifact)?;
        let sum = Digest::of(artifact).to_hex();
        write_atomic(&self.tmp, &self.sum_path(digest), sum.as_bytes())?;
        Ok(())
    }

    /// The artifact of `digest` if it exists and matches its recorded checksum.
    pub fn verified(&self, digest: &Digest) -> Option<PathBuf> {
        let path = self.path(digest);
        let sum = fs::read_to_string(self.sum_path(digest)).ok()?;
        let bytes = fs::read(&path).ok()?;
        if Digest::of(&bytes).to_hex() == sum.trim() {
            Some(path)
        } else {
            tracing::warn!(%digest, path = %path.display(), "artifact checksum mismatch; recompiling");
            None
        }
    }

    /// Deletes artifacts of modules not in `keep`; returns how many files went.
    pub fn retain(&self, keep: &HashSet<Digest>) -> Result<usize, CacheError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).map_err(ctx("cannot list", &self.dir))? {
            let path = entry.map_err(ctx("cannot list", &self.dir))?.path();
            let digest = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.split('.').next())
                .and_then(|d| d.parse::<Digest>().ok());
            if let Some(digest) = digest
                && !keep.contains(&digest)
            {
                fs::remove_file(&path).map_err(ctx("cannot remove", &path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_need_a_matching_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path(), "k").unwrap();
        let d = Digest::of(b"m");
        assert!(cache.verified(&d).is_none());
        cache.put(&d, b"code").unwrap();
        assert_eq!(cache.verified(&d), Some(cache.path(&d)));
        assert_eq!(
            cache.path(&d),
            dir.path().join(format!("artifacts/k/{d}.cwasm")),
            "the layout on disk is unchanged"
        );
        fs::write(cache.path(&d), b"c0de").unwrap();
        assert!(cache.verified(&d).is_none());
    }

    #[test]
    fn retain_keeps_only_what_is_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path(), "k").unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        cache.put(&a, b"A").unwrap();
        cache.put(&b, b"B").unwrap();
        assert_eq!(cache.retain(&HashSet::from([a])).unwrap(), 2);
        assert!(cache.verified(&a).is_some());
        assert!(cache.verified(&b).is_none());
    }

    #[test]
    fn leftover_temp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("artifacts/k/.tmp");
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join("1-1.tmp"), b"half").unwrap();
        ArtifactCache::open(dir.path(), "k").unwrap();
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
