//! Console sessions: who signed in, for how long, and the token that proves a state-changing
//! request came from the console's own pages (not from another site riding the cookie).
//!
//! A session is 32 random bytes (hex) in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! under TLS), kept only in this process's memory: a restart signs everyone out. Its CSRF
//! token is given to the pages in a `<meta>` tag and must come back in the `x-fnhost-csrf`
//! header (or a form's `csrf` field) of every request that changes something. A deploy key's
//! session is checked against the live key set at every use, so revoking the key ends it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "fnhost_session";
/// The header a state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-fnhost-csrf";
/// How long a session lasts from sign-in.
pub const TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; past it the oldest is signed out.
const MAX_SESSIONS: usize = 1024;

/// Who a session acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Admin,
    /// A deploy key, by id.
    Key(String),
}

#[derive(Debug, Clone)]
pub struct Session {
    pub who: Who,
    pub csrf: String,
    pub expires: Instant,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut raw = [0u8; 32];
    if getrandom::fill(&mut raw).is_err() {
        // No randomness: no session (sign-in fails rather than handing out a guessable id).
        return String::new();
    }
    hex::encode(raw)
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session; returns its id and the session (`None` without randomness).
    pub fn start(&self, who: Who) -> Option<(String, Session)> {
        let (id, csrf) = (random_hex(), random_hex());
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let session = Session {
            who,
            csrf,
            expires: Instant::now() + TTL,
        };
        let mut all = self.lock();
        let now = Instant::now();
        all.retain(|_, s| s.expires > now);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(id.clone(), session.clone());
        Some((id, session))
    }

    /// The live session of `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut all = self.lock();
        match all.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                all.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_id(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_expire_and_end() {
        let s = Sessions::default();
        let (id, session) = s.start(Who::Admin).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        assert_eq!(s.get(&id).unwrap().who, Who::Admin);
        s.end(&id);
        assert!(s.get(&id).is_none());
        assert!(s.get("nope").is_none());
    }

    #[test]
    fn the_cookie_is_found_among_others_and_must_look_like_an_id() {
        let id = "a".repeat(64);
        assert_eq!(
            cookie_id(&format!("x=1; {COOKIE}={id}; y=2")),
            Some(id.as_str())
        );
        assert_eq!(cookie_id(&format!("{COOKIE}=short")), None);
        assert_eq!(cookie_id("other=1"), None);
    }
}
