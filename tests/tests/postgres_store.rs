//! The PostgreSQL store against real servers (tests/src/pg.rs): the store contract, the
//! migrations, change numbering and announcements across two hosts' stores, a server that
//! restarts or goes away, and `fnhost serve --store postgres://…` end to end.
//!
//! Needs PostgreSQL's binaries (scripts/postgres.sh installs them; scripts/test.sh sources it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fnhost::digest::Digest;
use fnhost::store::contract::{Backend, version};
use fnhost::store::{
    AuditEntry, Changed, KeyRecord, MIGRATIONS, PostgresStore, Role, Store, StoreErrorKind,
};
use fnhost_tests::pg::PgServer;
use fnhost_tests::{Host, guest};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// A fresh database on the shared server.
struct Pg {
    url: String,
}

impl Pg {
    fn new() -> Pg {
        let server = PgServer::shared();
        Pg {
            url: server.url(&server.create_database()),
        }
    }
}

/// SQL run behind the store's back.
async fn sql(url: &str, statement: &str) -> u64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let n = client.execute(statement, &[]).await.unwrap();
    drop(client);
    let _ = driver.await;
    n
}

#[async_trait]
impl Backend for Pg {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(PostgresStore::open(&self.url).await.unwrap())
    }

    async fn corrupt(&self, digest: &Digest) {
        let n = sql(
            &self.url,
            &format!(
                "UPDATE modules SET bytes = '\\x00'::bytea || bytes WHERE sha256 = '{digest}'"
            ),
        )
        .await;
        assert_eq!(n, 1);
    }
}

fnhost::store_contract_tests!(crate::Pg::new());

fn bytes(b: &[u8]) -> Option<Arc<[u8]>> {
    Some(Arc::from(b))
}

fn key(id: &str) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        name: "k".into(),
        role: Role::Invoke,
        scope: vec!["math".into()],
        created_at: "2026-01-01T00:00:00Z".into(),
        expires_at: None,
        rate_per_s: None,
        max_fuel: None,
        max_memory_mib: None,
        max_timeout_ms: None,
        secret_sha256: Digest::of(id.as_bytes()),
    }
}

