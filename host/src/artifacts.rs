//! Precompiled machine code, cached on local disk per engine, whatever the store backend.
//!
//! ```text
//! <data-dir>/artifacts/<engine-key>/<sha256>.cwasm          precompiled code
//! <data-dir>/artifacts/<engine-key>/<sha256>.cwasm.xxh3     its checksum, written last
//! <data-dir>/artifacts/<engine-key>/.tmp/                   files being written
//! ```
//!
//! The engine key is the engine's compatibility hash: a different wasmtime or configuration
//! never loads another's code. An artifact is handed out only when its checksum matches, and
//! only this host writes here, so [`crate::sandbox::Sandbox::load_artifact`] (which must trust
//! what it loads) only ever sees bytes it serialized itself. Losing the cache costs a compile,
//! nothing else. Blocking: call from the blocking pool.
//!
//! The checksum is XXH3-128, not SHA-256: it guards against accidents (a torn or truncated
//! write, a damaged disk, a file copied in half), which a 128-bit checksum catches as surely,
//! at a twentieth of the cost — checking a 250 KB artifact with SHA-256 was half of a module's
//! first load (docs/PERFORMANCE.md, *Issue 16*). Against someone who can write the data dir a
//! cryptographic hash would not help either: they could rewrite the checksum file too. Caches
//! written before this (`<sha256>.cwasm.sha256`, SHA-256) are checked with SHA-256 once and
//! given an XXH3 checksum in its place, so an upgrade recompiles nothing.

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
        self.dir.join(format!("{digest}.cwasm.xxh3"))
    }

    /// Where hosts before XXH3 checksums wrote an artifact's SHA-256.
    fn legacy_sum_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm.sha256"))
    }

    /// Caches an artifact and its checksum (checksum last: an artifact without one is never
    /// loaded).
    pub fn put(&self, digest: &Digest, artifact: &[u8]) -> Result<(), CacheError> {
        write_atomic(&self.tmp, &self.path(digest), artifact)?;
        write_atomic(
            &self.tmp,
            &self.sum_path(digest),
            checksum(artifact).as_bytes(),
        )?;
        Ok(())
    }

    /// The artifact of `digest` if it exists and matches its recorded checksum. One cached by
    /// an older host with a SHA-256 checksum is checked with that, then given an XXH3 checksum
    /// (the old one goes), so the next load takes the fast check.
    pub fn verified(&self, digest: &Digest) -> Option<PathBuf> {
        let (path, legacy) = (self.path(digest), self.legacy_sum_path(digest));
        let (sum, is_legacy) = match fs::read_to_string(self.sum_path(digest)) {
            Ok(sum) => (sum, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (fs::read_to_string(&legacy).ok()?, true)
            }
            Err(_) => return None,
        };
        let bytes = fs::read(&path).ok()?;
        let actual = if is_legacy {
            Digest::of(&bytes).to_hex()
        } else {
            checksum(&bytes)
        };
        if actual != sum.trim() {
            tracing::warn!(%digest, path = %path.display(), "artifact checksum mismatch; recompiling");
            return None;
        }
        if is_legacy {
            match write_atomic(
                &self.tmp,
                &self.sum_path(digest),
                checksum(&bytes).as_bytes(),
            ) {
                Ok(()) => {
                    let _ = fs::remove_file(&legacy);
                }
                // Still usable; the next load checks it with SHA-256 again.
                Err(e) => {
                    let e = CacheError::from(e);
                    tracing::warn!(%digest, error = %e, "cannot rewrite the artifact's checksum");
                }
            }
        }
        Some(path)
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

/// An artifact's checksum as its checksum file holds it: XXH3-128, 32 hex digits.
fn checksum(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
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
        // One changed byte in a larger file, and a truncated one.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        cache.put(&d, &big).unwrap();
        assert!(cache.verified(&d).is_some());
        let mut flipped = big.clone();
        flipped[123_456] ^= 1;
        fs::write(cache.path(&d), &flipped).unwrap();
        assert!(cache.verified(&d).is_none());
        fs::write(cache.path(&d), &big[..big.len() - 1]).unwrap();
        assert!(cache.verified(&d).is_none());
    }

    #[test]
    fn artifacts_cached_with_a_sha256_checksum_are_checked_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path(), "k").unwrap();
        let (good, bad) = (Digest::of(b"good"), Digest::of(b"bad"));
        // As hosts before XXH3 wrote them.
        for d in [good, bad] {
            fs::write(cache.path(&d), b"code").unwrap();
            fs::write(
                cache.legacy_sum_path(&d),
                Digest::of(b"code").to_hex().as_bytes(),
            )
            .unwrap();
        }
        fs::write(cache.path(&bad), b"c0de").unwrap();

        assert_eq!(cache.verified(&good), Some(cache.path(&good)));
        assert!(
            !cache.legacy_sum_path(&good).exists(),
            "the old checksum goes"
        );
        assert_eq!(
            fs::read_to_string(cache.sum_path(&good)).unwrap(),
            checksum(b"code")
        );
        assert_eq!(
            cache.verified(&good),
            Some(cache.path(&good)),
            "and stays good"
        );

        assert!(cache.verified(&bad).is_none());
        assert!(
            !cache.sum_path(&bad).exists(),
            "a damaged artifact is never given a new checksum"
        );
        assert!(cache.verified(&bad).is_none());
    }

    #[test]
    fn retain_keeps_only_what_is_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path(), "k").unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        cache.put(&a, b"A").unwrap();
        cache.put(&b, b"B").unwrap();
        fs::write(cache.legacy_sum_path(&b), b"old").unwrap();
        assert_eq!(cache.retain(&HashSet::from([a])).unwrap(), 3);
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
