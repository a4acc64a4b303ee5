//! Names → versions → compiled programs; the live map every call reads.
//!
//! The registry is the only writer of the [`Store`]. A deploy is compiled first ([`compile`]:
//! off the async workers, a bounded number at a time), then committed to the store, then
//! swapped into the live map: a call sees the old program or the new one, never a
//! half-deployed one, and a failed deploy changes nothing. Programs are shared per digest
//! ([`programs`]); name rules live in [`names`], entries in [`entry`].

mod compile;
mod entry;
mod names;
mod programs;
pub mod usage;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::artifacts::{ArtifactCache, CacheError};
use crate::config::{Config, LimitOverrides, Limits};
use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::sandbox::Sandbox;
use crate::store::{NameRecord, NewVersion, Store, StoreError};
use compile::CompileQueue;
use programs::Programs;

pub use entry::{Deployed, Entry, Status};

/// Which version a rollback makes current again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTo {
    /// The one before the current.
    Previous,
    Version(u32),
    /// The latest version with these bytes.
    Digest(Digest),
}

impl std::fmt::Display for RollbackTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollbackTo::Previous => f.write_str("previous"),
            RollbackTo::Version(v) => write!(f, "{v}"),
            RollbackTo::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// What a deploy asks for besides the bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeployOptions {
    /// Per-call limits (within the host's maxima).
    pub limits: LimitOverrides,
    /// Who may call the function (CIDRs); empty: the host's callers.
    pub allow_from: Vec<ipnet::IpNet>,
    /// Whether calls need an invoke key.
    pub access: crate::store::Access,
    /// Who deploys (`admin` or a key id): compiles are queued fairly between deployers.
    pub deployer: String,
}

impl From<LimitOverrides> for DeployOptions {
    fn from(limits: LimitOverrides) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }
}
pub use names::{RESERVED_NAMES, validate_name};

/// Why the registry could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the artifact cache: {0}")]
    Cache(#[from] CacheError),
}

