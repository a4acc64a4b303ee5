//! A store in PostgreSQL, for several hosts sharing one registry (`--store postgres://…`).
//!
//! Tables (`migrations/0001_initial.sql`): `modules` (bytes by digest), `names` (each name's
//! next version number), `versions` (each version's record as JSON), `keys`, `audit`, and
//! `changes`, the numbered list of what changed that replicas poll ([`Store::changes_since`])
//! and are told of ([`Store::watch`], by `NOTIFY`). Each mutation is one transaction, its
//! change row included; change numbers follow commit order (see [`PostgresStore::record_change`]).
//!
//! Connections come from a pool (`deadpool-postgres`) that waits at most [`WAIT`] for one and
//! gives a new connection [`WAIT`] to be made, so with the server down every operation fails
//! (`Backend`) within seconds; the `LISTEN` connection is separate ([`listen`]). The schema is
//! brought up to date at open ([`migrate`]). `docs/STORAGE.md` has the reasoning.

mod errors;
mod listen;
pub mod migrate;
mod url;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{
    AuditEntry, Change, Changed, KeyRecord, NameRecord, NewVersion, Store, StoreError,
    StoreErrorKind, StoreStats, VersionRecord,
};
use crate::digest::Digest;
use errors::{corrupt, decode, encode, pg_error, pool_error};
use url::{describe, parse};

/// How long an operation waits for a pooled connection, and a new connection to be made.
pub const WAIT: Duration = Duration::from_secs(2);

/// Connections one host keeps at most (besides the `LISTEN` one).
const POOL_SIZE: usize = 16;

/// Advisory lock keys ("fnhost" in ASCII, then a number): the migrations', and the one that
/// serialises change numbering until commit.
const MIGRATE_LOCK: i64 = 0x666e_686f_7374_0001;
const CHANGE_LOCK: i64 = 0x666e_686f_7374_0002;

/// See the module docs.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    /// `postgres://user@host:port/db`, never the password.
    describe: String,
    /// The `LISTEN` task: announcements and whether the server is reachable.
    listener: listen::Listener,
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://` or `postgresql://`), brings its
    /// schema up to date (or refuses it, saying why), and starts listening for changes.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let config = parse(url)?;
        let describe = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::new(StoreErrorKind::Backend, format!("{describe}: {e}")))?;
        let applied = migrate::run(&pool)
            .await
            .map_err(|e| StoreError::new(e.kind, format!("{describe}: {}", e.detail)))?;
        if !applied.is_empty() {
            tracing::info!(store = %describe, ?applied, "schema migrated");
        }
        let listener = listen::Listener::start(config);
        // Healthy from the start when the server is: give the LISTEN connection its moment.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !listener.healthy() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(PostgresStore {
            pool,
            describe,
            listener,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Numbers a change and records it, inside `tx`, as the transaction's last step. The
    /// advisory lock is held until `tx` ends, so the next change is numbered only after this
    /// one is committed (or rolled back): numbers become visible in order, and a replica that
    /// has seen number n never later finds a smaller one it missed. Then `NOTIFY`, which
    /// PostgreSQL delivers at commit.
    async fn record_change(
        tx: &deadpool_postgres::Transaction<'_>,
        what: &Changed,
    ) -> Result<u64, StoreError> {
        let (kind, id) = match what {
            Changed::Name(name) => ("name", name),
            Changed::Key(id) => ("key", id),
        };
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_LOCK])
            .await
            .map_err(|e| pg_error("take the change lock", e))?;
        let seq: i64 = tx
            .query_one(
                "INSERT INTO changes (seq, kind, id)
                 SELECT coalesce(max(seq), 0) + 1, $1, $2 FROM changes
                 RETURNING seq",
                &[&kind, id],
            )
            .await
            .map_err(|e| pg_error("record a change", e))?
            .get(0);
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&listen::CHANNEL, &seq.to_string()],
        )
        .await
        .map_err(|e| pg_error("notify a change", e))?;
        Ok(seq as u64)
    }
}

