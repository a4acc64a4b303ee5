//! Open connections: counted per listener and per client address, capped, and waited for at
//! shutdown.
//!
//! A connection past a cap (`--max-connections` in total, `--max-connections-per-ip` from one
//! address) is closed at once: never queued, so one client cannot make others wait, and the
//! accept loop never stops. Refusals are counted, and logged at most once a second so a flood
//! cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// The listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Http,
    Tcp,
}

/// The caps in force when a connection arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub total: usize,
    pub per_ip: usize,
}

/// Connections open now; see the module docs.
#[derive(Debug, Default)]
pub struct Connections {
    http: AtomicUsize,
    tcp: AtomicUsize,
    /// Open connections by client address (canonical: IPv4-mapped IPv6 counts as IPv4).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Connections closed at once for a cap, since start.
    refused: AtomicU64,
    /// Refusals not yet logged, and when the last log line was written (ms since the epoch).
    unlogged: AtomicU64,
    last_log_ms: AtomicU64,
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
        self.counter(listener).load(Relaxed)
    }

    /// Connections open on every listener.
    pub fn total(&self) -> usize {
        self.open(Listener::Http) + self.open(Listener::Tcp)
    }

    /// Connections refused for a cap since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Admits a connection from `ip` within `caps`, counting it until the guard drops;
    /// `None` (counted and logged) when a cap is reached. `exempt` addresses (trusted proxies,
    /// which carry many clients) skip the per-address cap.
    pub(crate) fn admit(
        self: &Arc<Self>,
        listener: Listener,
        ip: IpAddr,
        caps: Caps,
        exempt: bool,
    ) -> Option<ConnectionGuard> {
        let ip = ip.to_canonical();
        {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            let mine = per_ip.get(&ip).copied().unwrap_or(0);
            let why = if self.total() >= caps.total {
                Some(("max_connections", caps.total))
            } else if !exempt && mine >= caps.per_ip {
                Some(("max_connections_per_ip", caps.per_ip))
            } else {
                None
            };
            if let Some((cap, limit)) = why {
                drop(per_ip);
                self.refuse(ip, cap, limit);
                return None;
            }
            per_ip.insert(ip, mine + 1);
            self.counter(listener).fetch_add(1, Relaxed);
        }
        Some(ConnectionGuard {
            connections: self.clone(),
            listener,
            ip,
        })
    }

    fn refuse(&self, ip: IpAddr, cap: &'static str, limit: usize) {
        self.refused.fetch_add(1, Relaxed);
        let unlogged = self.unlogged.fetch_add(1, Relaxed) + 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = self.last_log_ms.load(Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_log_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.unlogged.fetch_sub(unlogged, Relaxed);
            tracing::warn!(
                %ip, cap, limit, refused = unlogged, refused_total = self.refused(),
                "connections refused at a cap (closed at once; logged at most once a second)"
            );
        }
    }

    /// Resolves once no connection is open.
    pub(crate) async fn all_closed(&self) {
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

/// One open connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionGuard {
    connections: Arc<Connections>,
    listener: Listener,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let c = &self.connections;
        {
            let mut per_ip = c.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&self.ip);
                }
            }
            c.counter(self.listener).fetch_sub(1, Relaxed);
        }
        c.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CAPS: Caps = Caps {
        total: 3,
        per_ip: 2,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn connections_are_counted_and_waited_for() {
        let c = Arc::new(Connections::default());
        c.all_closed().await;
        let a = c
            .admit(Listener::Http, ip("127.0.0.1"), CAPS, false)
            .unwrap();
        let b = c
            .admit(Listener::Tcp, ip("127.0.0.2"), CAPS, false)
            .unwrap();
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
        assert!(
            c.per_ip.lock().unwrap().is_empty(),
            "no entry outlives its connections"
        );
    }

    #[test]
    fn the_caps_hold_per_address_and_in_total_and_free_up() {
        let c = Arc::new(Connections::default());
        let one = c
            .admit(Listener::Http, ip("10.0.0.1"), CAPS, false)
            .unwrap();
        // IPv4-mapped IPv6 is the same address.
        let two = c
            .admit(Listener::Tcp, ip("::ffff:10.0.0.1"), CAPS, false)
            .unwrap();
        assert!(
            c.admit(Listener::Http, ip("10.0.0.1"), CAPS, false)
                .is_none()
        );
        let other = c
            .admit(Listener::Http, ip("10.0.0.2"), CAPS, false)
            .unwrap();
        assert!(
            c.admit(Listener::Http, ip("10.0.0.3"), CAPS, false)
                .is_none(),
            "total"
        );
        assert_eq!(c.refused(), 2);
        drop(one);
        let again = c.admit(Listener::Http, ip("10.0.0.1"), CAPS, false);
        assert!(again.is_some());
        drop((two, other, again));
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn exempt_addresses_skip_the_per_address_cap_but_not_the_total() {
        let c = Arc::new(Connections::default());
        let proxy = ip("10.1.1.1");
        let held: Vec<_> = (0..3)
            .map(|_| c.admit(Listener::Http, proxy, CAPS, true).unwrap())
            .collect();
        assert!(c.admit(Listener::Http, proxy, CAPS, true).is_none());
        drop(held);
    }
}
