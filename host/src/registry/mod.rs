//! Names → versions → compiled programs; the live map every call reads.
//!
//! The registry is the only writer of the [`store`]. A deploy is compiled first (off the async
//! workers, a bounded number at a time), then committed to disk, then swapped into the live
//! map: a call sees the old program or the new one, never a half-deployed one, and a failed
//! deploy changes nothing.

pub mod store;
pub mod usage;

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use dashmap::DashMap;
use fnhost_abi::FunctionMeta;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::config::{Config, LimitOverrides, Limits};
use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::sandbox::{Program, Sandbox};
use store::{NameRecord, Store, StoreError, VersionRecord};

/// Module names that would shadow the protocol's own methods (`system.*`, `rpc.*`).
pub const RESERVED_NAMES: [&str; 2] = ["rpc", "system"];

/// Checks a module name: `[a-z][a-z0-9_-]{0,62}`, not reserved.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'));
    if !ok {
        return Err(Error::new(
            Kind::BadName,
            format!(
                "invalid module name {name:?}: use lowercase letters, digits, `-` and `_`, \
                 starting with a letter, at most 63 characters"
            ),
        )
        .with("name", name));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::new(
            Kind::BadName,
            format!("the module name `{name}` is reserved for the protocol's own methods"),
        )
        .with("name", name));
    }
    Ok(())
}

/// A deployed name as calls and listings see it.
#[derive(Debug)]
pub struct Entry {
    pub name: Arc<str>,
    /// The persisted history; the last version is served.
    pub record: NameRecord,
    /// The limits in force for calls.
    pub limits: Limits,
    /// The program once loaded (verified and compiled or deserialized), or why it cannot be
    /// served. Empty until the first call or the background check after start-up.
    program: OnceCell<Result<Arc<Program>, String>>,
    /// Call counters; kept across versions of the name.
    pub usage: Arc<usage::Usage>,
    /// Bounds this name's calls in flight, so one hot or hostile module cannot take every slot.
    pub call_slots: Arc<Semaphore>,
}

impl Entry {
    pub fn current(&self) -> &VersionRecord {
        // A record is only ever created with one version and only grows.
        &self.record.versions[self.record.versions.len() - 1]
    }

    /// The current version's functions, from the persisted metadata: listings, introspection
    /// and params checks never need the program itself.
    pub fn functions(&self) -> &[FunctionMeta] {
        &self.current().functions
    }

    /// One function's metadata.
    pub fn function(&self, name: &str) -> Option<&FunctionMeta> {
        self.functions().iter().find(|f| f.name == name)
    }

    /// Why the entry cannot be served, once that is known.
    pub fn unavailable(&self) -> Option<&str> {
        match self.program.get() {
            Some(Err(reason)) => Some(reason),
            _ => None,
        }
    }

    /// `loaded`, `not_loaded` (loads on first call) or `unavailable`.
    pub fn status(&self) -> &'static str {
        match self.program.get() {
            Some(Ok(_)) => "loaded",
            Some(Err(_)) => "unavailable",
            None => "not_loaded",
        }
    }
}

/// What a deploy did.
#[derive(Debug)]
pub enum Deployed {
    /// A new version was stored and is now served.
    Created(Arc<Entry>),
    /// The same bytes and limits were already current; nothing changed.
    Unchanged(Arc<Entry>),
}

