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
pub mod auth;
pub mod config;
pub mod context;
pub mod digest;
pub mod error;
pub mod http;
pub mod registry;
pub mod rpc;
pub mod sandbox;
pub mod server;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Semaphore;

pub use config::Config;

/// State shared by every request.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub registry: registry::Registry,
    pub admin: auth::AdminToken,
    /// Bounds calls in flight; past it callers get `busy` at once rather than queueing.
    pub call_slots: Semaphore,
    /// Request handlers that panicked (each was answered -32603).
    pub panics: Arc<AtomicU64>,
    /// Connections open on every listener; the server counts them and shutdown drains them.
    pub connections: Arc<server::Connections>,
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
        let sandbox = Arc::new(sandbox::Sandbox::new(&config)?);
        let admin = auth::AdminToken::load(config.admin_token.clone(), &config.data_dir)?;
        let registry = registry::Registry::open(&config, sandbox, store).await?;
        let app = Arc::new(App {
            call_slots: Semaphore::new(config.max_concurrent_calls as usize),
            config,
            registry,
            admin,
            panics: Arc::new(AtomicU64::new(0)),
            connections: Arc::default(),
        });
        // Serve at once; verify and load every stored module in the background, so a
        // corrupted one is reported right after start-up rather than at its first call.
        let loader = app.clone();
        tokio::spawn(async move {
            loader.registry.load_all().await;
        });
        Ok(app)
    }
}

impl App {
    /// Calls running now, on every transport.
    pub fn calls_in_flight(&self) -> usize {
        self.config.max_concurrent_calls as usize - self.call_slots.available_permits()
    }
}

/// The HTTP application.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}
