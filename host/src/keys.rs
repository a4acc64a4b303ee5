//! Caller keys: who may call what, who may deploy which names, and how fast.
//!
//! A key's secret is `fnk_<16 hex: the key's id>_<64 hex: 256 random bits>`, shown once when
//! the key is created. The store keeps its SHA-256 only (a 256-bit random secret needs no slow
//! hash); a presented secret names its key by id, and the digests are compared in constant time.
//! Keys live in memory (loaded at start, changed through [`Keys::create`] and [`Keys::revoke`],
//! which write through the store first), so checking one costs a map lookup and a hash.
//!
//! A scope pattern is a module name (`math`), a name prefix ending in `*` (`team-a-*`), or one
//! function (`billing.charge`). An invoke key calls the `key`-access functions its scope covers;
//! a deploy key deploys, removes and rolls back the names its scope covers (function patterns
//! do not cover a name for deploying).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::store::{KeyRecord, Role, Store};

/// The prefix that makes a secret recognisable (and greppable in leaked logs).
pub const SECRET_PREFIX: &str = "fnk_";

/// One live key.
#[derive(Debug)]
pub struct Key {
    pub record: KeyRecord,
    expires: Option<SystemTime>,
    /// Unix milliseconds of the last accepted use (this process), 0 for never.
    last_used: AtomicU64,
    limiter: Option<RateLimiter<NotKeyed, InMemoryState, DefaultClock>>,
}

impl Key {
    fn new(record: KeyRecord) -> Self {
        let expires = record
            .expires_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok());
        let limiter = record
            .rate_per_s
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct(Quota::per_second(n)));
        Self {
            record,
            expires,
            last_used: AtomicU64::new(0),
            limiter,
        }
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Whether the scope covers calling `module.function`.
    pub fn covers_call(&self, module: &str, function: &str) -> bool {
        self.record.scope.iter().any(|p| match p.split_once('.') {
            Some((m, f)) => m == module && f == function,
            None => pattern_covers(p, module),
        })
    }

    /// Whether the scope covers deploying (removing, rolling back) the name `module`.
    pub fn covers_name(&self, module: &str) -> bool {
        self.record
            .scope
            .iter()
            .any(|p| !p.contains('.') && pattern_covers(p, module))
    }

    /// Takes one call from the key's rate, or says how long until one is free.
    pub fn take(&self) -> Result<(), Duration> {
        match &self.limiter {
            None => Ok(()),
            Some(l) => l
                .check()
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        }
    }

    /// The key as listings show it: everything but the secret's digest, with its last use.
    pub fn view(&self) -> Value {
        let mut v = serde_json::to_value(&self.record).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.remove("secret_sha256");
            let used = self.last_used.load(Relaxed);
            map.insert(
                "last_used_at".into(),
                if used == 0 {
                    Value::Null
                } else {
                    json!(rfc3339(
                        SystemTime::UNIX_EPOCH + Duration::from_millis(used)
                    ))
                },
            );
        }
        v
    }
}

fn pattern_covers(pattern: &str, module: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => module.starts_with(prefix),
        None => pattern == module,
    }
}

pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// What `POST /v1/keys` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub scope: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub rate_per_s: Option<u32>,
    #[serde(default)]
    pub max_fuel: Option<u64>,
    #[serde(default)]
    pub max_memory_mib: Option<u64>,
    #[serde(default)]
    pub max_timeout_ms: Option<u64>,
}

fn bad_key(message: impl Into<String>) -> Error {
    Error::new(Kind::InvalidRequest, message)
}

/// Checks a scope pattern: a module name, a prefix with `*`, or `module.function`.
fn check_pattern(p: &str) -> Result<(), Error> {
    let (module, function) = match p.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (p, None),
    };
    let name = module.strip_suffix('*').unwrap_or(module);
    let name_ok = name.is_empty() && module == "*"
        || (!name.is_empty()
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_')));
    let function_ok =
        function.is_none_or(|f| !module.ends_with('*') && fnhost_abi::is_valid_function_name(f));
    if name_ok && function_ok && p.len() <= 128 {
        Ok(())
    } else {
        Err(bad_key(format!(
            "scope pattern {p:?} is not a module name, a name prefix ending in `*` \
             (`team-a-*`), or `module.function`"
        ))
        .with("param", "scope"))
    }
}

/// Why a presented secret was not accepted (all are `unauthorized`).
fn unauthorized(why: &str) -> Error {
    Error::new(
        Kind::Unauthorized,
        format!(
            "{why}: send a key as `Authorization: Bearer fnk_…` (or as the password of HTTP Basic)"
        ),
    )
    .with("reason", why.replace(' ', "_"))
}

/// The live keys of a host.
#[derive(Debug)]
pub struct Keys {
    store: Arc<dyn Store>,
    by_id: RwLock<HashMap<String, Arc<Key>>>,
}