/// The set of deployed names.
pub struct Registry {
    store: Arc<Store>,
    sandbox: Arc<Sandbox>,
    live: DashMap<String, Arc<Entry>>,
    /// Compiled programs by digest, shared by every name whose current bytes are the same: one
    /// compile and one `InstancePre` per module, however many names serve it. Weak, so a
    /// program goes away with the last entry (or call) that uses it.
    programs: DashMap<Digest, Weak<Program>>,
    /// Serializes commits (store writes + live swap); compiles run outside it.
    commit_lock: Mutex<()>,
    /// Bounds compiles running at once. A slot is held until the compile really ends, even
    /// when the deploy has already given up on it.
    compile_slots: Arc<Semaphore>,
    /// The slots' number, for the `busy` answer (the semaphore only knows how many are free).
    compile_concurrency: usize,
    compile_timeout: std::time::Duration,
    defaults: Limits,
    maxima: Limits,
    max_calls_per_module: usize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store.root())
            .field("names", &self.live.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the store and reads every name record. Programs load lazily: on a name's first
    /// call, or in [`Registry::load_all`], which the host runs in the background after start-up
    /// so a corrupted module is reported at once without delaying the start.
    pub async fn open(config: &Config, sandbox: Arc<Sandbox>) -> Result<Self, StoreError> {
        let store = Arc::new(Store::open(&config.data_dir, sandbox.compat_key())?);
        let compile_concurrency = config.compile_concurrency.max(1);
        let registry = Self {
            store,
            sandbox,
            live: DashMap::new(),
            programs: DashMap::new(),
            commit_lock: Mutex::new(()),
            compile_slots: Arc::new(Semaphore::new(compile_concurrency)),
            compile_concurrency,
            compile_timeout: config.compile_timeout,
            defaults: config.defaults,
            maxima: config.maxima,
            max_calls_per_module: config.max_calls_per_module.max(1) as usize,
        };
        let store = registry.store.clone();
        let records = tokio::task::spawn_blocking(move || {
            let records = store.load_names()?;
            let referenced: HashSet<Digest> = records
                .iter()
                .flat_map(|r| r.versions.iter().map(|v| v.sha256))
                .collect();
            match store.collect_garbage(&referenced) {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed unreferenced module files"),
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
            Ok::<_, StoreError>(records)
        })
        .await
        .map_err(|e| StoreError::other("loading failed in", &config.data_dir, e.to_string()))??;
        for record in records {
            let Some(current) = record.current() else {
                continue;
            };
            let limits = current.limits.clamped(&registry.defaults, &registry.maxima);
            let entry = Entry {
                name: Arc::from(record.name.as_str()),
                record,
                limits,
                program: OnceCell::new(),
                usage: Arc::default(),
                call_slots: Arc::new(Semaphore::new(registry.max_calls_per_module)),
            };
            registry
                .live
                .insert(entry.name.to_string(), Arc::new(entry));
        }
        Ok(registry)
    }

    /// The program of `entry`, loading it on first use: the module bytes are read and checked
    /// against their sha256, then the cached artifact is loaded (or the module recompiled).
    pub async fn program(&self, entry: &Entry) -> Result<Arc<Program>, String> {
        entry
            .program
            .get_or_init(|| async {
                let digest = entry.current().sha256;
                if let Some(program) = self.shared_program(&digest) {
                    return Ok(program);
                }
                let (store, sandbox) = (self.store.clone(), self.sandbox.clone());
                let name = entry.name.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    load_program(&store, &sandbox, &name, digest)
                })
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "loading a module failed");
                    Err("loading it failed; the host's log has the details".to_owned())
                })?;
                Ok(self.share_program(loaded))
            })
            .await
            .clone()
    }

    /// The program already compiled or loaded for `digest`, if any name still uses it.
    fn shared_program(&self, digest: &Digest) -> Option<Arc<Program>> {
        self.programs.get(digest).and_then(|p| p.upgrade())
    }

    /// Makes `program` the one every name with its digest shares, unless one raced it there.
    fn share_program(&self, program: Arc<Program>) -> Arc<Program> {
        use dashmap::mapref::entry::Entry as Slot;
        let shared = match self.programs.entry(program.digest) {
            Slot::Occupied(mut slot) => match slot.get().upgrade() {
                Some(existing) => existing,
                None => {
                    slot.insert(Arc::downgrade(&program));
                    program
                }
            },
            Slot::Vacant(slot) => {
                slot.insert(Arc::downgrade(&program));
                program
            }
        };
        // Programs no name uses any more leave only a dead weak pointer: drop those.
        self.programs.retain(|_, p| p.strong_count() > 0);
        shared
    }

    /// Loads every name's program, one after another, logging each that cannot be served.
    /// Returns how many are unavailable.
    pub async fn load_all(&self) -> usize {
        let mut unavailable = 0;
        for entry in self.list() {
            unavailable += usize::from(self.program(&entry).await.is_err());
        }
        if unavailable > 0 {
            tracing::error!(
                unavailable,
                "some modules cannot be served; see the log lines above"
            );
        }
        unavailable
    }

    /// The entry of `name`, if deployed.
    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.live.get(name).map(|e| e.value().clone())
    }

    /// Every entry, sorted by name.
    pub fn list(&self) -> Vec<Arc<Entry>> {
        let mut all: Vec<Arc<Entry>> = self.live.iter().map(|e| e.value().clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Validates, compiles, stores and registers `bytes` as the new version of `name`.
    pub async fn deploy(
        &self,
        name: &str,
        bytes: Arc<[u8]>,
        overrides: LimitOverrides,
    ) -> Result<Deployed, Error> {
        validate_name(name)?;
        let limits = overrides.resolve(&self.defaults, &self.maxima)?;
        let unchanged = |digest: &Digest| {
            self.get(name).filter(|e| {
                e.current().sha256 == *digest
                    && e.current().limits == overrides
                    && e.unavailable().is_none()
            })
        };
        // Hash off the async workers too: uploads can be megabytes.
        let hashed = bytes.clone();
        let digest = blocking(move || Ok(Digest::of(&hashed))).await?;
        if let Some(entry) = unchanged(&digest) {
            return Ok(Deployed::Unchanged(entry));
        }

        let (program, artifact) = match self.shared_program(&digest) {
            // Another name serves these bytes: no second compile.
            Some(program) => (program, None),
            None => {
                let compiled = self.compile(name, digest, &bytes).await?;
                (Arc::new(compiled.program), Some(compiled.artifact))
            }
        };

        let _commit = self.commit_lock.lock().await;
        if let Some(entry) = unchanged(&digest) {
            return Ok(Deployed::Unchanged(entry));
        }
        let mut record = self
            .get(name)
            .map(|e| e.record.clone())
            .unwrap_or(NameRecord {
                name: name.to_owned(),
                versions: Vec::new(),
            });
        let version = record.current().map_or(1, |v| v.version + 1);
        record.versions.push(VersionRecord {
            version,
            sha256: digest,
            size: bytes.len() as u64,
            deployed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            limits: overrides,
            functions: program.functions().to_vec(),
        });
        let store = self.store.clone();
        let to_write = record.clone();
        let shared = program.clone();
        blocking(move || {
            store
                .put_module(&digest, &bytes)
                .map_err(log_store("store module"))?;
            // The artifact is a cache: without it the next start recompiles.
            let artifact = match artifact {
                Some(artifact) => Some(artifact),
                None if store.verified_artifact(&digest).is_some() => None,
                None => shared.serialize().ok(),
            };
            if let Some(Err(e)) = artifact.map(|a| store.put_artifact(&digest, &a)) {
                tracing::warn!(%digest, error = %e, "cannot cache the compiled artifact");
            }
            store
                .write_name(&to_write)
                .map_err(log_store("commit name record"))
        })
        .await?;

        let previous = self.get(name);
        let entry = Arc::new(Entry {
            name: Arc::from(name),
            record,
            limits,
            program: OnceCell::new_with(Some(Ok(self.share_program(program)))),
            usage: previous
                .as_ref()
                .map(|e| e.usage.clone())
                .unwrap_or_default(),
            call_slots: previous.map_or_else(
                || Arc::new(Semaphore::new(self.max_calls_per_module)),
                |e| e.call_slots.clone(),
            ),
        });
        self.live.insert(name.to_owned(), entry.clone());
        tracing::info!(name, version, %digest, "deployed");
        Ok(Deployed::Created(entry))
    }

    /// Compiles `bytes` off the async workers, at most `compile_concurrency` at a time and
    /// within the compile budget.
    ///
    /// A compile refused for running past its budget cannot be stopped (Cranelift has no way
    /// to abandon one); it keeps its slot until it really ends. So waiting for a slot has a
    /// bound of its own, the same budget: past it the deploy is answered `busy` rather than
    /// held, and a deploy takes at most twice the budget.
    async fn compile(
        &self,
        name: &str,
        digest: Digest,
        bytes: &Arc<[u8]>,
    ) -> Result<crate::sandbox::Compiled, Error> {
        let budget = self.compile_timeout;
        let slot =
            match tokio::time::timeout(budget, self.compile_slots.clone().acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                Ok(Err(_)) => return Err(Error::internal()),
                Err(_) => {
                    tracing::warn!(name, %digest, "no compile slot freed within the budget; busy");
                    return Err(Error::new(
                        Kind::Busy,
                        format!(
                            "every compile slot is taken by a compile still running (a refused one \
                         runs on until it ends); waited {} s; try again later",
                            budget.as_secs_f64()
                        ),
                    )
                    .with("limit", self.compile_concurrency)
                    .with("scope", "compile"));
                }
            };
        let (sandbox, bytes) = (self.sandbox.clone(), bytes.clone());
        let compile = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            sandbox.compile(digest, &bytes)
        });
        match tokio::time::timeout(budget, compile).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "compile task failed");
                Err(Error::internal())
            }
            Err(_) => {
                tracing::warn!(name, %digest, "compile exceeded its time budget; refused");
                Err(Error::new(
                    Kind::BadModule,
                    format!(
                        "compiling the module took longer than the budget of {} s; refused",
                        budget.as_secs_f64()
                    ),
                )
                .with("limit_ms", budget.as_millis() as u64))
            }
        }
    }

    /// Removes `name` and every version of it; module files no other name uses are deleted.
    pub async fn remove(&self, name: &str) -> Result<Arc<Entry>, Error> {
        let _commit = self.commit_lock.lock().await;
        let Some(entry) = self.get(name) else {
            return Err(not_found(name));
        };
        let store = self.store.clone();
        let owned = name.to_owned();
        blocking(move || {
            store
                .remove_name(&owned)
                .map_err(log_store("remove name record"))
        })
        .await?;
        self.live.remove(name);
        let referenced: HashSet<Digest> = self
            .live
            .iter()
            .flat_map(|e| {
                e.record
                    .versions
                    .iter()
                    .map(|v| v.sha256)
                    .collect::<Vec<_>>()
            })
            .collect();
        let store = self.store.clone();
        // Garbage is harmless: a failure here is logged, and the next start retries.
        let gc = blocking(move || {
            store
                .collect_garbage(&referenced)
                .map_err(log_store("collect garbage"))
        })
        .await;
        if let Err(e) = gc {
            tracing::warn!(error = %e, "garbage collection after removal failed");
        }
        tracing::info!(name, "removed");
        Ok(entry)
    }
}