/// The set of deployed names.
pub struct Registry {
    store: Arc<dyn Store>,
    artifacts: Arc<ArtifactCache>,
    /// Hashed with foldhash: looked up on every call (docs/DESIGN.md, *Dependencies added for
    /// the call path*).
    live: DashMap<String, Arc<Entry>, foldhash::fast::RandomState>,
    programs: Programs,
    /// Serializes commits (store writes + live swap); compiles run outside it.
    commit_lock: Mutex<()>,
    compiler: CompileQueue,
    /// Deploys by outcome, and what the compile queue and program cache count.
    stats: Arc<crate::metrics::HostStats>,
    /// The host's default limits: reloadable ([`Registry::set_defaults`]).
    defaults: std::sync::RwLock<Limits>,
    maxima: Limits,
    max_calls_per_module: usize,
    log_ring_lines: usize,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store.describe())
            .field("names", &self.live.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Reads every name record from `store` and collects garbage. Programs load lazily: on a
    /// name's first call, or in [`Registry::load_all`], which the host runs in the background
    /// after start-up so a corrupted module is reported at once without delaying the start.
    pub async fn open(
        config: &Config,
        sandbox: Arc<Sandbox>,
        store: Arc<dyn Store>,
        stats: Arc<crate::metrics::HostStats>,
    ) -> Result<Self, OpenError> {
        let (root, key) = (config.data_dir.clone(), sandbox.compat_key().to_owned());
        let artifacts = tokio::task::spawn_blocking(move || ArtifactCache::open(&root, &key))
            .await
            .map_err(|e| {
                OpenError::Store(StoreError::new(
                    crate::store::StoreErrorKind::Backend,
                    e.to_string(),
                ))
            })??;
        let artifacts = Arc::new(artifacts);
        let records = store.names().await?;
        let registry = Self {
            programs: Programs::new(
                store.clone(),
                sandbox.clone(),
                artifacts.clone(),
                stats.clone(),
            ),
            compiler: CompileQueue::new(
                sandbox.clone(),
                config.compile_concurrency,
                config.compile_timeout,
                stats.clone(),
            ),
            stats,
            store,
            artifacts,
            live: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            commit_lock: Mutex::new(()),
            defaults: std::sync::RwLock::new(config.defaults),
            maxima: config.maxima,
            max_calls_per_module: config.max_calls_per_module as usize,
            log_ring_lines: config.log_ring_lines,
        };
        for record in records {
            if let Some(entry) = registry.entry_of(record, None) {
                registry
                    .live
                    .insert(entry.name.to_string(), Arc::new(entry));
            }
        }
        registry.collect_garbage().await;
        Ok(registry)
    }

    /// A live entry for `record`'s current version (`None` for an empty history), keeping the
    /// counters and call slots of `previous` (the name's entry it replaces).
    fn entry_of(&self, record: NameRecord, previous: Option<&Entry>) -> Option<Entry> {
        let limits = record
            .current()?
            .limits
            .clamped(&self.defaults(), &self.maxima);
        let logs = previous.map_or_else(
            || Arc::new(crate::logs::LogRing::new(self.log_ring_lines)),
            |e| e.logs.clone(),
        );
        let usage: Arc<usage::Usage> = previous.map(|e| e.usage.clone()).unwrap_or_default();
        let stats = record
            .current()?
            .functions
            .iter()
            .map(|f| usage.stats(&f.name))
            .collect();
        Some(Entry {
            name: Arc::from(record.name.as_str()),
            record,
            limits,
            program: OnceCell::new(),
            usage,
            stats,
            log_sink: logs.clone(),
            logs,
            call_slots: previous.map_or_else(
                || Arc::new(Semaphore::new(self.max_calls_per_module)),
                |e| e.call_slots.clone(),
            ),
        })
    }

    /// Deletes module bytes and artifacts no name's history refers to. Garbage is harmless: a
    /// failure is logged, and the next start retries.
    async fn collect_garbage(&self) {
        match self.store.collect_garbage().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed unreferenced module files"),
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
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
        let artifacts = self.artifacts.clone();
        match tokio::task::spawn_blocking(move || artifacts.retain(&referenced)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "artifact garbage collection failed"),
            Err(e) => tracing::warn!(error = %e, "artifact garbage collection failed"),
        }
    }

    /// The store the registry writes to (keys and the audit log share it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The default limits in force.
    pub fn defaults(&self) -> Limits {
        *self
            .defaults
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the default limits (a config reload): every name without overrides of its own
    /// gets them for its next call.
    pub async fn set_defaults(&self, defaults: Limits) {
        let _commit = self.commit_lock.lock().await;
        *self
            .defaults
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = defaults;
        for entry in self.list() {
            let limits = entry.current().limits.clamped(&defaults, &self.maxima);
            if limits == entry.limits {
                continue;
            }
            if let Some(mut next) = self.entry_of(entry.record.clone(), Some(&entry)) {
                next.program = OnceCell::new_with(entry.program.get().cloned());
                self.live.insert(entry.name.to_string(), Arc::new(next));
            }
        }
    }

    /// The program of `entry`, loading it on first use (see [`programs`]).
    pub async fn program(&self, entry: &Entry) -> Result<Arc<crate::sandbox::Program>, String> {
        entry
            .program
            .get_or_init(|| self.programs.load(&entry.name, entry.current().sha256))
            .await
            .clone()
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
        options: impl Into<DeployOptions>,
    ) -> Result<Deployed, Error> {
        use crate::metrics::DeployOutcome;
        let result = self.deploy_counted(name, bytes, options.into()).await;
        self.stats.deploy(match &result {
            Ok(Deployed::Created(_)) => DeployOutcome::Created,
            Ok(Deployed::Unchanged(_)) => DeployOutcome::Unchanged,
            Err(e) => DeployOutcome::Refused(e.kind),
        });
        result
    }

    async fn deploy_counted(
        &self,
        name: &str,
        bytes: Arc<[u8]>,
        options: DeployOptions,
    ) -> Result<Deployed, Error> {
        let DeployOptions {
            limits: overrides,
            allow_from,
            access,
            deployer,
        } = options;
        validate_name(name)?;
        let limits = overrides.resolve(&self.defaults(), &self.maxima)?;
        let unchanged = |digest: &Digest| {
            self.get(name).filter(|e| {
                e.current().sha256 == *digest
                    && e.current().limits == overrides
                    && e.current().allow_from == allow_from
                    && e.current().access == access
                    && e.unavailable().is_none()
            })
        };
        // Hash off the async workers too: uploads can be megabytes.
        let hashed = bytes.clone();
        let digest = blocking(move || Ok(Digest::of(&hashed))).await?;
        if let Some(entry) = unchanged(&digest) {
            return Ok(Deployed::Unchanged(entry));
        }

        let (program, artifact) = match self.programs.get(&digest) {
            // Another name serves these bytes: no second compile.
            Some(program) => (program, None),
            None => {
                let compiled = self
                    .compiler
                    .compile(name, digest, &bytes, &deployer)
                    .await?;
                (Arc::new(compiled.program), Some(compiled.artifact))
            }
        };

        let _commit = self.commit_lock.lock().await;
        if let Some(entry) = unchanged(&digest) {
            return Ok(Deployed::Unchanged(entry));
        }
        // The artifact is a cache: without it the next start recompiles.
        let (artifacts, shared) = (self.artifacts.clone(), program.clone());
        blocking(move || {
            let artifact = match artifact {
                Some(artifact) => Some(artifact),
                None if artifacts.verified(&digest).is_some() => None,
                None => shared.serialize().ok(),
            };
            if let Some(Err(e)) = artifact.map(|a| artifacts.put(&digest, &a)) {
                tracing::warn!(%digest, error = %e, "cannot cache the compiled artifact");
            }
            Ok(())
        })
        .await?;
        let version = NewVersion {
            sha256: digest,
            size: bytes.len() as u64,
            deployed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            limits: overrides,
            functions: program.functions().to_vec(),
            allow_from,
            access,
        };
        let record = self
            .store
            .commit_version(name, version, Some(bytes))
            .await?;

        let previous = self.get(name);
        let mut entry = self
            .entry_of(record, previous.as_deref())
            .ok_or_else(Error::internal)?;
        entry.limits = limits;
        entry.program = OnceCell::new_with(Some(Ok(self.programs.share(program))));
        let entry = Arc::new(entry);
        self.live.insert(name.to_owned(), entry.clone());
        tracing::info!(name, version = entry.current().version, %digest, "deployed");
        Ok(Deployed::Created(entry))
    }

    /// Makes an earlier version of `name` current again, as a new history entry with the same
    /// bytes, limits, access and address rule; its program is shared or loaded from its
    /// artifact, not recompiled, when either is at hand.
    pub async fn rollback(&self, name: &str, to: RollbackTo) -> Result<Arc<Entry>, Error> {
        let _commit = self.commit_lock.lock().await;
        let entry = self.get(name).ok_or_else(|| Error::not_found(name))?;
        let versions = &entry.record.versions;
        let target = match &to {
            RollbackTo::Previous => versions.len().checked_sub(2).map(|i| &versions[i]),
            RollbackTo::Version(v) => versions.iter().find(|r| r.version == *v),
            RollbackTo::Digest(d) => versions.iter().rev().find(|r| r.sha256 == *d),
        };
        let Some(target) = target.cloned() else {
            let what = match &to {
                RollbackTo::Previous => "an earlier version".to_owned(),
                RollbackTo::Version(v) => format!("a version {v}"),
                RollbackTo::Digest(d) => format!("a version with sha256 {d}"),
            };
            return Err(Error::new(
                Kind::NotFound,
                format!("`{name}` has no {what} to roll back to"),
            )
            .with("name", name)
            .with("to", to.to_string()));
        };
        let program = self
            .programs
            .load(&entry.name, target.sha256)
            .await
            .map_err(|reason| {
                Error::new(
                    Kind::ModuleUnavailable,
                    format!(
                        "version {} of `{name}` cannot be served: {reason}",
                        target.version
                    ),
                )
                .with("module", name)
            })?;
        let version = NewVersion {
            sha256: target.sha256,
            size: target.size,
            deployed_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            limits: target.limits,
            functions: target.functions.clone(),
            allow_from: target.allow_from.clone(),
            access: target.access,
        };
        let record = self.store.commit_version(name, version, None).await?;
        let mut next = self
            .entry_of(record, Some(&entry))
            .ok_or_else(Error::internal)?;
        next.program = OnceCell::new_with(Some(Ok(program)));
        let next = Arc::new(next);
        self.live.insert(name.to_owned(), next.clone());
        tracing::info!(
            name,
            version = next.current().version,
            from = target.version,
            digest = %target.sha256,
            "rolled back"
        );
        Ok(next)
    }

    /// Brings `name` up to what the store holds now (another replica deployed, rolled back or
    /// removed it): the new current version is served from here on (its program loads on first
    /// use, or from [`Registry::program`] right away); a name gone from the store is removed.
    /// Returns the new entry when one was installed. Read under the commit lock, so a local
    /// commit in progress is never overwritten by an older read.
    pub async fn sync_name(&self, name: &str) -> Result<Option<Arc<Entry>>, StoreError> {
        let _commit = self.commit_lock.lock().await;
        let previous = self.get(name);
        let Some(record) = self.store.name(name).await? else {
            if self.live.remove(name).is_some() {
                tracing::info!(name, "removed by another replica");
            }
            return Ok(None);
        };
        if previous.as_ref().is_some_and(|p| p.record == record) {
            return Ok(None);
        }
        let Some(mut entry) = self.entry_of(record, previous.as_deref()) else {
            self.live.remove(name);
            return Ok(None);
        };
        if let Some(previous) = &previous
            && previous.current().sha256 == entry.current().sha256
            && let Some(program) = previous.program.get()
        {
            entry.program = OnceCell::new_with(Some(program.clone()));
        }
        let entry = Arc::new(entry);
        self.live.insert(name.to_owned(), entry.clone());
        tracing::info!(
            name,
            version = entry.current().version,
            digest = %entry.current().sha256,
            "applied a change from another replica"
        );
        Ok(Some(entry))
    }

    /// Removes `name` and every version of it; module files no other name uses are deleted.
    pub async fn remove(&self, name: &str) -> Result<Arc<Entry>, Error> {
        let _commit = self.commit_lock.lock().await;
        let Some(entry) = self.get(name) else {
            return Err(Error::not_found(name));
        };
        self.store.remove_name(name).await?;
        self.live.remove(name);
        self.collect_garbage().await;
        tracing::info!(name, "removed");
        Ok(entry)
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
