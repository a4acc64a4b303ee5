//! One call: a fresh `Store` and instance, the params copied in, the output checked and copied
//! out, and every way it can fail turned into a typed [`Error`].
//!
//! The store carries the call's limits: fuel, an epoch deadline, and a [`Limiter`] that refuses
//! memory and table growth past the caps and remembers that it did, so a guest that aborts after
//! a refused `memory.grow` is reported as over its memory limit rather than as a bare trap.
//!
//! A call runs in up to two attempts (docs/DESIGN.md, "Guest code never blocks an async
//! worker"). The first runs synchronously on the calling task with its fuel capped at one
//! *slice* (the fuel yield interval): no fiber, no timer, so the common short call pays for
//! neither. A worker is held no longer than by one slice of an async call before its first
//! yield. Only a call that spends its whole slice is run again, from a fresh instance, with
//! wasmtime's async API, which yields to other tasks every slice until its full budget or
//! deadline. Guests cannot observe the difference (every attempt is a fresh instance and has
//! no clock); log lines of a first attempt that is run again are dropped, not doubled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fnhost_abi::{GuestError, InvalidParams, LogLevel, Status};
use serde_json::value::RawValue;
use wasmtime::{Caller, Extern, Instance, Linker, Memory, ResourceLimiter, Store, Trap, TypedFunc};

use super::{Function, Program};
use crate::config::Limits;
use crate::digest::Digest;
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
}

/// Per-call store data.
pub(super) struct CallState {
    limiter: Limiter,
    module: Arc<str>,
    function: Arc<str>,
    digest: Digest,
    /// The fuel this attempt was given, to tell what it used.
    fuel_budget: u64,
    log_lines: u32,
    log_dropped: u32,
    /// Log lines held back until the attempt is known to count: `Some` in a first attempt that
    /// may be run again, so a rerun does not log its lines twice.
    held_logs: Option<Vec<(LogLevel, String)>>,
}

impl CallState {
    /// Sends a guest's log line to the host's tracing, naming the module, function and digest.
    fn emit(&self, level: LogLevel, message: &str) {
        let (module, function, digest) = (&*self.module, &*self.function, self.digest);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "fnhost::guest", $level, module, function, %digest, "{message}")
            };
        }
        match level {
            LogLevel::Error => emit!(tracing::Level::ERROR),
            LogLevel::Warn => emit!(tracing::Level::WARN),
            LogLevel::Info => emit!(tracing::Level::INFO),
            LogLevel::Debug => emit!(tracing::Level::DEBUG),
            LogLevel::Trace => emit!(tracing::Level::TRACE),
        }
    }

    /// Emits the held lines (the attempt counts) and the warning about dropped ones.
    fn flush_logs(&mut self) {
        for (level, message) in self.held_logs.take().unwrap_or_default() {
            self.emit(level, &message);
        }
        if self.log_dropped > 0 {
            tracing::warn!(
                module = &*self.module, function = &*self.function, digest = %self.digest,
                dropped = self.log_dropped,
                "guest log lines dropped (at most {} per call)", fnhost_abi::MAX_LOG_LINES
            );
        }
    }
}

/// Caps memory and tables of the one instance a call makes, and remembers a refusal.
struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    /// Set when a memory growth was refused: `(requested bytes)`.
    memory_refused: Option<usize>,
    /// Set when a table growth was refused: `(requested elements)`.
    table_refused: Option<usize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// A host function refused what the guest asked (e.g. a log range outside memory).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HostFnRefused(String);

