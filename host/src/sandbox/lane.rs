//! The long-call lane: where a call runs once it has spent its first slice of fuel.
//!
//! Most calls finish within their first slice, synchronously on the request's own task
//! ([`super::call`]). A call that does not is run again, from a fresh instance, with wasmtime's
//! async API, yielding every slice. Run on the request workers, 64 such calls took turns with
//! every short call, slice by slice: a `math.add` waited behind all of them (p50 11.6 ms, p99
//! 19.3 ms, measured). So reruns run here instead, on threads of their own:
//!
//! * **lower priority**: the lane's threads run at nice [`NICE`], so the kernel runs the
//!   request workers first whenever both are ready; long calls get the cores' spare time and a
//!   small share (about a tenth at nice 10) under full load, rather than none, so they finish
//!   within their deadline on a busy host and are not starved outright;
//! * **bounded**: at most [`Lane::permits`] long calls run at once (half the instance pool,
//!   at least one), so long calls can never hold every instance slot; a rerun waits for a
//!   permit no longer than its call's deadline, and then fails as the deadline would;
//! * **one thread per usable core** (`available_parallelism`, which honours `taskset`), built
//!   on the first long call, so hosts and tests that never make one start no threads.
//!
//! A rerun's task is aborted when its request goes away (a client that hung up), as it was on
//! the request's own task before; it carries the request's tracing span and subscriber.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use tokio::runtime::{Handle, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The lane threads' nice value (0 is the request workers'; 19 the lowest priority).
pub const NICE: i32 = 10;

/// The lane: its runtime (built on first use) and its places.
pub struct Lane {
    runtime: OnceLock<Option<Runtime>>,
    calls: Arc<LongCalls>,
}

/// The lane's places: how many long calls may run at once, and how many are waiting for a
/// place (both `/metrics` gauges).
#[derive(Debug)]
pub struct LongCalls {
    permits: Arc<Semaphore>,
    size: usize,
    waiting: AtomicUsize,
}

impl LongCalls {
    fn new(size: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Long calls holding a place now.
    pub fn running(&self) -> usize {
        self.size - self.permits.available_permits()
    }

    /// Long calls waiting for a place now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Relaxed)
    }
}

/// No places (for counters not tied to a sandbox).
impl Default for LongCalls {
    fn default() -> Self {
        Self::new(0)
    }
}

/// Counts one caller as waiting for as long as it lives (a wait given up included).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("permits", &self.calls.size)
            .finish_non_exhaustive()
    }
}

impl Lane {
    /// A lane for a host with `slots` instance slots.
    pub fn new(slots: u32) -> Self {
        let size = (slots as usize / 2).max(1);
        Self {
            runtime: OnceLock::new(),
            calls: Arc::new(LongCalls::new(size)),
        }
    }

    /// The lane's places, running and waiting.
    pub fn calls(&self) -> &Arc<LongCalls> {
        &self.calls
    }

    /// How many long calls may run at once.
    #[cfg(test)]
    fn permits(&self) -> usize {
        self.calls.size
    }

    /// Waits for a permit (the caller bounds the wait; a dropped wait stops counting as
    /// waiting). `None` only if the semaphore were closed, which it never is.
    pub async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let _waiting = Waiting::new(&self.calls.waiting);
        self.calls.permits.clone().acquire_owned().await.ok()
    }

    /// Runs `job` on the lane and waits for it; the job is aborted if this future is dropped.
    /// Where the lane's threads cannot be started, the job runs on the caller's task (as
    /// before the lane existed) rather than failing.
    pub async fn run<F>(&self, job: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let Some(handle) = self.handle() else {
            return job.await;
        };
        // The caller's span and subscriber go with the job, so a rerun's log lines (its
        // guest's included) carry the request's context as the first attempt's did.
        use tracing::Instrument as _;
        use tracing::instrument::WithSubscriber as _;
        let job = job.in_current_span().with_current_subscriber();
        let mut task = AbortOnDrop(handle.spawn(job));
        match (&mut task.0).await {
            Ok(output) => output,
            // Not cancelled (we hold the handle) so it panicked: carry the panic on.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    fn handle(&self) -> Option<Handle> {
        self.runtime
            .get_or_init(|| {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                tracing::info!(
                    threads,
                    nice = NICE,
                    max_long_calls = self.calls.size,
                    "starting the long-call lane"
                );
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("fnhost-long")
                    .on_thread_start(lower_priority)
                    .enable_time()
                    .build()
                    .inspect_err(|e| {
                        tracing::error!(error = %e, "cannot start the long-call lane; long calls run with the rest");
                    })
                    .ok()
            })
            .as_ref()
            .map(|rt| rt.handle().clone())
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        // A runtime may not be dropped (blocking) inside another's async context.
        if let Some(Some(rt)) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value to [`NICE`] (on Linux, nice is per thread).
fn lower_priority() {
    // SAFETY: plain system call on the calling thread; `who = 0` names it.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if rc != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot lower the long-call lane's priority; long calls share the cores equally"
        );
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a thread's nice value from `/proc/thread-self/stat` (field 19).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn jobs_run_on_lower_priority_threads_and_permits_bound_them() {
        let lane = Lane::new(4);
        assert_eq!(lane.permits(), 2);
        let here = own_nice();
        let (nice, name) = lane
            .run(async { (own_nice(), std::thread::current().name().map(str::to_owned)) })
            .await;
        assert!(
            nice >= NICE,
            "lane thread nice {nice}, request thread {here}"
        );
        assert_eq!(name.as_deref(), Some("fnhost-long"));
        let a = lane.admit().await.unwrap();
        let _b = lane.admit().await.unwrap();
        let gauges = |l: &Lane| (l.calls().running(), l.calls().waiting());
        assert_eq!(gauges(&lane), (2, 0));
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), lane.admit());
        assert!(third.await.is_err(), "a third long call waits");
        assert_eq!(
            gauges(&lane),
            (2, 0),
            "a wait given up is no longer counted"
        );
        let mut fourth = Box::pin(lane.admit());
        assert!(futures_util::FutureExt::now_or_never(&mut fourth).is_none());
        assert_eq!(gauges(&lane), (2, 1));
        drop(a);
        let _d = fourth.await.unwrap();
        assert_eq!(gauges(&lane), (2, 0));
    }

    #[tokio::test]
    async fn a_dropped_caller_aborts_its_job() {
        let lane = Lane::new(2);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = lane.run(async move {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            drop(tx);
        });
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), waiting).await;
        // The job was aborted: its sender is dropped without waiting 30 s.
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(5), rx)
                .await
                .is_ok()
        );
    }
}