/// `name`'s history as stored, `None` when it has none.
async fn read_name(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<NameRecord>, StoreError> {
    let rows = client
        .query(
            "SELECT record FROM versions WHERE name = $1 ORDER BY version",
            &[&name],
        )
        .await
        .map_err(|e| pg_error("read a name", e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let versions = rows
        .into_iter()
        .map(|row| decode(format_args!("a version of {name:?}"), row.get(0)))
        .collect::<Result<Vec<VersionRecord>, _>>()?;
    Ok(Some(NameRecord {
        name: name.to_owned(),
        versions,
    }))
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn commit_version(
        &self,
        name: &str,
        version: NewVersion,
        bytes: Option<Arc<[u8]>>,
    ) -> Result<NameRecord, StoreError> {
        let digest = version.sha256.to_string();
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin a commit", e))?;
        match bytes {
            // Stored once; bytes that no longer match their digest are replaced (healed).
            Some(bytes) => {
                tx.execute(
                    "INSERT INTO modules (sha256, bytes, size) VALUES ($1, $2, $3)
                     ON CONFLICT (sha256) DO UPDATE SET bytes = EXCLUDED.bytes, size = EXCLUDED.size
                     WHERE encode(sha256(modules.bytes), 'hex') <> modules.sha256",
                    &[&digest, &&*bytes, &(bytes.len() as i64)],
                )
                .await
                .map_err(|e| pg_error("store module bytes", e))?;
            }
            None => {
                // Locked until commit, so a collection cannot take them meanwhile.
                let there = tx
                    .query_opt(
                        "SELECT 1 FROM modules WHERE sha256 = $1 FOR KEY SHARE",
                        &[&digest],
                    )
                    .await
                    .map_err(|e| pg_error("look for module bytes", e))?;
                if there.is_none() {
                    return Err(StoreError::new(
                        StoreErrorKind::NotFound,
                        format!("no module {digest}"),
                    ));
                }
            }
        }
        // The name's row is locked until commit: commits to one name, from any host, take
        // turns, and each gets its own number.
        let number: i32 = tx
            .query_one(
                "INSERT INTO names (name, next_version) VALUES ($1, 2)
                 ON CONFLICT (name) DO UPDATE SET next_version = names.next_version + 1
                 RETURNING next_version - 1",
                &[&name],
            )
            .await
            .map_err(|e| pg_error("number a version", e))?
            .get(0);
        let record = version.numbered(number as u32);
        tx.execute(
            "INSERT INTO versions (name, version, sha256, record) VALUES ($1, $2, $3, $4)",
            &[&name, &number, &digest, &encode(&record)?],
        )
        .await
        .map_err(|e| pg_error("record a version", e))?;
        let whole = read_name(&tx, name).await?.ok_or_else(|| {
            StoreError::new(StoreErrorKind::Backend, "a committed name has no versions")
        })?;
        Self::record_change(&tx, &Changed::Name(name.to_owned())).await?;
        tx.commit()
            .await
            .map_err(|e| pg_error("commit a version", e))?;
        Ok(whole)
    }

    async fn module(&self, digest: &Digest) -> Result<Arc<[u8]>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT bytes FROM modules WHERE sha256 = $1",
                &[&digest.to_string()],
            )
            .await
            .map_err(|e| pg_error("read module bytes", e))?
            .ok_or_else(|| {
                StoreError::new(StoreErrorKind::NotFound, format!("no module {digest}"))
            })?;
        let bytes: Vec<u8> = row.get(0);
        if Digest::of(&bytes) != *digest {
            return Err(StoreError::new(
                StoreErrorKind::Corrupt,
                format!("module {digest} does not match its sha256"),
            ));
        }
        Ok(Arc::from(bytes))
    }

    async fn name(&self, name: &str) -> Result<Option<NameRecord>, StoreError> {
        let client = self.client().await?;
        read_name(&client, name).await
    }

    async fn names(&self) -> Result<Vec<NameRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, record FROM versions ORDER BY name COLLATE \"C\", version",
                &[],
            )
            .await
            .map_err(|e| pg_error("read the names", e))?;
        let mut names: BTreeMap<String, Result<Vec<VersionRecord>, StoreError>> = BTreeMap::new();
        for row in rows {
            let name: String = row.get(0);
            let version = decode(format_args!("a version of {name:?}"), row.get(1));
            let versions = names.entry(name).or_insert_with(|| Ok(Vec::new()));
            match (versions, version) {
                (Ok(list), Ok(v)) => list.push(v),
                (slot @ Ok(_), Err(e)) => *slot = Err(e),
                (Err(_), _) => {}
            }
        }
        Ok(names
            .into_iter()
            .filter_map(|(name, versions)| match versions {
                Ok(versions) => Some(NameRecord { name, versions }),
                Err(e) => {
                    tracing::error!(error = %e, %name, "skipping a name record that cannot be read");
                    None
                }
            })
            .collect())
    }

    async fn remove_name(&self, name: &str) -> Result<Option<NameRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin a removal", e))?;
        // The name's row first, as commits lock it: a commit to this name waits for the
        // removal, or the removal for the commit, whole.
        let there = tx
            .query_opt("SELECT 1 FROM names WHERE name = $1 FOR UPDATE", &[&name])
            .await
            .map_err(|e| pg_error("lock a name", e))?;
        if there.is_none() {
            return Ok(None);
        }
        let rows = tx
            .query(
                "DELETE FROM versions WHERE name = $1 RETURNING version, record",
                &[&name],
            )
            .await
            .map_err(|e| pg_error("remove a name's versions", e))?;
        let mut versions = Vec::new();
        for row in rows {
            let number: i32 = row.get(0);
            let record: VersionRecord = decode(format_args!("a version of {name:?}"), row.get(1))?;
            versions.push((number, record));
        }
        versions.sort_by_key(|(n, _)| *n);
        tx.execute("DELETE FROM names WHERE name = $1", &[&name])
            .await
            .map_err(|e| pg_error("remove a name", e))?;
        Self::record_change(&tx, &Changed::Name(name.to_owned())).await?;
        tx.commit()
            .await
            .map_err(|e| pg_error("commit a removal", e))?;
        Ok(Some(NameRecord {
            name: name.to_owned(),
            versions: versions.into_iter().map(|(_, v)| v).collect(),
        }))
    }

    async fn collect_garbage(&self) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM modules m
                 WHERE NOT EXISTS (SELECT 1 FROM versions v WHERE v.sha256 = m.sha256)",
                &[],
            )
            .await
            .map_err(|e| pg_error("collect garbage", e))?;
        Ok(n as usize)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM modules),
                        (SELECT coalesce(sum(size), 0)::bigint FROM modules),
                        (SELECT count(*) FROM names)",
                &[],
            )
            .await
            .map_err(|e| pg_error("count", e))?;
        let (modules, bytes, names): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        Ok(StoreStats {
            modules: modules as usize,
            module_bytes: bytes as u64,
            names: names as usize,
        })
    }

    async fn put_key(&self, key: KeyRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin a key write", e))?;
        tx.execute(
            "INSERT INTO keys (id, record) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[&key.id, &encode(&key)?],
        )
        .await
        .map_err(|e| pg_error("store a key", e))?;
        Self::record_change(&tx, &Changed::Key(key.id.clone())).await?;
        tx.commit().await.map_err(|e| pg_error("commit a key", e))
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, record FROM keys ORDER BY id COLLATE \"C\"", &[])
            .await
            .map_err(|e| pg_error("read the keys", e))?;
        rows.into_iter()
            .map(|row| {
                let id: String = row.get(0);
                decode(format_args!("key {id}"), row.get(1))
            })
            .collect()
    }

    async fn delete_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("begin a key removal", e))?;
        let Some(row) = tx
            .query_opt("DELETE FROM keys WHERE id = $1 RETURNING record", &[&id])
            .await
            .map_err(|e| pg_error("delete a key", e))?
        else {
            return Ok(None);
        };
        let key: KeyRecord = decode(format_args!("key {id}"), row.get(0))?;
        Self::record_change(&tx, &Changed::Key(id.to_owned())).await?;
        tx.commit()
            .await
            .map_err(|e| pg_error("commit a key removal", e))?;
        Ok(Some(key))
    }

    async fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let entry = AuditEntry { seq: 0, ..entry };
        let seq: i64 = client
            .query_one(
                "INSERT INTO audit (entry) VALUES ($1) RETURNING seq",
                &[&encode(&entry)?],
            )
            .await
            .map_err(|e| pg_error("append to the audit log", e))?
            .get(0);
        Ok(seq as u64)
    }

    async fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT seq, entry FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(|e| pg_error("read the audit log", e))?;
        rows.into_iter()
            .map(|row| {
                let seq: i64 = row.get(0);
                let entry: AuditEntry = decode(format_args!("audit entry {seq}"), row.get(1))?;
                Ok(AuditEntry {
                    seq: seq as u64,
                    ..entry
                })
            })
            .collect()
    }

    async fn changes_since(&self, after: u64) -> Result<Vec<Change>, StoreError> {
        let client = self.client().await?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT seq, kind, id FROM changes WHERE seq > $1 ORDER BY seq",
                &[&after],
            )
            .await
            .map_err(|e| pg_error("read the changes", e))?;
        rows.into_iter()
            .map(|row| {
                let (seq, kind, id): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
                let what = match kind.as_str() {
                    "name" => Changed::Name(id),
                    "key" => Changed::Key(id),
                    other => return Err(corrupt(format_args!("change {seq}"), other)),
                };
                Ok(Change {
                    seq: seq as u64,
                    what,
                })
            })
            .collect()
    }

    async fn last_change(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let seq: i64 = client
            .query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])
            .await
            .map_err(|e| pg_error("read the last change", e))?
            .get(0);
        Ok(seq as u64)
    }

    fn watch(&self) -> Option<tokio::sync::broadcast::Receiver<u64>> {
        Some(self.listener.subscribe())
    }

    fn healthy(&self) -> bool {
        self.listener.healthy()
    }
}
