//! The contract every [`Store`] backend must pass: atomic commits, history kept, removal then
//! garbage collection, identical bytes stored once, concurrent writers to one name, corrupt
//! bytes reported.
//!
//! A backend's tests implement [`Backend`] (how to open its store again, as a restarted host
//! would, and how to damage stored bytes) and expand [`store_contract_tests!`](crate::store_contract_tests)
//! with it; each check becomes one `#[tokio::test]`. The file and memory stores run it in
//! their unit tests; other crates enable the `store-contract` feature to run it against theirs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::{AuditEntry, KeyRecord, NewVersion, Role, Store, StoreErrorKind};
use crate::config::LimitOverrides;
use crate::digest::Digest;

/// What the suite needs from a backend under test.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The store, opened anew on the same data (for a persistent backend, a new instance that
    /// sees only what was committed).
    async fn open(&self) -> Arc<dyn Store>;

    /// Changes the stored bytes of `digest` behind the store's back.
    async fn corrupt(&self, digest: &Digest);
}

/// A version record for `bytes`, as a deploy would make it.
pub fn version(bytes: &[u8]) -> NewVersion {
    NewVersion {
        sha256: Digest::of(bytes),
        size: bytes.len() as u64,
        deployed_at: "2026-01-01T00:00:00Z".to_owned(),
        limits: LimitOverrides::default(),
        functions: Vec::new(),
        allow_from: Vec::new(),
        access: Default::default(),
    }
}

fn bytes(b: &[u8]) -> Option<Arc<[u8]>> {
    Some(Arc::from(b))
}

/// A committed version is there, whole, for a store opened afterwards.
pub async fn commit_is_visible_after_reopen(b: &dyn Backend) {
    let store = b.open().await;
    let record = store
        .commit_version("math", version(b"one"), bytes(b"one"))
        .await
        .unwrap();
    assert_eq!(record.name, "math");
    assert_eq!(record.versions.len(), 1);
    assert_eq!(record.versions[0].version, 1);
    assert_eq!(record.versions[0].sha256, Digest::of(b"one"));

    let again = b.open().await;
    assert_eq!(again.name("math").await.unwrap(), Some(record.clone()));
    assert_eq!(again.names().await.unwrap(), vec![record]);
    assert_eq!(&*again.module(&Digest::of(b"one")).await.unwrap(), b"one");
}

/// Every version is kept, numbered in order, per name.
pub async fn history_is_kept_in_order(b: &dyn Backend) {
    let store = b.open().await;
    for v in [&b"a"[..], b"b", b"c"] {
        store
            .commit_version("n", version(v), bytes(v))
            .await
            .unwrap();
    }
    store
        .commit_version("other", version(b"z"), bytes(b"z"))
        .await
        .unwrap();
    let record = b.open().await.name("n").await.unwrap().unwrap();
    let seen: Vec<(u32, Digest)> = record
        .versions
        .iter()
        .map(|v| (v.version, v.sha256))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, Digest::of(b"a")),
            (2, Digest::of(b"b")),
            (3, Digest::of(b"c"))
        ]
    );
    let other = store.name("other").await.unwrap().unwrap();
    assert_eq!(other.versions[0].version, 1, "numbering is per name");
    let names: Vec<String> = store
        .names()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["n", "other"], "sorted by name");
}

/// A commit that cannot complete changes nothing: here, a version of bytes never stored.
pub async fn a_failed_commit_changes_nothing(b: &dyn Backend) {
    let store = b.open().await;
    let first = store
        .commit_version("n", version(b"a"), bytes(b"a"))
        .await
        .unwrap();
    let e = store
        .commit_version("n", version(b"never stored"), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NotFound, "{e}");
    assert_eq!(b.open().await.name("n").await.unwrap(), Some(first));
    let e = store
        .commit_version("fresh", version(b"never stored"), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NotFound);
    assert_eq!(store.name("fresh").await.unwrap(), None);
}

