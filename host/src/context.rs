//! Who calls, over what, from where: the [`CallContext`] each front end builds once per
//! request and hands to [`crate::rpc::dispatch`]. Batch and multicall members share their
//! request's context. Nothing here is checked yet; it is what access rules, rate limits, logs
//! and usage records read.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/1.1 (or HTTP/2) on the main listener.
    Http,
    /// Newline-delimited JSON-RPC on the TCP listener (`--tcp`).
    Tcp,
    /// Called from inside the process (tests, benchmarks, `fnhost run`).
    InProcess,
}

/// The wire protocol of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    JsonRpc,
    XmlRpc,
}

/// Credentials a request presented (`Authorization: Bearer …` or `Basic …`), unchecked.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    #[default]
    None,
    Bearer(String),
    Basic {
        user: String,
        password: String,
    },
}

impl fmt::Debug for Credentials {
    /// Never prints a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.write_str("Bearer(…)"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}:…)"),
        }
    }
}

impl Credentials {
    /// Reads an `Authorization` header value: `Bearer <token>` or `Basic <base64(user:pass)>`.
    /// Anything else (or a malformed value) presents no credentials.
    pub fn from_authorization(value: &[u8]) -> Self {
        use base64::Engine as _;
        if let Some(token) = value.strip_prefix(b"Bearer ") {
            return match std::str::from_utf8(token.trim_ascii()) {
                Ok(t) if !t.is_empty() => Credentials::Bearer(t.to_owned()),
                _ => Credentials::None,
            };
        }
        if let Some(encoded) = value.strip_prefix(b"Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii());
            if let Some((user, password)) = decoded
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            {
                return Credentials::Basic { user, password };
            }
        }
        Credentials::None
    }

    /// The secret presented, whichever way: the bearer token or the Basic password.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Credentials::None => None,
            Credentials::Bearer(t) => Some(t),
            Credentials::Basic { password, .. } => Some(password),
        }
    }
}

/// A request's id: the client's (`x-request-id`), or one generated here. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    Generated(u64),
    Given(Arc<str>),
}

impl RequestId {
    /// A fresh id, unique within the process and, with a random base, across processes.
    pub fn generated() -> Self {
        static BASE: OnceLock<u64> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = *BASE.get_or_init(|| {
            let mut b = [0u8; 8];
            // Without randomness ids are still unique within the process.
            let _ = getrandom::fill(&mut b);
            u64::from_le_bytes(b)
        });
        RequestId::Generated(base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Generated(n) => write!(f, "{n:016x}"),
            RequestId::Given(s) => f.write_str(s),
        }
    }
}

/// The peer address of an HTTP request, attached by the server to each request it reads
/// (absent for requests that did not come over a socket, such as router tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// What the dispatcher knows about a request's caller.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub transport: Transport,
    pub protocol: Protocol,
    /// The peer's address (`None` in process).
    pub peer: Option<SocketAddr>,
    /// The client's address: the peer, or what a trusted proxy forwarded (`crate::net`).
    /// `None` in process.
    pub client: Option<IpAddr>,
    pub request_id: RequestId,
    pub credentials: Credentials,
}

impl CallContext {
    /// A context for a call made from inside the process.
    pub fn in_process() -> Self {
        Self {
            transport: Transport::InProcess,
            protocol: Protocol::JsonRpc,
            peer: None,
            client: None,
            request_id: RequestId::generated(),
            credentials: Credentials::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_bearer_and_basic() {
        assert_eq!(
            Credentials::from_authorization(b"Bearer abc "),
            Credentials::Bearer("abc".into())
        );
        // "any:s3cret", as xmlrpc.client sends a URL's user info.
        assert_eq!(
            Credentials::from_authorization(b"Basic YW55OnMzY3JldA=="),
            Credentials::Basic {
                user: "any".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            Credentials::from_authorization(b"Basic !!!"),
            Credentials::None
        );
        assert_eq!(
            Credentials::from_authorization(b"Bearer "),
            Credentials::None
        );
        assert_eq!(
            Credentials::from_authorization(b"Token x"),
            Credentials::None
        );
        assert_eq!(
            Credentials::from_authorization(b"Basic YW55OnMzY3JldA==").secret(),
            Some("s3cret")
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::Basic {
            user: "u".into(),
            password: "p4ss".into(),
        };
        assert!(!format!("{c:?}").contains("p4ss"));
        assert!(!format!("{:?}", Credentials::Bearer("t0k".into())).contains("t0k"));
    }

    #[test]
    fn generated_ids_differ_and_print_as_hex() {
        let (a, b) = (RequestId::generated(), RequestId::generated());
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 16);
    }
}
