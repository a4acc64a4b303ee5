//! The server the library owns: every configured listener (HTTP, and the TCP transport when
//! asked) under one shutdown signal, with every connection tracked so shutdown can drain them.
//!
//! [`Server::bind`] binds what [`Config`](crate::Config) names; [`Server::run`] serves until
//! its `shutdown` future completes, then stops accepting, lets each connection finish the
//! request it is serving (an idle one closes at once), and waits for them, at most the longest
//! call deadline plus a grace. The binary only parses flags, sets up logging, binds and runs.

mod http;
pub mod tcp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::AppState;

/// How long past the longest call deadline shutdown waits for connections to finish.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Http,
    Tcp,
}

/// Connections open now, per transport; shutdown waits for them to reach zero.
#[derive(Debug, Default)]
pub struct Connections {
    http: AtomicUsize,
    tcp: AtomicUsize,
    closed: Notify,
}

impl Connections {
    fn counter(&self, listener: Listener) -> &AtomicUsize {
        match listener {
            Listener::Http => &self.http,
            Listener::Tcp => &self.tcp,
        }
    }

    /// Connections open on `listener`.
    pub fn open(&self, listener: Listener) -> usize {
        self.counter(listener).load(Ordering::Relaxed)
    }

    fn total(&self) -> usize {
        self.open(Listener::Http) + self.open(Listener::Tcp)
    }

    /// Counts a connection until the guard is dropped.
    pub(crate) fn track(self: &Arc<Self>, listener: Listener) -> ConnectionGuard {
        self.counter(listener).fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            connections: self.clone(),
            listener,
        }
    }

    /// Resolves once no connection is open.
    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.total() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// One open connection; dropping it closes the count.
pub(crate) struct ConnectionGuard {
    connections: Arc<Connections>,
    listener: Listener,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.connections
            .counter(self.listener)
            .fetch_sub(1, Ordering::Relaxed);
        self.connections.closed.notify_waiters();
    }
}

/// The bound listeners of one host.
#[derive(Debug)]
pub struct Server {
    app: AppState,
    http: TcpListener,
    tcp: Option<TcpListener>,
}

impl Server {
    /// Binds the HTTP listener (`Config::listen`) and, when configured, the TCP one
    /// (`Config::tcp_listen`). The error names the address and the flag.
    pub async fn bind(app: AppState) -> Result<Self, BindError> {
        let addr = app.config.listen;
        let http = TcpListener::bind(addr).await.map_err(|e| BindError {
            flag: "--listen",
            addr,
            source: e,
        })?;
        let tcp = match app.config.tcp_listen {
            None => None,
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| BindError {
                flag: "--tcp",
                addr,
                source: e,
            })?),
        };
        Ok(Self { app, http, tcp })
    }

    /// Serves on already bound listeners (tests bind their own).
    pub fn from_listeners(app: AppState, http: TcpListener, tcp: Option<TcpListener>) -> Self {
        Self { app, http, tcp }
    }

    /// The HTTP listener's address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The TCP listener's address, when there is one.
    pub fn tcp_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.tcp.as_ref().map(TcpListener::local_addr)
    }

    /// Serves until `shutdown` resolves, then drains (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop, stopped) = watch::channel(false);
        let app = self.app;
        let mut accepting = vec![tokio::spawn(http::accept(
            self.http,
            app.clone(),
            stopped.clone(),
        ))];
        if let Some(tcp) = self.tcp {
            accepting.push(tokio::spawn(tcp::accept(tcp, app.clone(), stopped)));
        }
        shutdown.await;
        let _ = stop.send(true);
        for task in accepting {
            let _ = task.await;
        }
        let bound = app.config.maxima.timeout() + DRAIN_GRACE;
        let open = app.connections.total();
        if open > 0 {
            tracing::info!(open, "draining connections");
        }
        if tokio::time::timeout(bound, app.connections.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = app.connections.total(),
                waited_ms = bound.as_millis() as u64,
                "connections still open after the longest call deadline; closing them"
            );
        }
    }
}

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({flag}): {source}")]
pub struct BindError {
    pub flag: &'static str,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Waits for SIGTERM or SIGINT (Ctrl-C): the signals that stop a host gracefully.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Resolves once `stop` turns true (or its sender is gone). Holds no borrow of the channel
/// across an await, so the futures that wait on it stay `Send`.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accept errors (out of file descriptors, say) are logged and waited out, never a busy loop
/// and never the end of the listener.
async fn accept_backoff(listener: Listener, e: &std::io::Error) {
    tracing::warn!(?listener, error = %e, "accept failed; retrying shortly");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_counted_and_waited_for() {
        let c = Arc::new(Connections::default());
        c.all_closed().await;
        let a = c.track(Listener::Http);
        let b = c.track(Listener::Tcp);
        assert_eq!((c.open(Listener::Http), c.open(Listener::Tcp)), (1, 1));
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.all_closed().await })
        };
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.total(), 0);
    }
}
