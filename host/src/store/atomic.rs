//! Atomic file writes: temp file, fsync, rename over the destination, fsync the directory.
//! A crash at any instant leaves the old file or the new one, never a torn one; a failed write
//! (a full disk, say) removes its temp file and leaves the destination as it was.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes temp file names unique within the process (the pid separates processes).
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` through a temp file in `tmp_dir` (which must be on the same file
/// system). The error names the step and the path.
pub fn write_atomic(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), (String, io::Error)> {
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = tmp_dir.join(format!("{}-{seq}.tmp", std::process::id()));
    let step = |what: &str, p: &Path| {
        let what = format!("cannot {what} {}", p.display());
        move |e| (what, e)
    };
    let result = (|| {
        let mut file = File::create(&tmp).map_err(step("create", &tmp))?;
        file.write_all(bytes).map_err(step("write", &tmp))?;
        file.sync_all().map_err(step("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(step("rename into", path))?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs the directory holding `path`, so a rename or removal in it is durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), (String, io::Error)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| (format!("cannot fsync directory {}", dir.display()), e))
}

/// Removes every file in `dir` (leftover temp files of an interrupted write).
pub fn clear_dir(dir: &Path) -> Result<(), (String, io::Error)> {
    let listing = |e| (format!("cannot list {}", dir.display()), e);
    for entry in fs::read_dir(dir).map_err(listing)? {
        let path = entry.map_err(listing)?.path();
        fs::remove_file(&path).map_err(|e| {
            (
                format!("cannot remove stale temp file {}", path.display()),
                e,
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let path = dir.path().join("f");
        write_atomic(&tmp, &path, b"one").unwrap();
        write_atomic(&tmp, &path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let path = dir.path().join("f");
        write_atomic(&tmp, &path, b"old").unwrap();
        // Renaming over a directory fails after the temp file was written.
        let blocked = dir.path().join("d");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        let (what, _) = write_atomic(&tmp, &blocked, b"new").unwrap_err();
        assert!(what.contains("rename"), "{what}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