/// Registers the host functions of `docs/ABI.md`.
pub(super) fn add_host_functions(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        fnhost_abi::HOST_MODULE,
        fnhost_abi::LOG_IMPORT,
        |mut caller: Caller<'_, CallState>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            // Past the line cap, count and return before touching memory: a flood stays cheap.
            if caller.data().log_lines >= fnhost_abi::MAX_LOG_LINES {
                caller.data_mut().log_dropped += 1;
                return Ok(());
            }
            let Some(Extern::Memory(memory)) = caller.get_export(fnhost_abi::MEMORY_EXPORT) else {
                return Err(HostFnRefused("log: the module has no memory".into()).into());
            };
            let (start, len) = (ptr as u32 as usize, len as u32 as usize);
            let Some(bytes) = memory.data(&caller).get(start..start + len) else {
                return Err(HostFnRefused(format!(
                    "log: the message range {start}..{} is outside the guest's memory",
                    start + len
                ))
                .into());
            };
            let cut = &bytes[..len.min(fnhost_abi::MAX_LOG_MESSAGE)];
            let message = String::from_utf8_lossy(cut).into_owned();
            let level = LogLevel::from_raw(level);
            let state = caller.data_mut();
            state.log_lines += 1;
            match &mut state.held_logs {
                Some(held) => held.push((level, message)),
                None => state.emit(level, &message),
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Why a call did not produce output: wasmtime said so, or the guest broke the ABI.
enum Fail {
    Wasm(wasmtime::Error),
    Abi(Error),
}

impl From<wasmtime::Error> for Fail {
    fn from(e: wasmtime::Error) -> Self {
        Fail::Wasm(e)
    }
}

fn bad_output(message: impl Into<String>) -> Fail {
    Fail::Abi(Error::new(Kind::BadGuestOutput, message))
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
        &self,
        module: &Arc<str>,
        function: &str,
        params: &[u8],
        limits: &Limits,
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
        let slice = self.settings.fuel_yield_interval;
        let rerun = limits.fuel > slice;
        let mut store = self.store(module, f, limits, Mode::Sync { rerun }, limits.timeout())?;
        let mut outcome = self.run_sync(&mut store, f, params);
        if rerun && matches!(&outcome, Err(Fail::Wasm(e)) if is_out_of_fuel(e)) {
            // The call needs more than one slice: run it again where it can yield.
            let left = limits.timeout().saturating_sub(start.elapsed());
            store = self.store(module, f, limits, Mode::Async, left)?;
            // The epoch deadline stops guest code; this outer timeout also bounds anything
            // else (instantiation, host functions) should it ever stall.
            let grace = self.settings.epoch_tick * 4 + Duration::from_millis(50);
            outcome =
                match tokio::time::timeout(left + grace, self.run_async(&mut store, f, params))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(_elapsed) => Err(Fail::Abi(deadline_exceeded(limits))),
                };
        }

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
                });
            }
            Err(fail) => fail,
        };
        let error = match fail {
            Fail::Abi(e) => e,
            Fail::Wasm(e) => classify(e, state, limits, fuel_used),
        };
        Err(error
            .with("module", &**module)
            .with("function", function)
            .with("digest", self.digest.to_hex())
            .with("fuel_used", fuel_used)
            .with("elapsed_ms", elapsed.as_secs_f64() * 1000.0))
    }

    /// A fresh store for one attempt: its fuel, its deadline `deadline` from now, its limiter.
    fn store(
        &self,
        module: &Arc<str>,
        f: &Function,
        limits: &Limits,
        mode: Mode,
        deadline: Duration,
    ) -> Result<Store<CallState>, Error> {
        let fuel = match mode {
            Mode::Sync { .. } => limits.fuel.min(self.settings.fuel_yield_interval),
            Mode::Async => limits.fuel,
        };
        let engine = self.pre.module().engine();
        let mut store = Store::new(
            engine,
            CallState {
                limiter: Limiter {
                    memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                    table_elements: self.settings.max_table_elements as usize,
                    memory_refused: None,
                    table_refused: None,
                },
                module: module.clone(),
                function: f.name.clone(),
                digest: self.digest,
                fuel_budget: fuel,
                log_lines: 0,
                log_dropped: 0,
                held_logs: (mode == Mode::Sync { rerun: true }).then(Vec::new),
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
    fn run_sync(
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
            .entry_point(store, &instance, f)?
            .call(&mut *store, (ptr, params.len() as i32))?;
        self.output(store, memory, ret)
    }

    /// One attempt with wasmtime's async API: guest code yields to other tasks every slice.
    async fn run_async(
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
        let func = self.entry_point(store, &instance, f)?;
        let ret = func
            .call_async(&mut *store, (ptr, params.len() as i32))
            .await?;
        self.output(store, memory, ret)
    }

    /// The instance's memory, and `fnhost_alloc` when there are params to hand over.
    fn exports(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
        params: &[u8],
    ) -> Result<(Memory, Option<TypedFunc<i32, i32>>), Fail> {
        let Some(Extern::Memory(memory)) = instance.get_module_export(&mut *store, &self.memory)
        else {
            return Err(bad_output("the instance has no memory export"));
        };
        if params.is_empty() {
            return Ok((memory, None));
        }
        if i32::try_from(params.len()).is_err() {
            return Err(bad_output("the params are too large for a 32-bit guest"));
        }
        let alloc = instance
            .get_module_export(&mut *store, &self.alloc)
            .and_then(Extern::into_func)
            .ok_or_else(|| bad_output("the instance has no fnhost_alloc"))?
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
            return Err(bad_output(format!(
                "fnhost_alloc returned 0 (no memory) for {len} bytes of params"
            )));
        }
        memory
            .write(&mut *store, ptr as u32 as usize, params)
            .map_err(|_| {
                bad_output(format!(
                    "fnhost_alloc returned {ptr:#x}, but {len} bytes there are outside memory"
                ))
            })?;
        Ok(ptr)
    }

    /// The RPC function's export in this instance.
    fn entry_point(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
        f: &Function,
    ) -> Result<TypedFunc<(i32, i32), i64>, Fail> {
        Ok(instance
            .get_module_export(&mut *store, &f.export)
            .and_then(Extern::into_func)
            .ok_or_else(|| bad_output("the instance lacks an exported function"))?
            .typed::<(i32, i32), i64>(&*store)?)
    }

    /// Reads the function's packed return value as an output (docs/ABI.md).
    fn output(
        &self,
        store: &Store<CallState>,
        memory: Memory,
        ret: i64,
    ) -> Result<Box<RawValue>, Fail> {
        let (out_ptr, out_len) = fnhost_abi::unpack(ret);
        read_output(
            memory.data(store),
            out_ptr,
            out_len,
            self.settings.max_result_bytes,
        )
    }
}

fn is_out_of_fuel(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel))
}