/// A version of bytes already stored (a rollback) needs no bytes and stores none.
pub async fn a_commit_without_bytes_reuses_stored_ones(b: &dyn Backend) {
    let store = b.open().await;
    store
        .commit_version("n", version(b"a"), bytes(b"a"))
        .await
        .unwrap();
    store
        .commit_version("n", version(b"b"), bytes(b"b"))
        .await
        .unwrap();
    let record = store
        .commit_version("n", version(b"a"), None)
        .await
        .unwrap();
    assert_eq!(record.versions.len(), 3);
    assert_eq!(record.current().unwrap().version, 3);
    assert_eq!(record.current().unwrap().sha256, Digest::of(b"a"));
    assert_eq!(store.stats().await.unwrap().modules, 2);
}

/// The same bytes under several names and versions are stored once.
pub async fn identical_bytes_are_stored_once(b: &dyn Backend) {
    let store = b.open().await;
    for name in ["x", "y", "x"] {
        store
            .commit_version(name, version(b"same"), bytes(b"same"))
            .await
            .unwrap();
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.modules, stats.module_bytes, stats.names), (1, 4, 2));
}

/// Removing a name keeps the bytes until a collection, which keeps bytes others still use.
pub async fn remove_then_collect_garbage(b: &dyn Backend) {
    let store = b.open().await;
    for (name, v) in [("x", &b"a"[..]), ("x", b"b"), ("y", b"a")] {
        store
            .commit_version(name, version(v), bytes(v))
            .await
            .unwrap();
    }
    let removed = store.remove_name("x").await.unwrap().unwrap();
    assert_eq!(removed.versions.len(), 2);
    assert_eq!(store.name("x").await.unwrap(), None);
    assert!(
        store.module(&Digest::of(b"b")).await.is_ok(),
        "bytes stay until collected"
    );
    assert_eq!(store.collect_garbage().await.unwrap(), 1);
    assert!(
        store
            .module(&Digest::of(b"b"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(&*store.module(&Digest::of(b"a")).await.unwrap(), b"a");
    assert_eq!(store.remove_name("x").await.unwrap(), None);
    assert_eq!(store.collect_garbage().await.unwrap(), 0);
    store.remove_name("y").await.unwrap().unwrap();
    assert_eq!(store.collect_garbage().await.unwrap(), 1);
    assert_eq!(b.open().await.stats().await.unwrap(), Default::default());
}

/// Writers committing to one name at once each get their own version; none is lost.
pub async fn concurrent_writers_to_one_name_lose_nothing(b: &dyn Backend) {
    const WRITERS: usize = 16;
    let store = b.open().await;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let payload = format!("writer {i}").into_bytes();
                let record = store
                    .commit_version("hot", version(&payload), bytes(&payload))
                    .await
                    .unwrap();
                let mine = record.current().unwrap();
                assert_eq!(mine.sha256, Digest::of(&payload), "returns its own version");
                mine.version
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=WRITERS as u32).collect::<Vec<_>>());
    let record = b.open().await.name("hot").await.unwrap().unwrap();
    assert_eq!(record.versions.len(), WRITERS);
    let digests: HashSet<Digest> = record.versions.iter().map(|v| v.sha256).collect();
    assert_eq!(digests.len(), WRITERS, "every writer's version is recorded");
}

/// Bytes that no longer match their digest are reported, not served; good bytes heal them.
pub async fn corrupt_bytes_are_reported(b: &dyn Backend) {
    let store = b.open().await;
    store
        .commit_version("n", version(b"good"), bytes(b"good"))
        .await
        .unwrap();
    b.corrupt(&Digest::of(b"good")).await;
    let e = b
        .open()
        .await
        .module(&Digest::of(b"good"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Corrupt, "{e}");
    let store = b.open().await;
    store
        .commit_version("n", version(b"good"), bytes(b"good"))
        .await
        .unwrap();
    assert_eq!(&*store.module(&Digest::of(b"good")).await.unwrap(), b"good");
}

/// What is not there is `NotFound` or `None`, never an error of another kind.
pub async fn unknown_things_are_not_found(b: &dyn Backend) {
    let store = b.open().await;
    let e = store.module(&Digest::of(b"nothing")).await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NotFound);
    assert_eq!(store.name("nope").await.unwrap(), None);
    assert_eq!(store.remove_name("nope").await.unwrap(), None);
    assert!(store.names().await.unwrap().is_empty());
}

fn key(id: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        name: format!("{id} name"),
        role: Role::Invoke,
        scope: vec!["math".into(), "team-a-*".into()],
        created_at: "2026-01-01T00:00:00Z".into(),
        expires_at: None,
        rate_per_s: Some(5),
        max_fuel: None,
        max_memory_mib: None,
        max_timeout_ms: None,
        secret_sha256: Digest::of(id.as_bytes()),
    }
}

