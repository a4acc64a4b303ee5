//! fnhost: runs untrusted WebAssembly functions as JSON-RPC methods, each call in a fresh
//! sandbox with fuel, a deadline and a memory cap.
//!
//! Map of the crate (`docs/DESIGN.md` draws the layers):
//! - [`config`]: every limit and path, with safe defaults, validated in one place;
//! - [`error`]: every failure, its JSON-RPC code and HTTP status, in one table;
//! - [`context`]: who calls, over what, from where: built once per request;
//! - [`server`]: the listeners (HTTP, TCP), their connections, graceful shutdown;
//! - [`http`]: routes, body limits, the admin token check;
//! - [`rpc`]: the dispatcher and the protocol front ends (JSON-RPC, XML-RPC, introspection);
//! - [`registry`]: names → versions → programs, the compile queue;
//! - [`store`]: the storage seam (a trait) and its embedded backends;
//! - [`artifacts`]: the local cache of precompiled code;
//! - [`sandbox`]: the only module that names wasmtime: engine, compile, per-call store;
//! - [`auth`]: the admin token.
//!
//! [`App::start`] builds the shared state, [`app`] the router (testable without a socket),
//! [`server::Server`] binds the listeners and serves until shutdown.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod context;
pub mod digest;
pub mod error;
pub mod http;
pub mod keys;
pub mod logs;
pub mod metrics;
pub mod net;
pub mod ratelimit;
pub mod registry;
pub mod replica;
pub mod rpc;
pub mod sandbox;
pub mod server;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

pub use config::Config;

/// State shared by every request.
#[derive(Debug)]
pub struct App {
    /// The config the host started with; its reloadable part is in `live`.
    pub config: Config,
    /// The settings a reload changes (address rules, timeouts, caps, default limits): read
    /// anew by every connection and request.
    pub live: ArcSwap<config::Live>,
    /// TLS certificates, when serving TLS.
    pub tls: Option<Arc<server::tls::Tls>>,
    /// The open-file limit in force (raised to the hard limit at start).
    pub open_files: u64,
    /// Caller keys (invoke and deploy), loaded from the store.
    pub keys: keys::Keys,
    /// The host's own counters (per-function ones live in the registry's entries).
    pub stats: Arc<metrics::HostStats>,
    /// Per-address rate limit of public functions (`--public-rate-per-s`), when set.
    pub public_rate: arc_swap::ArcSwapOption<ratelimit::PerAddress>,
    pub registry: registry::Registry,
    pub admin: auth::AdminToken,
    /// Bounds calls in flight; past it callers get `busy` at once rather than queueing.
    pub call_slots: Semaphore,
    /// Request handlers that panicked (each was answered -32603).
    pub panics: Arc<AtomicU64>,
    /// Connections open on every listener; the server counts them and shutdown drains them.
    pub connections: Arc<server::Connections>,
    /// Progress through a shared store's changes (always caught up for a local store).
    pub replica: replica::Replica,
    /// Signed-in console sessions (in memory: a restart signs everyone out).
    pub sessions: http::console::session::Sessions,
}

