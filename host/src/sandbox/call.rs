//! One call: a fresh `Store` and instance, the params handed over, the output read, and every
//! way it can fail turned into a typed [`Error`] ([`super::trap`]).
//!
//! The store carries the call's limits: fuel, an epoch deadline, and a
//! [`Limiter`](super::limiter::Limiter) that refuses memory and table growth past the caps.
//!
//! A call runs in up to two attempts (docs/DESIGN.md, "Guest code never blocks an async
//! worker"). The first runs synchronously on the calling task with its fuel capped at one
//! *slice* (the fuel yield interval): no fiber, no timer, so the common short call pays for
//! neither. A worker is held no longer than by one slice of an async call before its first
//! yield. Only a call that spends its whole slice is run again, from a fresh instance, with
//! wasmtime's async API, which yields to other tasks every slice until its full budget or
//! deadline. Guests cannot observe the difference (every attempt is a fresh instance and has
//! no clock); log lines of a first attempt that is run again are dropped, not doubled.
//!
//! How params reach the guest and how its output is found is the ABI version's business:
//! [`Program::call`] runs each attempt by [`Abi`](super::Abi): v1 enters the guest twice
//! (`fnhost_alloc`, then the function's export with the params' location); v2 once (the
//! function's export with the params' length; the guest pulls them with `fnhost.params` from
//! the store's [`CallState`]). Both read the packed output location the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use wasmtime::{Extern, Instance, Memory, Store, TypedFunc, WasmParams};

use super::limiter::Limiter;
use super::output::{bad_output, read_output};
use super::state::{CallState, LogSink, LogState};
use super::trap::{classify, deadline_exceeded, is_out_of_fuel};
use super::{Abi, Function, Program};
use crate::config::Limits;
use crate::context::RequestId;
use crate::error::{Error, Kind};

/// What a successful call produced.
#[derive(Debug, Clone)]
pub struct CallOutput {
    /// The result exactly as the guest wrote it; checked to be one well-formed JSON value.
    pub result: Box<RawValue>,
    /// Fuel the call spent (instantiation included).
    pub fuel_used: u64,
    /// Wall-clock time of the whole call.
    pub elapsed: Duration,
    /// The largest linear memory the call's instance had.
    pub peak_memory_bytes: u64,
}

/// Counts a call's instance (one pool slot) while the call runs.
struct InstanceCount<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InstanceCount<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InstanceCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why an attempt did not produce output: wasmtime said so, or the guest broke the ABI.
enum Fail {
    Wasm(wasmtime::Error),
    Abi(Error),
}

impl From<wasmtime::Error> for Fail {
    fn from(e: wasmtime::Error) -> Self {
        Fail::Wasm(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Abi(e)
    }
}

fn bad(message: impl Into<String>) -> Fail {
    Fail::Abi(bad_output(message))
}

/// What every attempt of one call shares.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    module: &'a Arc<str>,
    f: &'a Function,
    limits: &'a Limits,
    request_id: &'a RequestId,
    sink: Option<&'a Arc<dyn LogSink>>,
    /// ABI v2: the params the guest pulls (empty otherwise).
    params: &'a Arc<[u8]>,
}

/// A call's second attempt, owning what it needs to run on the long-call lane.
struct Rerun {
    program: Arc<Program>,
    module: Arc<str>,
    function: Arc<str>,
    limits: Limits,
    request_id: RequestId,
    sink: Option<Arc<dyn LogSink>>,
    /// The params (both ABIs).
    params: Arc<[u8]>,
    /// What the guest pulls (v2; empty for v1).
    pulled: Arc<[u8]>,
    start: Instant,
}