/// Waits (at most `within`) until `cond` holds.
async fn until(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_gets_the_schema() {
    let db = Pg::new();
    let store = db.open().await;
    assert!(store.names().await.unwrap().is_empty());
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let applied: Vec<(i32, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let shipped: Vec<(i32, String, String)> = MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned(), m.checksum()))
        .collect();
    assert_eq!(applied, shipped);
    // Opening again applies nothing more.
    db.open().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count as usize, MIGRATIONS.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_opening_at_once_migrate_once() {
    let db = Pg::new();
    let (a, b) = tokio::join!(PostgresStore::open(&db.url), PostgresStore::open(&db.url));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.commit_version("x", version(b"x"), bytes(b"x"))
        .await
        .unwrap();
    assert_eq!(b.name("x").await.unwrap().unwrap().versions.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_binary_is_refused() {
    let db = Pg::new();
    db.open().await;
    sql(
        &db.url,
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'future', 'x')",
    )
    .await;
    let e = PostgresStore::open(&db.url).await.unwrap_err();
    assert!(
        e.detail.contains("version 99") && e.detail.contains("newer"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_changed_after_it_was_applied_is_refused() {
    let db = Pg::new();
    db.open().await;
    sql(
        &db.url,
        "UPDATE schema_migrations SET checksum = 'abc123' WHERE version = 1",
    )
    .await;
    let e = PostgresStore::open(&db.url).await.unwrap_err();
    assert!(
        e.detail.contains("0001_initial") && e.detail.contains("abc123"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_disable_and_prefer_connect_in_plain_text_and_require_is_refused() {
    let db = Pg::new();
    for mode in ["disable", "prefer"] {
        let store = PostgresStore::open(&format!("{}?sslmode={mode}", db.url))
            .await
            .unwrap();
        assert!(store.names().await.unwrap().is_empty(), "{mode}");
    }
    let e = PostgresStore::open(&format!("{}?sslmode=require", db.url))
        .await
        .unwrap_err();
    assert!(e.detail.contains("sslmode=require"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_store_is_announced_on_the_other() {
    let db = Pg::new();
    let (a, b) = (db.open().await, db.open().await);
    until(Duration::from_secs(10), "b listening", || b.healthy()).await;
    let mut announced = b.watch().expect("a shared store announces changes");
    a.put_key(key("key_1")).await.unwrap();
    a.commit_version("math", version(b"m"), bytes(b"m"))
        .await
        .unwrap();
    let last = a.last_change().await.unwrap();
    assert_eq!(last, 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let seq = tokio::time::timeout_at(deadline, announced.recv())
            .await
            .expect("announced within a second")
            .unwrap();
        if seq == last {
            break;
        }
    }
    let changes = b.changes_since(0).await.unwrap();
    let seen: Vec<(u64, Changed)> = changes.into_iter().map(|c| (c.seq, c.what)).collect();
    assert_eq!(
        seen,
        vec![
            (1, Changed::Key("key_1".into())),
            (2, Changed::Name("math".into()))
        ]
    );
    assert_eq!(b.changes_since(1).await.unwrap().len(), 1);
    assert_eq!(b.last_change().await.unwrap(), 2);
    // A removal that removes nothing is no change.
    assert_eq!(a.remove_name("nothing").await.unwrap(), None);
    assert_eq!(a.delete_key("key_none").await.unwrap(), None);
    assert_eq!(b.last_change().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_committers_on_two_stores_lose_nothing_and_number_changes_in_order() {
    const WRITERS: usize = 16;
    let db = Pg::new();
    let stores = [db.open().await, db.open().await];
    // A replica polling meanwhile must see numbers without gaps: a gap it saw would be a
    // change it could miss for good.
    let poller = {
        let store = stores[1].clone();
        tokio::spawn(async move {
            let mut last = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while last < WRITERS as u64 {
                assert!(Instant::now() < deadline, "saw {last} changes");
                for change in store.changes_since(last).await.unwrap() {
                    assert_eq!(
                        change.seq,
                        last + 1,
                        "changes appear in order, without gaps"
                    );
                    last = change.seq;
                }
            }
        })
    };
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                let payload = format!("writer {i}").into_bytes();
                let name = if i % 4 == 0 { "cold" } else { "hot" };
                store
                    .commit_version(name, version(&payload), bytes(&payload))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    poller.await.unwrap();
    let hot = stores[0].name("hot").await.unwrap().unwrap();
    let numbers: Vec<u32> = hot.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
    let cold = stores[1].name("cold").await.unwrap().unwrap();
    assert_eq!(cold.versions.len(), 4);
    let changes = stores[0].changes_since(0).await.unwrap();
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=WRITERS as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_version_record_is_corrupt_and_skipped_in_listings() {
    let db = Pg::new();
    let store = db.open().await;
    for name in ["good", "bad"] {
        store
            .commit_version(name, version(b"m"), bytes(b"m"))
            .await
            .unwrap();
    }
    sql(
        &db.url,
        r#"UPDATE versions SET record = '{"version": "not a number"}' WHERE name = 'bad'"#,
    )
    .await;
    let e = store.name("bad").await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Corrupt, "{e}");
    let names: Vec<String> = store
        .names()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["good"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_store_is_healthy_again_and_commits() {
    let server = PgServer::start();
    let url = server.url(&server.create_database());
    let store = PostgresStore::open(&url).await.unwrap();
    until(Duration::from_secs(10), "healthy at first", || {
        store.healthy()
    })
    .await;
    store
        .commit_version("n", version(b"a"), bytes(b"a"))
        .await
        .unwrap();
    let mut announced = store.watch().unwrap();
    tokio::task::block_in_place(|| server.stop());
    until(Duration::from_secs(10), "unhealthy once stopped", || {
        !store.healthy()
    })
    .await;
    tokio::task::block_in_place(|| server.start_again());
    until(Duration::from_secs(15), "healthy after the restart", || {
        store.healthy()
    })
    .await;
    // Back, it announces the last change, for replicas that missed some meanwhile.
    let seq = tokio::time::timeout(Duration::from_secs(1), announced.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seq, 1);
    let record = store
        .commit_version("n", version(b"b"), bytes(b"b"))
        .await
        .unwrap();
    assert_eq!(record.versions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_down_every_operation_fails_as_backend_within_seconds() {
    let server = PgServer::start();
    let url = server.url(&server.create_database());
    let store = PostgresStore::open(&url).await.unwrap();
    store
        .commit_version("n", version(b"a"), bytes(b"a"))
        .await
        .unwrap();
    tokio::task::block_in_place(|| server.stop());
    let d = Digest::of(b"a");
    macro_rules! fails {
        ($op:expr) => {{
            let started = Instant::now();
            let e = $op.await.map(|_| ()).unwrap_err();
            assert_eq!(e.kind, StoreErrorKind::Backend, "{}: {e}", stringify!($op));
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{} took {:?}",
                stringify!($op),
                started.elapsed()
            );
        }};
    }
    fails!(store.commit_version("n", version(b"b"), bytes(b"b")));
    fails!(store.module(&d));
    fails!(store.name("n"));
    fails!(store.names());
    fails!(store.remove_name("n"));
    fails!(store.collect_garbage());
    fails!(store.stats());
    fails!(store.put_key(key("key_x")));
    fails!(store.keys());
    fails!(store.delete_key("key_x"));
    fails!(store.append_audit(AuditEntry {
        seq: 0,
        time: "2026-01-01T00:00:00.000Z".into(),
        actor: "admin".into(),
        key_name: None,
        client: None,
        action: "deploy".into(),
        target: "n".into(),
        sha256: None,
        outcome: "ok".into(),
        detail: None,
    }));
    fails!(store.audit(0, 10));
    fails!(store.changes_since(0));
    fails!(store.last_change());
    fails!(PostgresStore::open(&url));
    until(Duration::from_secs(10), "unhealthy", || !store.healthy()).await;
}

#[test]
fn serve_with_a_postgres_store_shares_deploys_between_hosts() {
    let server = PgServer::shared();
    let db = server.create_database();
    let secret = "pw-never-logged-7f3a";
    let url = format!("postgres://fnhost:{secret}@127.0.0.1:{}/{db}", server.port);
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = Host::start(BIN, dir1.path(), &["--store", &url]);
    first.deploy("math", &guest("math"));
    assert_eq!(first.result("math.add", json!([2, 3])), json!(5));

    let second = Host::start(BIN, dir2.path(), &["--store", &url]);
    assert_eq!(second.result("math.add", json!([40, 2])), json!(42));
    assert!(
        std::fs::read_dir(dir2.path().join("names")).map_or(true, |mut d| d.next().is_none()),
        "the second host keeps no names of its own"
    );
    for host in [&first, &second] {
        let log = host.log();
        assert!(!log.contains(secret), "the password is in the log:\n{log}");
        assert!(
            log.contains(&format!("127.0.0.1:{}/{db}", server.port)),
            "the log names the store:\n{log}"
        );
    }
}

#[test]
fn serve_refuses_a_store_it_does_not_know_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--store", "mysql://root:hunter2@db/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--store") && err.contains("mysql"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_config_file_takes_the_store_under_the_key_store() {
    let dir = tempfile::tempdir().unwrap();
    let check = |value: &str| {
        let path = dir.path().join("fnhost.toml");
        std::fs::write(&path, format!("store = {value:?}\n")).unwrap();
        std::process::Command::new(BIN)
            .args(["config", "check"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let ok = check("postgres://fnhost:pw@db.internal:5432/fnhost");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = check("mysql://root:pw-9c1@db/x");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("store (--store)") && err.contains("mysql"),
        "{err}"
    );
    assert!(!err.contains("pw-9c1"), "{err}");
}