impl Keys {
    /// Loads every stored key.
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, crate::store::StoreError> {
        let keys = store.keys().await?;
        Ok(Self {
            by_id: RwLock::new(
                keys.into_iter()
                    .map(|k| (k.id.clone(), Arc::new(Key::new(k))))
                    .collect(),
            ),
            store,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Key>>> {
        self.by_id
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Key>>> {
        self.by_id
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the live set with what the store holds (another replica changed it).
    pub async fn refresh(&self) -> Result<(), crate::store::StoreError> {
        let stored = self.store.keys().await?;
        let mut live = self.write();
        let mut next = HashMap::with_capacity(stored.len());
        for record in stored {
            // Keep the live key (its rate limiter, its last use) when nothing changed.
            let key = match live.remove(&record.id) {
                Some(k) if k.record == record => k,
                _ => Arc::new(Key::new(record)),
            };
            next.insert(key.record.id.clone(), key);
        }
        *live = next;
        Ok(())
    }

    /// Whether any key exists (a host without keys skips the lookups).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Creates a key; returns it and its secret, which is not kept anywhere.
    pub async fn create(&self, new: NewKey) -> Result<(Arc<Key>, String), Error> {
        if new.name.trim().is_empty() || new.name.len() > 128 {
            return Err(bad_key("`name` must be 1 to 128 characters").with("param", "name"));
        }
        if new.scope.is_empty() {
            return Err(bad_key("`scope` needs at least one pattern").with("param", "scope"));
        }
        for p in &new.scope {
            check_pattern(p)?;
        }
        if let Some(t) = &new.expires_at
            && humantime::parse_rfc3339(t).is_err()
        {
            return Err(bad_key(format!(
                "`expires_at` {t:?} is not an RFC 3339 UTC time (2027-01-31T00:00:00Z)"
            ))
            .with("param", "expires_at"));
        }
        if new.rate_per_s == Some(0) {
            return Err(
                bad_key("`rate_per_s` must be above 0; leave it out for no limit")
                    .with("param", "rate_per_s"),
            );
        }
        let mut raw = [0u8; 40];
        getrandom::fill(&mut raw).map_err(|e| {
            tracing::error!(error = %e, "no randomness for a key");
            Error::internal()
        })?;
        let id_hex = hex::encode(&raw[..8]);
        let secret = format!("{SECRET_PREFIX}{id_hex}_{}", hex::encode(&raw[8..]));
        let record = KeyRecord {
            id: format!("key_{id_hex}"),
            name: new.name,
            role: new.role,
            scope: new.scope,
            created_at: rfc3339(SystemTime::now()),
            expires_at: new.expires_at,
            rate_per_s: new.rate_per_s,
            max_fuel: new.max_fuel,
            max_memory_mib: new.max_memory_mib,
            max_timeout_ms: new.max_timeout_ms,
            secret_sha256: Digest::of(secret.as_bytes()),
        };
        self.store.put_key(record.clone()).await?;
        let key = Arc::new(Key::new(record));
        self.write().insert(key.record.id.clone(), key.clone());
        Ok((key, secret))
    }

    /// Every key, sorted by id.
    pub fn list(&self) -> Vec<Arc<Key>> {
        let mut all: Vec<Arc<Key>> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.record.id.cmp(&b.record.id));
        all
    }

    /// Revokes a key: refused on the next request. `None` when there is no such key.
    pub async fn revoke(&self, id: &str) -> Result<Option<KeyRecord>, Error> {
        let removed = self.store.delete_key(id).await?;
        let live = self.write().remove(id);
        Ok(removed.or_else(|| live.map(|k| k.record.clone())))
    }

    /// The key a secret belongs to, if it is valid now.
    pub fn verify(&self, secret: &str) -> Result<Arc<Key>, Error> {
        let id = secret
            .strip_prefix(SECRET_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| format!("key_{id}"))
            .ok_or_else(|| unauthorized("unknown key"))?;
        let key = self
            .read()
            .get(&id)
            .cloned()
            .ok_or_else(|| unauthorized("unknown key"))?;
        let presented = Digest::of(secret.as_bytes());
        if !constant_time_eq(presented.as_bytes(), key.record.secret_sha256.as_bytes()) {
            return Err(unauthorized("unknown key"));
        }
        if key.expires.is_some_and(|t| SystemTime::now() >= t) {
            return Err(unauthorized("expired key").with("key", key.record.id.clone()));
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        key.last_used.store(now, Relaxed);
        Ok(key)
    }

    /// The invoke key of `secret`, allowed to call `module.function`: `unauthorized` without
    /// a valid invoke key, `forbidden` when its scope does not cover the function.
    pub fn authorize_call(
        &self,
        secret: Option<&str>,
        module: &str,
        function: &str,
    ) -> Result<Arc<Key>, Error> {
        let secret = secret.ok_or_else(|| unauthorized("no key").with("module", module))?;
        let key = self.verify(secret)?;
        if key.record.role != Role::Invoke {
            return Err(unauthorized("not an invoke key").with("key", key.record.id.clone()));
        }
        if !key.covers_call(module, function) {
            return Err(Error::new(
                Kind::Forbidden,
                format!(
                    "the key `{}` may not call `{module}.{function}`",
                    key.record.id
                ),
            )
            .with("reason", "out_of_scope")
            .with("key", key.record.id.clone()));
        }
        Ok(key)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn new_key(role: Role, scope: &[&str]) -> NewKey {
        NewKey {
            name: "t".into(),
            role,
            scope: scope.iter().map(|s| s.to_string()).collect(),
            expires_at: None,
            rate_per_s: None,
            max_fuel: None,
            max_memory_mib: None,
            max_timeout_ms: None,
        }
    }

    #[tokio::test]
    async fn create_verify_scope_and_revoke() {
        let store = Arc::new(MemoryStore::new());
        let keys = Keys::load(store.clone()).await.unwrap();
        let (key, secret) = keys
            .create(new_key(
                Role::Invoke,
                &["math", "team-a-*", "billing.charge"],
            ))
            .await
            .unwrap();
        assert!(
            secret.starts_with("fnk_") && secret.len() == 4 + 16 + 1 + 64,
            "{secret}"
        );
        let stored = store.keys().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(
            !serde_json::to_string(&stored)
                .unwrap()
                .contains(&secret[21..])
        );
        assert_eq!(keys.verify(&secret).unwrap().id(), key.id());
        for (m, f, ok) in [
            ("math", "add", true),
            ("team-a-x", "f", true),
            ("team-b", "f", false),
            ("billing", "charge", true),
            ("billing", "refund", false),
        ] {
            assert_eq!(
                keys.authorize_call(Some(&secret), m, f).is_ok(),
                ok,
                "{m}.{f}"
            );
        }
        let e = keys
            .authorize_call(Some(&secret), "other", "f")
            .unwrap_err();
        assert_eq!(e.kind, Kind::Forbidden);
        // A wrong secret of the same id, a garbled one, none: unauthorized.
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push('x');
        for bad in [wrong.as_str(), "fnk_nope", "Bearer", ""] {
            assert_eq!(
                keys.verify(bad).unwrap_err().kind,
                Kind::Unauthorized,
                "{bad}"
            );
        }
        assert_eq!(
            keys.authorize_call(None, "math", "add").unwrap_err().kind,
            Kind::Unauthorized
        );
        assert!(key.view().get("secret_sha256").is_none());
        keys.revoke(key.id()).await.unwrap().unwrap();
        assert_eq!(keys.verify(&secret).unwrap_err().kind, Kind::Unauthorized);
        assert!(store.keys().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn deploy_keys_cover_names_not_calls_and_expired_keys_are_refused() {
        let keys = Keys::load(Arc::new(MemoryStore::new())).await.unwrap();
        let (deploy, secret) = keys
            .create(new_key(Role::Deploy, &["team-a-*", "billing.charge"]))
            .await
            .unwrap();
        assert!(deploy.covers_name("team-a-x"));
        assert!(
            !deploy.covers_name("billing"),
            "function patterns do not cover names"
        );
        let e = keys
            .authorize_call(Some(&secret), "team-a-x", "f")
            .unwrap_err();
        assert_eq!(e.kind, Kind::Unauthorized, "a deploy key does not call");
        let mut expired = new_key(Role::Invoke, &["math"]);
        expired.expires_at = Some("2020-01-01T00:00:00Z".into());
        let (_, secret) = keys.create(expired).await.unwrap();
        let e = keys.verify(&secret).unwrap_err();
        assert_eq!(e.data["reason"], "expired_key");
    }

    #[tokio::test]
    async fn bad_requests_name_the_field() {
        let keys = Keys::load(Arc::new(MemoryStore::new())).await.unwrap();
        for (scope, field) in [
            (&["Math"][..], "scope"),
            (&[][..], "scope"),
            (&["a*.f"][..], "scope"),
        ] {
            let e = keys.create(new_key(Role::Invoke, scope)).await.unwrap_err();
            assert_eq!(e.data["param"], field, "{scope:?}");
        }
        let mut k = new_key(Role::Invoke, &["*"]);
        k.expires_at = Some("tomorrow".into());
        assert_eq!(
            keys.create(k).await.unwrap_err().data["param"],
            "expires_at"
        );
    }

    #[test]
    fn rate_limits_refuse_past_the_burst_and_say_when() {
        let mut record = KeyRecord {
            id: "key_x".into(),
            name: "x".into(),
            role: Role::Invoke,
            scope: vec!["*".into()],
            created_at: String::new(),
            expires_at: None,
            rate_per_s: Some(2),
            max_fuel: None,
            max_memory_mib: None,
            max_timeout_ms: None,
            secret_sha256: Digest::of(b""),
        };
        let key = Key::new(record.clone());
        assert!(key.take().is_ok() && key.take().is_ok());
        let wait = key.take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        record.rate_per_s = None;
        let free = Key::new(record);
        assert!((0..1000).all(|_| free.take().is_ok()));
    }
}