impl Rerun {
    async fn run(self) -> Result<CallOutput, Error> {
        let program = &*self.program;
        let f = &program.functions[&*self.function];
        let call = Attempt {
            module: &self.module,
            f,
            limits: &self.limits,
            request_id: &self.request_id,
            sink: self.sink.as_ref(),
            params: &self.pulled,
        };
        let left = self.limits.timeout().saturating_sub(self.start.elapsed());
        let mut store = program.store(&call, Mode::Async, left)?;
        // The epoch deadline stops guest code; this outer timeout also bounds anything else
        // (instantiation, host functions) should it ever stall.
        let grace = program.settings.epoch_tick * 4 + Duration::from_millis(50);
        let attempt = async {
            match program.abi {
                Abi::V1 => program.v1_async(&mut store, f, &self.params).await,
                Abi::V2 => program.v2_async(&mut store, f, self.params.len()).await,
            }
        };
        let outcome = match tokio::time::timeout(left + grace, attempt).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(Fail::Abi(deadline_exceeded(&self.limits))),
        };
        program.finish(store, outcome, &call, self.start)
    }
}

/// How an attempt runs: synchronously on the calling task, or with wasmtime's async API.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The first attempt, fuel capped at one slice; `rerun` if it may be run again.
    Sync {
        rerun: bool,
    },
    Async,
}

impl Program {
    /// Calls `function` with `params` (the request's raw params, empty when it had none) in a
    /// fresh instance under `limits`.
    pub async fn call(
        self: &Arc<Self>,
        module: &Arc<str>,
        function: &str,
        params: &[u8],
        limits: &Limits,
        request_id: &RequestId,
        sink: Option<&Arc<dyn LogSink>>,
    ) -> Result<CallOutput, Error> {
        let start = Instant::now();
        let Some(f) = self.functions.get(function) else {
            return Err(Error::new(
                Kind::MethodNotFound,
                format!("the module `{module}` has no function `{function}`"),
            )
            .with("module", &**module)
            .with("function", function));
        };
        if i32::try_from(params.len()).is_err() {
            return Err(bad_output("the params are too large for a 32-bit guest"));
        }
        let slice = self.settings.fuel_yield_interval;
        let rerun = limits.fuel > slice;
        let _instance = InstanceCount::new(&self.instances);
        // v2: the guest pulls the params from the store; one copy serves both attempts.
        let pulled: Arc<[u8]> = match self.abi {
            Abi::V2 if !params.is_empty() => Arc::from(params),
            _ => Arc::default(),
        };
        let call = Attempt {
            module,
            f,
            limits,
            request_id,
            sink,
            params: &pulled,
        };
        let mut store = self.store(&call, Mode::Sync { rerun }, limits.timeout())?;
        let outcome = match self.abi {
            Abi::V1 => self.v1_sync(&mut store, f, params),
            Abi::V2 => self.v2_sync(&mut store, f, params.len()),
        };
        if !(rerun && matches!(&outcome, Err(Fail::Wasm(e)) if is_out_of_fuel(e))) {
            return self.finish(store, outcome, &call, start);
        }
        drop(store);
        // Boxed: the rerun's state (timers, wasmtime's async call) is kilobytes, and inline it
        // would be carried by every call's future, moved with it into a batch's set of futures
        // (docs/PERFORMANCE.md, *Batch of 100*).
        Box::pin(self.rerun(&call, params, start)).await
    }

    /// Runs a call that needed more than one slice again, where it can yield, in the long-call
    /// lane ([`super::lane`]), so it cannot hold up short calls.
    async fn rerun(
        self: &Arc<Self>,
        call: &Attempt<'_>,
        params: &[u8],
        start: Instant,
    ) -> Result<CallOutput, Error> {
        let Attempt {
            module,
            f,
            limits,
            request_id,
            sink,
            params: pulled,
        } = *call;
        let left = limits.timeout().saturating_sub(start.elapsed());
        let Ok(Some(permit)) = tokio::time::timeout(left, self.lane.admit()).await else {
            let error = deadline_exceeded(limits).with(
                "why",
                "waited its whole deadline for a place among the long calls running",
            );
            return Err(self.located(error, call, 0, start));
        };
        let rerun = Rerun {
            program: self.clone(),
            module: module.clone(),
            function: f.name.clone(),
            limits: *limits,
            request_id: request_id.clone(),
            sink: sink.cloned(),
            params: match self.abi {
                Abi::V2 => pulled.clone(),
                Abi::V1 => Arc::from(params),
            },
            pulled: pulled.clone(),
            start,
        };
        self.lane
            .run(async move {
                let _permit = permit;
                rerun.run().await
            })
            .await
    }

