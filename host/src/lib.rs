//! fnhost: runs untrusted WebAssembly functions as JSON-RPC methods, each call in a fresh
//! sandbox with fuel, a deadline and a memory cap.
//!
//! Map of the crate:
//! - [`config`]: limits and paths, with safe defaults;
//! - [`error`]: every failure, its JSON-RPC code and HTTP status, in one table;
//! - [`sandbox`]: the only module that names wasmtime: engine, compile, per-call store;
//! - [`registry`]: names → versions → programs, and the atomic on-disk store;
//! - [`rpc`]: the dispatcher and the JSON-RPC 2.0 front end;
//! - [`http`]: routes, body limits, the admin token check;
//! - [`auth`]: the admin token.
//!
//! [`App::start`] builds the shared state, [`app`] the router (testable without a socket),
//! [`run`] serves it on a listener until `shutdown` completes.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod auth;
pub mod config;
pub mod digest;
pub mod error;
pub mod http;
pub mod registry;
pub mod rpc;
pub mod sandbox;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::net::TcpListener;
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
}

/// The shared state as handlers hold it.
pub type AppState = Arc<App>;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Engine(#[from] sandbox::EngineError),
    #[error("cannot open the store: {0}")]
    Store(#[from] registry::store::StoreError),
    #[error(transparent)]
    Token(#[from] auth::TokenError),
}

impl App {
    /// Builds the engine, opens the store and loads every deployed module.
    pub async fn start(config: Config) -> Result<AppState, StartError> {
        let sandbox = Arc::new(sandbox::Sandbox::new(&config)?);
        let admin = auth::AdminToken::load(config.admin_token.clone(), &config.data_dir)?;
        let registry = registry::Registry::open(&config, sandbox).await?;
        let app = Arc::new(App {
            call_slots: Semaphore::new(config.max_concurrent_calls as usize),
            config,
            registry,
            admin,
            panics: Arc::new(AtomicU64::new(0)),
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

/// The HTTP application.
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