/// The admin API's answer for an unknown name.
pub fn not_found(name: &str) -> Error {
    Error::new(
        Kind::NotFound,
        format!("no module named `{name}` is deployed"),
    )
    .with("name", name)
}

/// Reads, verifies and instantiates-for-calls the module `digest` of `name` (blocking).
fn load_program(
    store: &Store,
    sandbox: &Sandbox,
    name: &str,
    digest: Digest,
) -> Result<Arc<Program>, String> {
    let bytes = store.read_module(&digest).map_err(|e| {
        tracing::error!(name, %digest, error = %e, "module bytes unreadable; not served");
        "its stored module bytes cannot be read".to_owned()
    })?;
    if Digest::of(&bytes) != digest {
        tracing::error!(name, %digest, "stored module bytes do not match their sha256; not served");
        return Err("its stored module bytes do not match their sha256".to_owned());
    }
    if let Some(artifact) = store.verified_artifact(&digest) {
        match sandbox.load_artifact(digest, &bytes, &artifact) {
            Ok(program) => {
                tracing::info!(name, %digest, from = "artifact", "module loaded");
                return Ok(Arc::new(program));
            }
            Err(e) => tracing::warn!(name, %digest, error = %e, "artifact unusable; recompiling"),
        }
    }
    let compiled = sandbox.compile(digest, &bytes).map_err(|e| {
        tracing::error!(name, %digest, error = %e, "stored module no longer compiles");
        format!("it no longer compiles: {}", e.message)
    })?;
    if let Err(e) = store.put_artifact(&digest, &compiled.artifact) {
        tracing::warn!(%digest, error = %e, "cannot cache the compiled artifact");
    }
    tracing::info!(name, %digest, from = "compile", "module loaded");
    Ok(Arc::new(compiled.program))
}

fn log_store(what: &'static str) -> impl Fn(StoreError) -> Error {
    move |e| {
        tracing::error!(error = %e, "store: {what} failed");
        Error::internal()
    }
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        Error::internal()
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["math", "a", "a-b_c9", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Math",
            "9a",
            "-a",
            "a.b",
            "a/b",
            "ä",
            &"a".repeat(64),
            "rpc",
            "system",
        ] {
            assert_eq!(validate_name(bad).unwrap_err().kind, Kind::BadName, "{bad}");
        }
    }
}