    /// The call's result from its last attempt's store and outcome.
    fn finish(
        &self,
        mut store: Store<CallState>,
        outcome: Result<Box<RawValue>, Fail>,
        call: &Attempt<'_>,
        start: Instant,
    ) -> Result<CallOutput, Error> {
        let elapsed = start.elapsed();
        let fuel_left = store.get_fuel().unwrap_or(0);
        let state = store.data_mut();
        let fuel_used = state.fuel_budget.saturating_sub(fuel_left);
        state.flush_logs();
        let fail = match outcome {
            Ok(result) => {
                return Ok(CallOutput {
                    result,
                    fuel_used,
                    elapsed,
                    peak_memory_bytes: state.limiter.peak_memory as u64,
                });
            }
            Err(fail) => fail,
        };
        let error = match fail {
            Fail::Abi(e) => e,
            Fail::Wasm(e) => classify(e, &state.limiter, call.limits, fuel_used),
        };
        Err(self.located(error, call, fuel_used, start))
    }

    /// `error` with where and how far the call got.
    fn located(&self, error: Error, call: &Attempt<'_>, fuel_used: u64, start: Instant) -> Error {
        error
            .with("module", &**call.module)
            .with("function", &*call.f.name)
            .with("digest", self.digest.to_hex())
            .with("fuel_used", fuel_used)
            .with("elapsed_ms", start.elapsed().as_secs_f64() * 1000.0)
    }

    /// A fresh store for one attempt of `call`: its fuel, its deadline `deadline` from now, its
    /// limiter.
    fn store(
        &self,
        call: &Attempt<'_>,
        mode: Mode,
        deadline: Duration,
    ) -> Result<Store<CallState>, Error> {
        let Attempt {
            module,
            f,
            limits,
            request_id,
            sink,
            params,
        } = *call;
        let fuel = match mode {
            Mode::Sync { .. } => limits.fuel.min(self.settings.fuel_yield_interval),
            Mode::Async => limits.fuel,
        };
        let engine = self.pre.module().engine();
        let mut store = Store::new(
            engine,
            CallState {
                limiter: Limiter::new(limits.memory_bytes, self.settings.max_table_elements),
                module: module.clone(),
                function: f.name.clone(),
                digest: self.digest,
                request_id: request_id.clone(),
                fuel_budget: fuel,
                sink: sink.cloned(),
                params: params.clone(),
                memory: None,
                log: LogState::new(self.settings.log, mode == Mode::Sync { rerun: true }),
            },
        );
        store.limiter(|s| &mut s.limiter);
        let mut setup = store.set_fuel(fuel);
        if mode == Mode::Async {
            setup = setup.and_then(|()| {
                store.fuel_async_yield_interval(Some(self.settings.fuel_yield_interval))
            });
        }
        if let Err(e) = setup {
            tracing::error!(error = %e, "cannot set up a store");
            return Err(Error::internal());
        }
        let tick = self.settings.epoch_tick.as_nanos().max(1);
        let ticks = u64::try_from(deadline.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX);
        // +1: the next tick may come at once.
        store.set_epoch_deadline(ticks.saturating_add(1));
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// One attempt on the calling thread: instantiate, hand over the params, call.
    fn v1_sync(
        &self,
        store: &mut Store<CallState>,
        f: &Function,
        params: &[u8],
    ) -> Result<Box<RawValue>, Fail> {
        let instance = self.pre.instantiate(&mut *store)?;
        let (memory, alloc) = self.exports(store, &instance, params)?;
        let ptr = match alloc {
            Some(alloc) => {
                let ptr = alloc.call(&mut *store, params.len() as i32)?;
                self.write_params(store, memory, params, ptr)?
            }
            None => 0,
        };
        let ret = self
            .entry_point::<(i32, i32)>(store, &instance, f)?
            .call(&mut *store, (ptr, params.len() as i32))?;
        self.output(store, memory, ret)
    }

    /// An ABI v2 attempt on the calling thread: instantiate, call (the guest pulls its params).
    fn v2_sync(
        &self,
        store: &mut Store<CallState>,
        f: &Function,
        params_len: usize,
    ) -> Result<Box<RawValue>, Fail> {
        let instance = self.pre.instantiate(&mut *store)?;
        let memory = self.memory(store, &instance)?;
        store.data_mut().memory = Some(memory);
        let ret = self
            .entry_point::<i32>(store, &instance, f)?
            .call(&mut *store, params_len as i32)?;
        self.output(store, memory, ret)
    }

    /// An ABI v2 attempt with wasmtime's async API.
    async fn v2_async(
        &self,
        store: &mut Store<CallState>,
        f: &Function,
        params_len: usize,
    ) -> Result<Box<RawValue>, Fail> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let memory = self.memory(store, &instance)?;
        store.data_mut().memory = Some(memory);
        let func = self.entry_point::<i32>(store, &instance, f)?;
        let ret = func.call_async(&mut *store, params_len as i32).await?;
        self.output(store, memory, ret)
    }