/// The shared state as handlers hold it.
pub type AppState = Arc<App>;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("bad configuration: {0}")]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Engine(#[from] sandbox::EngineError),
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Registry(#[from] registry::OpenError),
    #[error(transparent)]
    Token(#[from] auth::TokenError),
    #[error("cannot load the TLS certificate: {0}")]
    Tls(#[from] server::tls::TlsError),
}

impl App {
    /// Builds the engine, opens the store and loads every deployed module.
    pub async fn start(config: Config) -> Result<AppState, StartError> {
        config.validate()?;
        let store = store::open(&config).await?;
        Self::start_with_store(config, store).await
    }

    /// Like [`App::start`], on a store the caller opened (tests inject a [`store::MemoryStore`]).
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn store::Store>,
    ) -> Result<AppState, StartError> {
        config.validate()?;
        let tls = config
            .tls
            .as_ref()
            .map(server::tls::Tls::load)
            .transpose()?;
        let open_files = server::raise_open_files();
        let live = config::Live::of(&config, open_files);
        tracing::info!(
            open_files,
            max_connections = live.caps.total,
            max_connections_per_ip = live.caps.per_ip,
            "open-file limit"
        );
        let sandbox = Arc::new(sandbox::Sandbox::new(&config)?);
        let admin = auth::AdminToken::load(config.admin_token.clone(), &config.data_dir)?;
        // The last change first: whatever changes after it is caught up with, not missed.
        let applied = store.last_change().await?;
        let replica = replica::Replica::new(store.as_ref(), applied);
        let keys = keys::Keys::load(store.clone()).await?;
        let stats = Arc::new(metrics::HostStats::new(&sandbox));
        let registry = registry::Registry::open(&config, sandbox, store, stats.clone()).await?;
        let public_rate = arc_swap::ArcSwapOption::new(public_limiter(live.public_rate_per_s));
        let app = Arc::new(App {
            stats,
            keys,
            public_rate,
            call_slots: Semaphore::new(config.max_concurrent_calls as usize),
            live: ArcSwap::from_pointee(live),
            tls,
            open_files,
            config,
            registry,
            admin,
            panics: Arc::new(AtomicU64::new(0)),
            connections: Arc::default(),
            replica,
            sessions: Default::default(),
        });
        replica::spawn(&app);
        // Serve at once; verify and load every stored module in the background, so a
        // corrupted one is reported right after start-up rather than at its first call.
        let loader = app.clone();
        tokio::spawn(async move {
            loader.registry.load_all().await;
        });
        // Forget addresses whose public rate has refilled (ratelimit.rs bounds memory so).
        let weak = Arc::downgrade(&app);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let Some(app) = weak.upgrade() else { return };
                if let Some(limiter) = app.public_rate.load_full() {
                    limiter.prune();
                }
            }
        });
        Ok(app)
    }
}

impl App {
    /// Applies what a reloaded config changes in a running host (the [`config::Live`] part and
    /// the TLS certificate files), logging each change; returns the settings that differ but
    /// need a restart. An invalid config changes nothing.
    pub async fn reload(&self, new: &Config) -> Result<Vec<&'static str>, config::ConfigError> {
        new.validate()?;
        if let Some(tls) = &self.tls
            && new.tls.as_ref() == self.config.tls.as_ref()
        {
            tls.reload_logged("the config was reloaded");
        }
        let live = config::Live::of(new, self.open_files);
        let old = self.live.load_full();
        let mut changed = Vec::new();
        macro_rules! compare {
            ($($field:ident),*) => {$(
                if old.$field != live.$field {
                    changed.push(stringify!($field));
                    tracing::info!(setting = stringify!($field), from = ?old.$field, to = ?live.$field, "reloaded");
                }
            )*};
        }
        compare!(
            allow_from,
            admin_allow_from,
            trusted_proxies,
            timeouts,
            body_timeout,
            caps,
            defaults
        );
        if old.defaults != live.defaults {
            self.registry.set_defaults(live.defaults).await;
        }
        self.live.store(Arc::new(live));
        if changed.is_empty() {
            tracing::info!("config reloaded; nothing live changed");
        }
        let restart = config::restart_only_differences(&self.config, new);
        for setting in &restart {
            tracing::warn!(
                setting,
                "changed in the config, but takes effect only after a restart"
            );
        }
        Ok(restart)
    }

    /// Calls running now, on every transport.
    pub fn calls_in_flight(&self) -> usize {
        self.config.max_concurrent_calls as usize - self.call_slots.available_permits()
    }
}

fn public_limiter(rate: Option<u32>) -> Option<Arc<ratelimit::PerAddress>> {
    rate.and_then(std::num::NonZeroU32::new)
        .map(|r| Arc::new(ratelimit::PerAddress::new(r)))
}

/// The HTTP application.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}
