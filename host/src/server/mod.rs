//! The server the library owns: every configured listener (HTTP, and the TCP transport when
//! asked) under one shutdown signal, with every connection tracked so shutdown can drain them.
//!
//! [`Server::bind`] binds what [`Config`](crate::Config) names; [`Server::run`] serves until
//! its `shutdown` future completes, then stops accepting, lets each connection finish the
//! request it is serving (an idle one closes at once), and waits for them, at most the longest
//! call deadline plus a grace. The binary only parses flags, sets up logging, binds and runs.

mod connections;
mod http;
pub mod tcp;
pub mod tls;
pub mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::AppState;

/// How long past the longest call deadline shutdown waits for connections to finish.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

pub use connections::{Caps, ConnectionGuard, Connections, Listener};
/// The bound listeners of one host.
#[derive(Debug)]
pub struct Server {
    app: AppState,
    http: TcpListener,
    tcp: Option<TcpListener>,
    metrics: Option<TcpListener>,
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
        let metrics = match app.config.metrics_listen {
            None => None,
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| BindError {
                flag: "--metrics-listen",
                addr,
                source: e,
            })?),
        };
        if app.tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "serving plain HTTP on a non-loopback address: the admin token, keys and every \
                 call cross the network in clear and can be read or changed on the way; serve \
                 TLS (--tls-cert, --tls-key) or put a TLS-terminating proxy in front"
            );
        }
        if let Some(tcp) = app.config.tcp_listen
            && !app.config.tcp_tls
            && !tcp.ip().is_loopback()
        {
            tracing::warn!(
                addr = %tcp,
                "serving the TCP transport in clear on a non-loopback address; add --tcp-tls"
            );
        }
        Ok(Self {
            app,
            http,
            tcp,
            metrics,
        })
    }

    /// Serves on already bound listeners (tests bind their own).
    pub fn from_listeners(app: AppState, http: TcpListener, tcp: Option<TcpListener>) -> Self {
        Self {
            app,
            http,
            tcp,
            metrics: None,
        }
    }

    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics.as_ref().map(TcpListener::local_addr)
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
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let app = self.app;
        let mut accepting = vec![tokio::spawn(http::accept(
            self.http,
            app.clone(),
            crate::app(app.clone()),
            stopped.clone(),
        ))];
        if let Some(metrics) = self.metrics {
            accepting.push(tokio::spawn(http::accept(
                metrics,
                app.clone(),
                crate::http::metrics_router(app.clone()),
                stopped.clone(),
            )));
        }
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

/// Raises the soft open-file limit to the hard one (each connection is a file) and returns
/// the limit now in force.
pub fn raise_open_files() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The most file-descriptor table entries [`reserve_fd_table`] sets aside (256 KiB of the
/// kernel's memory at 8 bytes an entry, rounded up to a power of two).
pub const FD_TABLE_RESERVE: u64 = 32 << 10;

/// Grows this process's file-descriptor table to `min(open-file limit, FD_TABLE_RESERVE)`
/// entries now. Call it while the process has one thread (before the async runtime starts).
///
/// Linux grows a process's fd table when a file is opened past its end, doubling it, and in a
/// process with more than one thread every growth waits for an RCU grace period
/// (`synchronize_rcu()` in `expand_fdtable`): 10–30 ms on this machine kind, charged to
/// whichever request happened to open the 256th, 512th, 1,024th, … file. A served module keeps
/// its artifact file open (wasmtime maps its memory image from it) and each connection is a
/// file, so with 1,000 modules the first calls after a start paid it twice
/// (docs/PERFORMANCE.md, *Issue 16*). With one thread the growth is immediate; a table never
/// shrinks, so opening and closing one high descriptor is enough.
pub fn reserve_fd_table() -> std::io::Result<u64> {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    let entries = limit.min(FD_TABLE_RESERVE);
    let Ok(top) = libc::c_int::try_from(entries.saturating_sub(1)) else {
        return Ok(0);
    };
    let any = std::fs::File::open("/dev/null")?;
    // SAFETY: F_DUPFD on a descriptor we own returns a new one (the lowest free at or above
    // `top`), which we close at once; nothing else refers to it.
    let high = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&any), libc::F_DUPFD, top) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `high` is ours (just duplicated) and closed once.
    unsafe { libc::close(high) };
    Ok(entries)
}

/// Files kept back from the connection caps for the store, artifacts, logs and the runtime.
const RESERVED_FILES: u64 = 128;

/// The connection caps when the config leaves them unset: three quarters of the open-file
/// limit left after [`RESERVED_FILES`] in total (at least 16), an eighth of that per client
/// address ([`per_ip_share`]). At the common limit of 1,024: 672 and 84.
pub fn default_caps(open_files: u64) -> Caps {
    let total = (open_files.saturating_sub(RESERVED_FILES) * 3 / 4).max(16) as usize;
    Caps {
        total,
        per_ip: per_ip_share(total),
    }
}

/// One client address's share of `total` connections: an eighth, at least 8.
pub fn per_ip_share(total: usize) -> usize {
    (total / 8).max(8).min(total)
}

/// Resolves once `stop` turns true (or its sender is gone). Holds no borrow of the channel
/// across an await, so the futures that wait on it stay `Send`.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
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

    fn fd_table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn the_fd_table_is_grown_up_front_and_no_descriptor_is_left_open() {
        raise_open_files();
        let entries = reserve_fd_table().unwrap();
        let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().0;
        assert_eq!(entries, limit.min(FD_TABLE_RESERVE));
        assert!(fd_table_size() >= entries, "FDSize {}", fd_table_size());
        // The descriptor that grew it was closed again.
        let high = format!("/proc/self/fd/{}", entries - 1);
        assert!(!std::path::Path::new(&high).exists(), "{high} left open");
    }
}