    /// One attempt with wasmtime's async API: guest code yields to other tasks every slice.
    async fn v1_async(
        &self,
        store: &mut Store<CallState>,
        f: &Function,
        params: &[u8],
    ) -> Result<Box<RawValue>, Fail> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let (memory, alloc) = self.exports(store, &instance, params)?;
        let ptr = match alloc {
            Some(alloc) => {
                let ptr = alloc.call_async(&mut *store, params.len() as i32).await?;
                self.write_params(store, memory, params, ptr)?
            }
            None => 0,
        };
        let func = self.entry_point::<(i32, i32)>(store, &instance, f)?;
        let ret = func
            .call_async(&mut *store, (ptr, params.len() as i32))
            .await?;
        self.output(store, memory, ret)
    }

    /// The instance's memory.
    fn memory(&self, store: &mut Store<CallState>, instance: &Instance) -> Result<Memory, Fail> {
        match instance.get_module_export(&mut *store, &self.memory) {
            Some(Extern::Memory(memory)) => Ok(memory),
            _ => Err(bad("the instance has no memory export")),
        }
    }

    /// (ABI v1) The instance's memory, and `fnhost_alloc` when there are params to hand over.
    fn exports(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
        params: &[u8],
    ) -> Result<(Memory, Option<TypedFunc<i32, i32>>), Fail> {
        let memory = self.memory(store, instance)?;
        if params.is_empty() {
            return Ok((memory, None));
        }
        let alloc = self
            .alloc
            .as_ref()
            .and_then(|alloc| instance.get_module_export(&mut *store, alloc))
            .and_then(Extern::into_func)
            .ok_or_else(|| bad("the instance has no fnhost_alloc"))?
            .typed::<i32, i32>(&*store)?;
        Ok((memory, Some(alloc)))
    }

    /// Copies the params to where `fnhost_alloc` said, checking its answer.
    fn write_params(
        &self,
        store: &mut Store<CallState>,
        memory: Memory,
        params: &[u8],
        ptr: i32,
    ) -> Result<i32, Fail> {
        let len = params.len();
        if ptr == 0 {
            return Err(bad(format!(
                "fnhost_alloc returned 0 (no memory) for {len} bytes of params"
            )));
        }
        memory
            .write(&mut *store, ptr as u32 as usize, params)
            .map_err(|_| {
                bad(format!(
                    "fnhost_alloc returned {ptr:#x}, but {len} bytes there are outside memory"
                ))
            })?;
        Ok(ptr)
    }

    /// The RPC function's export in this instance, taking `P` (v1 `(ptr, len)`, v2 `len`).
    fn entry_point<P: WasmParams>(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
        f: &Function,
    ) -> Result<TypedFunc<P, i64>, Fail> {
        Ok(instance
            .get_module_export(&mut *store, &f.export)
            .and_then(Extern::into_func)
            .ok_or_else(|| bad("the instance lacks an exported function"))?
            .typed::<P, i64>(&*store)?)
    }

    /// Reads the function's packed return value as an output (docs/ABI.md).
    fn output(
        &self,
        store: &Store<CallState>,
        memory: Memory,
        ret: i64,
    ) -> Result<Box<RawValue>, Fail> {
        let (out_ptr, out_len) = fnhost_abi::unpack(ret);
        Ok(read_output(
            memory.data(store),
            out_ptr,
            out_len,
            self.settings.max_result_bytes,
        )?)
    }
}