fn deadline_exceeded(limits: &Limits) -> Error {
    Error::new(
        Kind::DeadlineExceeded,
        format!("the call ran past its deadline of {} ms", limits.timeout_ms),
    )
    .with("limit_ms", limits.timeout_ms)
}

/// Checks the output at `ptr..ptr+len` against `docs/ABI.md` and copies the result out.
fn read_output(data: &[u8], ptr: u32, len: u32, max_result: usize) -> Result<Box<RawValue>, Fail> {
    let len = len as usize;
    if len == 0 {
        return Err(bad_output(
            "the guest returned an empty output (no status byte)",
        ));
    }
    if len - 1 > max_result {
        return Err(Fail::Abi(
            Error::new(
                Kind::BadGuestOutput,
                format!(
                    "the guest returned {} bytes, above the result limit of {max_result} bytes",
                    len - 1
                ),
            )
            .with("limit_bytes", max_result)
            .with("returned_bytes", len - 1),
        ));
    }
    let start = ptr as usize;
    let Some(bytes) = data.get(start..start + len) else {
        return Err(bad_output(format!(
            "the guest's output range {start:#x}..{:#x} is outside its {}-byte memory",
            start + len,
            data.len()
        )));
    };
    let Some(status) = Status::from_byte(bytes[0]) else {
        return Err(bad_output(format!(
            "the guest's output starts with status {}, which docs/ABI.md does not define",
            bytes[0]
        )));
    };
    let text = std::str::from_utf8(&bytes[1..]).map_err(|e| {
        bad_output(format!(
            "the guest's output is not valid UTF-8 (at byte {})",
            e.valid_up_to() + 1
        ))
    })?;
    match status {
        Status::Ok => {
            let raw: &RawValue = serde_json::from_str(text)
                .map_err(|e| bad_output(format!("the guest's result is not valid JSON: {e}")))?;
            Ok(raw.to_owned())
        }
        Status::Error => {
            let guest: GuestError = serde_json::from_str(text)
                .map_err(|e| bad_output(format!("the guest's error payload is malformed: {e}")))?;
            let mut error = Error::new(Kind::GuestError, guest.message);
            if let Some(code) = guest.code.filter(|c| !(-32768..=-32000).contains(c)) {
                error.guest_code = Some(code);
            }
            if let Some(data) = guest.data {
                error = error.with("guest_data", data);
            }
            Err(Fail::Abi(error))
        }
        Status::InvalidParams => {
            let invalid: InvalidParams = serde_json::from_str(text).map_err(|e| {
                bad_output(format!(
                    "the guest's invalid-params payload is malformed: {e}"
                ))
            })?;
            let mut error = Error::new(Kind::InvalidParams, invalid.message);
            if let Some(param) = invalid.param {
                error = error.with("param", param);
            }
            Err(Fail::Abi(error))
        }
    }
}

