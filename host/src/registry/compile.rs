//! The compile queue: at most `compile_concurrency` compiles at once, each within the compile
//! budget, and fair between deployers.
//!
//! A deploy waits for a slot at most one budget, then is answered `busy`. Slots are handed out
//! round-robin by deployer (the admin, or each deploy key), so one team uploading many modules
//! waits its turn behind another's single one instead of starving it. With a compile worker
//! (`Config::compile_worker`) a compile past its budget is killed and its slot frees at once;
//! in process it cannot be stopped and keeps its slot until it really ends.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::digest::Digest;
use crate::error::Error;
use crate::sandbox::{Compiled, Sandbox};

#[derive(Debug)]
pub(super) struct CompileQueue {
    sandbox: Arc<Sandbox>,
    fair: Arc<Fair>,
    /// The slots' number, for the `busy` answer.
    concurrency: usize,
    budget: Duration,
    stats: Arc<crate::metrics::HostStats>,
}

impl CompileQueue {
    pub(super) fn new(
        sandbox: Arc<Sandbox>,
        concurrency: usize,
        budget: Duration,
        stats: Arc<crate::metrics::HostStats>,
    ) -> Self {
        Self {
            stats,
            sandbox,
            fair: Arc::new(Fair {
                state: Mutex::new(State {
                    free: concurrency,
                    ..State::default()
                }),
            }),
            concurrency,
            budget,
        }
    }

    /// Checks and compiles `bytes` (the module `digest`, to be deployed as `name` by
    /// `deployer`).
    pub(super) async fn compile(
        &self,
        name: &str,
        digest: Digest,
        bytes: &Arc<[u8]>,
        deployer: &str,
    ) -> Result<Compiled, Error> {
        let budget = self.budget;
        let Ok(slot) = tokio::time::timeout(budget, self.fair.acquire(deployer)).await else {
            tracing::warn!(name, %digest, "no compile slot freed within the budget; busy");
            return Err(Error::busy(
                "compile",
                self.concurrency,
                format!(
                    "every compile slot stayed taken for {} s (a compile still running, or other \
                     deployers' turns); try again later",
                    budget.as_secs_f64()
                ),
            ));
        };
        let started = std::time::Instant::now();
        let result = self
            .sandbox
            .compile_bounded(digest, bytes.clone(), budget, move || drop(slot))
            .await;
        self.stats.compiled(started.elapsed());
        if let Err(e) = &result
            && e.data.get("limit_ms").is_some()
        {
            tracing::warn!(name, %digest, "compile exceeded its time budget; refused");
        }
        result
    }
}

#[derive(Debug)]
struct Fair {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    /// Each deployer's waiting deploys, oldest first.
    waiting: HashMap<String, VecDeque<oneshot::Sender<Slot>>>,
    /// Deployers with someone waiting, in turn order.
    turn: VecDeque<String>,
}

/// A compile slot; dropping it hands it to the next deployer in turn.
#[derive(Debug)]
struct Slot(Arc<Fair>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Fair {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn acquire(self: &Arc<Self>, deployer: &str) -> Slot {
        let waiting = {
            let mut s = self.lock();
            if s.free > 0 && s.turn.is_empty() {
                s.free -= 1;
                return Slot(self.clone());
            }
            let (tx, rx) = oneshot::channel();
            let queue = s.waiting.entry(deployer.to_owned()).or_default();
            queue.push_back(tx);
            if queue.len() == 1 {
                s.turn.push_back(deployer.to_owned());
            }
            rx
        };
        match waiting.await {
            Ok(slot) => slot,
            // The sender is only dropped when handing out fails, which frees the slot
            // anyway: wait for a fresh turn.
            Err(_) => Box::pin(self.acquire(deployer)).await,
        }
    }

    /// Gives a freed slot to the next deployer in turn (skipping waiters that gave up), or
    /// puts it back.
    fn release(self: &Arc<Self>) {
        let mut s = self.lock();
        while let Some(deployer) = s.turn.pop_front() {
            let Some(queue) = s.waiting.get_mut(&deployer) else {
                continue;
            };
            let next = queue.pop_front();
            if queue.is_empty() {
                s.waiting.remove(&deployer);
            } else {
                s.turn.push_back(deployer);
            }
            if let Some(tx) = next
                && !tx.is_closed()
            {
                // If the waiter drops it unreceived, the slot's own drop releases it again.
                drop(s);
                let _ = tx.send(Slot(self.clone()));
                return;
            }
        }
        s.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fair(slots: usize) -> Arc<Fair> {
        Arc::new(Fair {
            state: Mutex::new(State {
                free: slots,
                ..State::default()
            }),
        })
    }

    #[tokio::test]
    async fn a_deployer_with_many_uploads_cannot_starve_another() {
        let f = fair(1);
        let held = f.acquire("team-a").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (who, n) in [("team-a", 0), ("team-a", 1), ("team-a", 2), ("team-b", 0)] {
            let (f, order) = (f.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = f.acquire(who).await;
                order.lock().unwrap().push(format!("{who}/{n}"));
                drop(slot);
            }));
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0], "team-a/0");
        assert_eq!(
            order[1], "team-b/0",
            "team-b's turn comes before team-a's second: {order:?}"
        );
        assert_eq!(f.lock().free, 1, "every slot came back");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_a_slot() {
        let f = fair(1);
        let held = f.acquire("a").await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), f.acquire("b")).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(f.lock().free, 1);
        let _again = f.acquire("c").await;
    }
}