/// Keys are stored whole, listed by id, updated in place, deleted, and survive reopening.
pub async fn keys_are_kept_updated_and_deleted(b: &dyn Backend) {
    let store = b.open().await;
    store.put_key(key("key_b")).await.unwrap();
    store.put_key(key("key_a")).await.unwrap();
    let mut changed = key("key_b");
    changed.scope = vec!["billing.charge".into()];
    store.put_key(changed.clone()).await.unwrap();
    let again = b.open().await;
    assert_eq!(
        again.keys().await.unwrap(),
        vec![key("key_a"), changed.clone()]
    );
    assert_eq!(again.delete_key("key_b").await.unwrap(), Some(changed));
    assert_eq!(again.delete_key("key_b").await.unwrap(), None);
    assert_eq!(again.delete_key("../names/x").await.unwrap(), None);
    assert_eq!(b.open().await.keys().await.unwrap(), vec![key("key_a")]);
}

fn entry(action: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        time: "2026-01-01T00:00:00.000Z".into(),
        actor: "admin".into(),
        key_name: None,
        client: Some("127.0.0.1".into()),
        action: action.into(),
        target: "math".into(),
        sha256: Some(Digest::of(b"m")),
        outcome: "ok".into(),
        detail: None,
    }
}

/// The audit log numbers entries in order, never loses one, and survives reopening.
pub async fn the_audit_log_is_append_only_and_numbered(b: &dyn Backend) {
    let store = b.open().await;
    for action in ["deploy", "remove", "key_create"] {
        store.append_audit(entry(action)).await.unwrap();
    }
    let again = b.open().await;
    assert_eq!(again.append_audit(entry("rollback")).await.unwrap(), 4);
    let all = again.audit(0, 100).await.unwrap();
    let seen: Vec<(u64, &str)> = all.iter().map(|e| (e.seq, e.action.as_str())).collect();
    assert_eq!(
        seen,
        vec![
            (1, "deploy"),
            (2, "remove"),
            (3, "key_create"),
            (4, "rollback")
        ]
    );
    assert_eq!(
        all[0],
        AuditEntry {
            seq: 1,
            ..entry("deploy")
        }
    );
    let page = again.audit(1, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert!(again.audit(4, 10).await.unwrap().is_empty());
}

/// Expands to one `#[tokio::test]` per contract check, each with a fresh backend from `$make`.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@each $make;
            commit_is_visible_after_reopen,
            history_is_kept_in_order,
            a_failed_commit_changes_nothing,
            a_commit_without_bytes_reuses_stored_ones,
            identical_bytes_are_stored_once,
            remove_then_collect_garbage,
            concurrent_writers_to_one_name_lose_nothing,
            corrupt_bytes_are_reported,
            unknown_things_are_not_found,
            keys_are_kept_updated_and_deleted,
            the_audit_log_is_append_only_and_numbered,
        );
    };
    (@each $make:expr; $($check:ident),* $(,)?) => {
        mod store_contract {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let backend = $make;
                    $crate::store::contract::$check(&backend).await;
                }
            )*
        }
    };
}
