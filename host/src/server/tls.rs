//! TLS with rustls (no OpenSSL): the certificate (a chain is allowed) and key from PEM files,
//! HTTP/2 offered beside HTTP/1.1 by ALPN on the HTTP listener, optional client certificates
//! (mutual TLS), and reloading without a restart.
//!
//! The server configurations live in an [`ArcSwap`]: each new connection takes the current
//! one, so a reload (SIGHUP, or the files changing on disk: checked every two seconds) gives
//! new connections the new certificate while open ones keep theirs. A new file that does not
//! load is refused with a log line naming the file and why, and the old certificate stays.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why a certificate set could not be loaded: the file and the cause, for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {why}")]
pub struct TlsError {
    pub file: String,
    pub why: String,
}

fn err(file: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError {
        file: file.display().to_string(),
        why: why.to_string(),
    }
}

/// The two server configurations one certificate set makes.
#[derive(Debug)]
struct Configs {
    /// With ALPN `h2`, `http/1.1`: the HTTP listener.
    http: Arc<ServerConfig>,
    /// Without ALPN: the TCP transport's JSON lines.
    tcp: Arc<ServerConfig>,
}

/// The TLS state of a host; see the module docs.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    configs: ArcSwap<Configs>,
    /// When the files were last loaded (their modification times), to notice changes.
    loaded: std::sync::Mutex<Vec<Option<SystemTime>>>,
}

impl Tls {
    /// Loads `files`; the error names the file that would not load.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, TlsError> {
        let configs = build(files)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            configs: ArcSwap::from_pointee(configs),
            loaded: std::sync::Mutex::new(mtimes(files)),
        }))
    }

    /// An acceptor for a new connection on the HTTP (`http`) or the TCP listener.
    pub fn acceptor(&self, http: bool) -> TlsAcceptor {
        let configs = self.configs.load();
        TlsAcceptor::from(if http {
            configs.http.clone()
        } else {
            configs.tcp.clone()
        })
    }

    /// Loads the files again; on failure the current certificate stays and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = mtimes(&self.files);
        let configs = build(&self.files)?;
        self.configs.store(Arc::new(configs));
        *self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stamps;
        Ok(())
    }

    /// Reloads (and logs) when a file's modification time changed since the last load.
    pub fn reload_if_changed(&self) {
        let now = mtimes(&self.files);
        let changed = *self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            != now;
        if changed {
            self.reload_logged("the certificate files changed");
        }
    }

    /// Reloads and logs the outcome.
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(()) => {
                tracing::info!(cert = %self.files.cert.display(), why, "TLS certificate reloaded")
            }
            Err(e) => {
                // Remember the failed files' times too, so a broken file is reported once,
                // not every two seconds.
                *self
                    .loaded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = mtimes(&self.files);
                tracing::error!(error = %e, why, "TLS certificate NOT reloaded; the previous one stays")
            }
        }
    }

    /// Watches the files every two seconds for as long as the returned task runs.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let tls = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(tls) = tls.upgrade() else { return };
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
            }
        })
    }
}

fn mtimes(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(path, e))?;
    if certs.is_empty() {
        return Err(err(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn build(files: &TlsFiles) -> Result<Configs, TlsError> {
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| err(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&files.cert, e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca)? {
                roots.add(cert).map_err(|e| err(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let tcp = builder.with_single_cert(chain, key).map_err(|e| {
        err(
            &files.key,
            format!("the key does not fit the certificate: {e}"),
        )
    })?;
    let mut http = tcp.clone();
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Configs {
        http: Arc::new(http),
        tcp: Arc::new(tcp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsFiles {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            client_ca: None,
        };
        fs::write(&files.cert, cert.cert.pem()).unwrap();
        fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn loads_offers_h2_and_names_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "a");
        let tls = Tls::load(&files).unwrap();
        assert_eq!(
            tls.configs.load().http.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(tls.configs.load().tcp.alpn_protocols.is_empty());

        let mut broken = files.clone();
        broken.cert = dir.path().join("missing.crt");
        let e = Tls::load(&broken).unwrap_err();
        assert!(e.file.ends_with("missing.crt"), "{e}");

        fs::write(dir.path().join("garbage.crt"), "not pem").unwrap();
        broken.cert = dir.path().join("garbage.crt");
        let e = Tls::load(&broken).unwrap_err();
        assert!(e.why.contains("no PEM certificate"), "{e}");

        // A key that belongs to another certificate.
        let other = write_pair(dir.path(), "b");
        let mismatched = TlsFiles {
            key: other.key,
            ..files
        };
        let e = Tls::load(&mismatched).unwrap_err();
        assert!(e.why.contains("does not fit"), "{e}");
    }

    #[test]
    fn a_broken_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "a");
        let tls = Tls::load(&files).unwrap();
        let before = Arc::as_ptr(&tls.configs.load().http);
        fs::write(&files.cert, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(Arc::as_ptr(&tls.configs.load().http), before);
        write_pair(dir.path(), "a");
        tls.reload().unwrap();
        assert_ne!(Arc::as_ptr(&tls.configs.load().http), before);
    }
}
