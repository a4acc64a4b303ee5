//! The admin token: who may deploy and remove modules.
//!
//! From `FNHOST_ADMIN_TOKEN` when set; otherwise generated at first start (32 random bytes, hex)
//! and kept in `<data-dir>/admin-token` with mode 0600, so restarts keep it. Comparison is
//! constant-time.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The admin token in force, and where it came from.
#[derive(Clone)]
pub struct AdminToken {
    token: String,
    /// The file holding a generated token; `None` when the token came from the environment.
    pub path: Option<PathBuf>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The token file exists but cannot be used, or cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read or write the admin token file {0}: {1}")]
    Io(PathBuf, #[source] io::Error),
    #[error("the admin token file {0} is empty")]
    Empty(PathBuf),
    #[error("the given admin token is empty")]
    EmptyGiven,
    #[error("cannot generate a random token: {0}")]
    Random(String),
}

impl AdminToken {
    /// The given token, or the one stored in (or generated into) `data_dir`.
    pub fn load(given: Option<String>, data_dir: &Path) -> Result<Self, TokenError> {
        if let Some(token) = given {
            let token = token.trim().to_owned();
            if token.is_empty() {
                return Err(TokenError::EmptyGiven);
            }
            return Ok(Self { token, path: None });
        }
        let path = data_dir.join("admin-token");
        let io_err = |e| TokenError::Io(path.clone(), e);
        match fs::read_to_string(&path) {
            Ok(s) if s.trim().is_empty() => Err(TokenError::Empty(path)),
            Ok(s) => Ok(Self {
                token: s.trim().to_owned(),
                path: Some(path),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut raw = [0u8; 32];
                getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
                let token = hex::encode(raw);
                fs::create_dir_all(data_dir).map_err(io_err)?;
                write_private(&path, &token).map_err(io_err)?;
                Ok(Self {
                    token,
                    path: Some(path),
                })
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// A token given directly (tests, embedding).
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            path: None,
        }
    }

    /// Whether an `Authorization` header value carries this token (`Bearer <token>`).
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        constant_time_eq(given.trim_ascii(), self.token.as_bytes())
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes the token file atomically with mode 0600: a crash leaves no file or the whole token,
/// never an empty file that would stop the next start. Linking (not renaming) the temp file
/// into place never replaces a token another process wrote meanwhile.
fn write_private(path: &Path, token: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // `mode` applies only when the file is created; a leftover temp file is made private too.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = AdminToken::load(None, dir.path()).unwrap();
        let path = a.path.clone().unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = AdminToken::load(None, dir.path()).unwrap();
        assert_eq!(a.token, b.token);
        assert_eq!(a.token.len(), 64);
    }

    #[test]
    fn a_write_interrupted_earlier_leaves_nothing_that_stops_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        // What a crash mid-write leaves: only the temp file, world-readable and partial.
        let tmp = dir.path().join("admin-token.tmp");
        fs::write(&tmp, "abc").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        let a = AdminToken::load(None, dir.path()).unwrap();
        let path = a.path.clone().unwrap();
        assert_eq!(a.token.len(), 64);
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), a.token);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!tmp.exists());
    }

    #[test]
    fn accepts_only_the_bearer_token() {
        let t = AdminToken::new("s3cret");
        assert!(t.accepts(Some(b"Bearer s3cret")));
        assert!(!t.accepts(Some(b"Bearer s3cre")));
        assert!(!t.accepts(Some(b"Bearer s3cret2")));
        assert!(!t.accepts(Some(b"s3cret")));
        assert!(!t.accepts(None));
    }

    #[test]
    fn env_token_wins_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            AdminToken::load(Some("abc".into()), dir.path())
                .unwrap()
                .path
                .is_none()
        );
        assert!(AdminToken::load(Some("  ".into()), dir.path()).is_err());
    }
}
