//! Per-connection timeouts: how long a client may take to send a request head, to send its
//! next request on a kept-alive connection, and to read what it is sent.
//!
//! hyper's own header timer starts whenever it waits for a head, idle time included, so it
//! cannot tell "slow to send a head" from "idle between requests"; and it has no write timeout.
//! So each connection carries an [`Activity`], fed from three places:
//! - the socket ([`Watched`] wraps it): the first bytes of a request after a wait, and how long
//!   a write has been stuck;
//! - the service ([`Activity::request_started`]) when a request head has been read;
//! - the response body ([`InFlight`], dropped when the body is done or abandoned).
//!
//! [`Activity::expired`] sleeps until the earliest deadline those imply and resolves with the
//! reason when one passes; the connection's task then drops the connection. Body timeouts are
//! the handlers' (they read bodies with a deadline and answer 408).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From accepting a connection, or from the first byte of a later request, until its head
    /// has been read.
    pub header: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle: Duration,
    /// How long one write may stay blocked on a client that does not read.
    pub write: Duration,
}

/// Why a connection was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Header,
    Idle,
    Write,
}

impl Expired {
    pub fn as_str(self) -> &'static str {
        match self {
            Expired::Header => "header_timeout",
            Expired::Idle => "idle_timeout",
            Expired::Write => "write_timeout",
        }
    }
}

const NONE: u64 = u64::MAX;

/// What one connection is doing, in milliseconds since it was accepted.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    timeouts: Timeouts,
    /// Requests being served (head read, response not yet fully sent).
    active: AtomicU64,
    /// When the connection last became free of requests (0: accepted).
    waiting_since: AtomicU64,
    /// When the first bytes of the next request arrived while waiting; `NONE` if none.
    head_started: AtomicU64,
    /// Whether a request was ever read: a new connection owes its first head within the
    /// header timeout, a kept-alive one may idle.
    served: AtomicBool,
    /// When a write started to be blocked; `NONE` when none is.
    write_blocked: AtomicU64,
    changed: Notify,
}

impl Activity {
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            timeouts,
            active: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            served: AtomicBool::new(false),
            write_blocked: AtomicU64::new(NONE),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A request head was read; the returned guard ends the request when dropped (keep it in
    /// the response body so a streamed answer counts until it is sent).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.active.fetch_add(1, Relaxed);
        self.served.store(true, Relaxed);
        self.head_started.store(NONE, Relaxed);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn read_some(&self) {
        if self.active.load(Relaxed) == 0 && self.head_started.load(Relaxed) == NONE {
            self.head_started.store(self.now_ms(), Relaxed);
            self.changed.notify_one();
        }
    }

    fn write_blocked(&self, blocked: bool) {
        let was = self.write_blocked.load(Relaxed);
        if blocked && was == NONE {
            self.write_blocked.store(self.now_ms(), Relaxed);
            self.changed.notify_one();
        } else if !blocked && was != NONE {
            self.write_blocked.store(NONE, Relaxed);
        }
    }

    /// The earliest deadline now in force, in ms since the start, and what it is for.
    fn deadline(&self) -> Option<(u64, Expired)> {
        let ms = |d: Duration| d.as_millis() as u64;
        let mut earliest: Option<(u64, Expired)> = None;
        let mut consider = |at: u64, why: Expired| {
            if earliest.is_none_or(|(e, _)| at < e) {
                earliest = Some((at, why));
            }
        };
        let blocked = self.write_blocked.load(Relaxed);
        if blocked != NONE {
            consider(
                blocked.saturating_add(ms(self.timeouts.write)),
                Expired::Write,
            );
        }
        if self.active.load(Relaxed) == 0 {
            let head = self.head_started.load(Relaxed);
            let since = self.waiting_since.load(Relaxed);
            if head != NONE {
                consider(
                    head.saturating_add(ms(self.timeouts.header)),
                    Expired::Header,
                );
            } else if !self.served.load(Relaxed) {
                consider(
                    since.saturating_add(ms(self.timeouts.header)),
                    Expired::Header,
                );
            } else {
                consider(since.saturating_add(ms(self.timeouts.idle)), Expired::Idle);
            }
        }
        earliest
    }

    /// Resolves when a deadline passes, with which one.
    pub async fn expired(&self) -> Expired {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.deadline() {
                None => changed.await,
                Some((at, why)) => {
                    let when = self.start + Duration::from_millis(at);
                    if Instant::now() >= when {
                        return why;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(when) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// One request being served; dropping it frees the connection to wait for the next.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.active.fetch_sub(1, Relaxed) == 1 {
            a.waiting_since.store(a.now_ms(), Relaxed);
        }
        a.changed.notify_one();
    }
}

/// A socket that reports reads and blocked writes to its connection's [`Activity`].
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        write: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_owes_its_head_within_the_header_timeout() {
        let a = Activity::new(T);
        let t0 = Instant::now();
        assert_eq!(a.expired().await, Expired::Header);
        assert_eq!(t0.elapsed(), T.header);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_idles_then_owes_the_next_head() {
        let a = Activity::new(T);
        drop(a.request_started());
        let t0 = Instant::now();
        assert_eq!(a.expired().await, Expired::Idle);
        assert_eq!(t0.elapsed(), T.idle);

        let a = Activity::new(T);
        drop(a.request_started());
        tokio::time::sleep(Duration::from_secs(5)).await;
        a.read_some(); // half a head arrives...
        let t0 = Instant::now();
        assert_eq!(a.expired().await, Expired::Header);
        assert_eq!(
            t0.elapsed(),
            T.header,
            "...and the header timeout runs from it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_only_has_the_write_timeout() {
        let a = Activity::new(T);
        let request = a.request_started();
        assert_eq!(a.deadline(), None);
        a.write_blocked(true);
        let t0 = Instant::now();
        assert_eq!(a.expired().await, Expired::Write);
        assert_eq!(t0.elapsed(), T.write);
        a.write_blocked(false);
        assert_eq!(a.deadline(), None);
        drop(request);
        assert_eq!(a.deadline().unwrap().1, Expired::Idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watcher_asleep_on_a_late_deadline_wakes_for_an_earlier_one() {
        let a = Activity::new(T);
        drop(a.request_started());
        let watcher = {
            let a = a.clone();
            tokio::spawn(async move { a.expired().await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        a.read_some();
        let t0 = Instant::now();
        assert_eq!(watcher.await.unwrap(), Expired::Header);
        assert_eq!(t0.elapsed(), T.header);
    }
}
