//! The store URL: `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?options]` read into the
//! driver's config (TLS refused, timeouts bounded), and described for the log without its
//! password.

use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use super::WAIT;
use crate::store::{StoreError, StoreErrorKind};

/// tokio-postgres's keepalive idle time when the URL sets none.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// The config `url` describes, refused when it is not PostgreSQL or asks for TLS.
pub fn parse(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let invalid = |why: String| StoreError::new(StoreErrorKind::Backend, why);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(
            "a PostgreSQL store URL starts with postgres:// or postgresql://".to_owned(),
        ));
    }
    // The parser's messages name options, never their values.
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| invalid(format!("cannot read the store URL: {e}")))?;
    match config.get_ssl_mode() {
        SslMode::Disable | SslMode::Prefer => {}
        _ => {
            return Err(invalid(
                "the store URL asks for TLS (sslmode=require), which fnhost does not speak to \
                 the database yet: use sslmode=disable on a network you trust"
                    .to_owned(),
            ));
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(WAIT);
    }
    // A server that vanishes without closing its sockets (a partition, a crashed machine):
    // idle connections are probed after 10 s, and unacknowledged writes give up after 10 s,
    // instead of the kernel's two hours and fifteen minutes. The URL may say otherwise.
    if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    #[cfg(target_os = "linux")]
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("fnhost");
    }
    Ok(config)
}

/// `postgres://user@host:port/db` from the parsed config: no password, whatever the URL held.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_never_holds_the_password() {
        let c = parse("postgres://fn:s3cret-pw@db.example:6543/registry?sslmode=disable").unwrap();
        assert_eq!(describe(&c), "postgres://fn@db.example:6543/registry");
        let c = parse("postgresql://fn:s3cret-pw@db.example/registry").unwrap();
        assert_eq!(describe(&c), "postgres://fn@db.example:5432/registry");
    }

    #[test]
    fn tls_is_refused_and_plain_or_prefer_accepted() {
        let e = parse("postgres://u@h/db?sslmode=require").unwrap_err();
        assert!(e.detail.contains("sslmode=require"), "{e}");
        assert!(parse("postgres://u@h/db?sslmode=prefer").is_ok());
        assert!(parse("postgres://u@h/db?sslmode=disable").is_ok());
    }

    #[test]
    fn a_url_that_does_not_parse_is_refused_without_its_password() {
        for bad in [
            "postgres://u:pw-secret@h/db?sslmode=bogus",
            "postgres://u:pw-secret@h:notaport/db",
            "postgres://u:pw-secret@h/db?nosuchoption=1",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.detail.contains("pw-secret"), "{e}");
        }
    }

    #[test]
    fn a_silent_server_is_noticed_within_seconds() {
        let c = parse("postgres://u@h/db").unwrap();
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(10));
        #[cfg(target_os = "linux")]
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(10)));
        let c = parse("postgres://u@h/db?keepalives_idle=60").unwrap();
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(60));
    }

    #[test]
    fn other_schemes_are_refused() {
        let e = parse("mysql://u:pw@h/db").unwrap_err();
        assert!(e.detail.contains("postgres://"), "{e}");
        assert!(!e.detail.contains("pw"), "{e}");
    }

    #[test]
    fn timeouts_are_bounded_unless_the_url_says() {
        let c = parse("postgres://u@h/db").unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&WAIT));
        let c = parse("postgres://u@h/db?connect_timeout=7").unwrap();
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(7)));
    }
}
