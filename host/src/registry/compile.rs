//! The compile queue: at most `compile_concurrency` compiles at once, off the async workers,
//! each within the compile budget.
//!
//! A compile refused for running past its budget cannot be stopped (Cranelift has no way to
//! abandon one); it keeps its slot until it really ends. So waiting for a slot has a bound of
//! its own, the same budget: past it the deploy is answered `busy` rather than held, and a
//! deploy takes at most twice the budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::digest::Digest;
use crate::error::{Error, Kind};
use crate::sandbox::{Compiled, Sandbox};

#[derive(Debug)]
pub(super) struct CompileQueue {
    sandbox: Arc<Sandbox>,
    /// Held until a compile really ends, even when its deploy has already given up on it.
    slots: Arc<Semaphore>,
    /// The slots' number, for the `busy` answer (the semaphore only knows how many are free).
    concurrency: usize,
    budget: Duration,
}

impl CompileQueue {
    pub(super) fn new(sandbox: Arc<Sandbox>, concurrency: usize, budget: Duration) -> Self {
        Self {
            sandbox,
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            budget,
        }
    }

    /// Checks and compiles `bytes` (the module `digest`, to be deployed as `name`).
    pub(super) async fn compile(
        &self,
        name: &str,
        digest: Digest,
        bytes: &Arc<[u8]>,
    ) -> Result<Compiled, Error> {
        let budget = self.budget;
        let slot = match tokio::time::timeout(budget, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(Error::internal()),
            Err(_) => {
                tracing::warn!(name, %digest, "no compile slot freed within the budget; busy");
                return Err(Error::busy(
                    "compile",
                    self.concurrency,
                    format!(
                        "every compile slot is taken by a compile still running (a refused one \
                         runs on until it ends); waited {} s; try again later",
                        budget.as_secs_f64()
                    ),
                ));
            }
        };
        let (sandbox, bytes) = (self.sandbox.clone(), bytes.clone());
        let compile = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            sandbox.compile(digest, &bytes)
        });
        match tokio::time::timeout(budget, compile).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "compile task failed");
                Err(Error::internal())
            }
            Err(_) => {
                tracing::warn!(name, %digest, "compile exceeded its time budget; refused");
                Err(Error::new(
                    Kind::BadModule,
                    format!(
                        "compiling the module took longer than the budget of {} s; refused",
                        budget.as_secs_f64()
                    ),
                )
                .with("limit_ms", budget.as_millis() as u64))
            }
        }
    }
}