/// Turns a wasmtime failure into the error class a caller can act on.
fn classify(e: wasmtime::Error, state: &CallState, limits: &Limits, fuel_used: u64) -> Error {
    let memory_refused = || {
        state.limiter.memory_refused.map(|requested| {
            Error::new(
                Kind::MemoryLimit,
                format!(
                    "the guest asked for {} MiB of linear memory; its limit is {} MiB",
                    requested >> 20,
                    limits.memory_bytes >> 20
                ),
            )
            .with("resource", "memory")
            .with("limit_bytes", limits.memory_bytes)
            .with("requested_bytes", requested)
        })
    };
    let table_refused = || {
        state.limiter.table_refused.map(|requested| {
            Error::new(
                Kind::MemoryLimit,
                format!(
                    "the guest asked for a table of {requested} elements; the limit is {}",
                    state.limiter.table_elements
                ),
            )
            .with("resource", "table")
            .with("limit_elements", state.limiter.table_elements)
            .with("requested_elements", requested)
        })
    };
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => Error::new(
                Kind::OutOfFuel,
                format!("the call used up its fuel ({} units)", limits.fuel),
            )
            .with("limit", limits.fuel),
            Trap::Interrupt => deadline_exceeded(limits),
            Trap::StackOverflow => Error::new(
                Kind::StackOverflow,
                "the guest overflowed its wasm stack (too deep recursion)",
            ),
            other => memory_refused().or_else(table_refused).unwrap_or_else(|| {
                Error::new(Kind::GuestTrap, format!("the guest trapped: {other}"))
                    .with("trap", format!("{other:?}"))
            }),
        };
    }
    if let Some(refused) = e.downcast_ref::<HostFnRefused>() {
        return Error::new(Kind::GuestTrap, refused.0.clone()).with("trap", "HostFunction");
    }
    if let Some(error) = memory_refused().or_else(table_refused) {
        return error;
    }
    if e.is::<wasmtime::PoolConcurrencyLimitError>() {
        return Error::new(Kind::Busy, "no free instance slot; try again");
    }
    tracing::error!(error = ?e, fuel_used, "call failed inside the host");
    Error::internal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abi_err(r: Result<Box<RawValue>, Fail>) -> Error {
        match r {
            Err(Fail::Abi(e)) => e,
            Err(Fail::Wasm(e)) => panic!("unexpected wasm error {e}"),
            Ok(v) => panic!("unexpected success {v}"),
        }
    }

    #[test]
    fn output_ok_is_passed_through_verbatim() {
        let mem = b"xx\0{\"a\": [1, 2]}";
        let v = read_output(mem, 2, (mem.len() - 2) as u32, 100)
            .ok()
            .unwrap();
        assert_eq!(v.get(), "{\"a\": [1, 2]}");
    }

    #[test]
    fn output_out_of_bounds_and_huge_are_bad_output() {
        let mem = [0u8; 16];
        let e = abi_err(read_output(&mem, 10, 10, 100));
        assert_eq!(e.kind, Kind::BadGuestOutput);
        assert!(e.message.contains("outside"), "{}", e.message);
        let e = abi_err(read_output(&mem, u32::MAX, u32::MAX, 100));
        assert!(
            e.message.contains("above the result limit"),
            "{}",
            e.message
        );
        let e = abi_err(read_output(&mem, u32::MAX, 8, 100));
        assert!(e.message.contains("outside"), "{}", e.message);
    }

    #[test]
    fn output_bad_utf8_json_status() {
        let e = abi_err(read_output(b"\0\xff\xfe", 0, 3, 100));
        assert!(e.message.contains("UTF-8"), "{}", e.message);
        let e = abi_err(read_output(b"\0{nope", 0, 6, 100));
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = abi_err(read_output(b"\x09{}", 0, 3, 100));
        assert!(e.message.contains("status 9"), "{}", e.message);
        let e = abi_err(read_output(b"\0", 0, 0, 100));
        assert!(e.message.contains("empty"), "{}", e.message);
    }

    #[test]
    fn guest_errors_keep_their_code_unless_reserved() {
        let out = b"\x01{\"message\":\"no\",\"code\":42,\"data\":[1]}";
        let e = abi_err(read_output(out, 0, out.len() as u32, 100));
        assert_eq!(
            (e.kind, e.code(), e.message.as_str()),
            (Kind::GuestError, 42, "no")
        );
        assert_eq!(e.data["guest_data"], serde_json::json!([1]));

        let out = b"\x01{\"message\":\"no\",\"code\":-32601}";
        let e = abi_err(read_output(out, 0, out.len() as u32, 100));
        assert_eq!(e.code(), Kind::GuestError.code());
    }

    #[test]
    fn invalid_params_name_the_param() {
        let out = b"\x02{\"message\":\"missing parameter `y`\",\"param\":\"y\"}";
        let e = abi_err(read_output(out, 0, out.len() as u32, 100));
        assert_eq!(e.kind, Kind::InvalidParams);
        assert_eq!(e.data["param"], "y");
    }
}
