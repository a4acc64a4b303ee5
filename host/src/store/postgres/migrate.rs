//! The schema's versions: SQL files shipped inside the binary, applied in order at open, each
//! recorded in `schema_migrations` with the SHA-256 of its text.
//!
//! Opening hosts take turns (a transaction-level advisory lock), and the whole run is one
//! transaction, so two hosts starting at once apply each migration once and a failed one
//! leaves the schema as it was. A database whose schema is newer than this binary knows, or
//! whose applied migration differs from the one shipped (an edited file), is refused: the
//! error says which, and nothing is changed.

use deadpool_postgres::Pool;
use sha2::{Digest as _, Sha256};

use super::MIGRATE_LOCK;
use super::errors::{pg_error, pool_error};
use crate::store::{StoreError, StoreErrorKind};

/// One versioned SQL file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, ...: the order of application, and the `NNNN_` of the file name.
    pub version: i32,
    /// The rest of the file name (`initial`), for messages.
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// Lowercase hex SHA-256 of the SQL text, as recorded when applied.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// `0001_initial`, as the file is named.
    pub fn label(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// Every migration this binary knows, in order. Never edit a shipped one: add the next.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("migrations/0001_initial.sql"),
}];

/// Brings the database's schema up to [`MIGRATIONS`], or refuses it (see the module docs).
/// Returns the versions applied now.
pub async fn run(pool: &Pool) -> Result<Vec<i32>, StoreError> {
    run_these(pool, MIGRATIONS).await
}

async fn run_these(pool: &Pool, migrations: &[Migration]) -> Result<Vec<i32>, StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error("begin the migrations", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(|e| pg_error("take the migration lock", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| pg_error("create schema_migrations", e))?;
    let rows = tx
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(|e| pg_error("read schema_migrations", e))?;
    let known = migrations.last().map_or(0, |m| m.version);
    let mut applied = Vec::new();
    for row in rows {
        let (version, name, checksum): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
        if version > known {
            return Err(refused(format!(
                "the database's schema is at version {version} ({version:04}_{name}), newer than \
                 this fnhost knows (up to {known}): run a newer fnhost against it"
            )));
        }
        let Some(ours) = migrations.iter().find(|m| m.version == version) else {
            return Err(refused(format!(
                "the database has migration {version:04}_{name} applied, which this fnhost \
                 does not ship"
            )));
        };
        if ours.checksum() != checksum {
            return Err(refused(format!(
                "migration {} was applied with checksum {checksum}, but this fnhost ships \
                 checksum {} for it: the file was changed after it was applied",
                ours.label(),
                ours.checksum()
            )));
        }
        applied.push(version);
    }
    let mut now = Vec::new();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| pg_error(&format!("apply migration {}", m.label()), e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await
        .map_err(|e| pg_error(&format!("record migration {}", m.label()), e))?;
        tracing::info!(migration = %m.label(), "applied a schema migration");
        now.push(m.version);
    }
    tx.commit()
        .await
        .map_err(|e| pg_error("commit the migrations", e))?;
    Ok(now)
}

fn refused(detail: String) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.label());
        }
    }

    #[test]
    fn the_checksum_is_the_sha256_of_the_text() {
        let m = Migration {
            version: 1,
            name: "x",
            sql: "abc",
        };
        assert_eq!(
            m.checksum(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(m.label(), "0001_x");
    }
}
