//! A bare wasmtime host: the guest call fnhost makes, with nothing of fnhost around it.
//!
//! [`Bare`] runs each call in a fresh instance on fnhost's own engine ([`Sandbox::engine`]:
//! pooling allocator, copy-on-write images, 64 KiB keep-resident with `pagemap_scan`, fuel,
//! epoch interruption and its ticker, all from the default [`Config`]), with `InstancePre` and
//! synchronous calls, the fuel and deadline fnhost gives a call's first attempt:
//!
//! - `math.add` runs the `math` example guest through the guest ABI (`docs/ABI.md`, v2:
//!   `fnhost_call_add(len)`, the guest pulling its params with `fnhost.params`, output read
//!   back), so
//!   it does the guest's share of fnhost's work and none of the host's: no registry, no limits
//!   per call, no params or output checks, no usage counters, no logs;
//! - `wat.add` runs a hand-written module whose `add` takes two `i64`s, the params parsed by
//!   the host: the floor of a fresh instance per call, with no guest code to speak of.
//!
//! `src/bin/wasm-ref.rs` serves it over HTTP and `benches/sandbox.rs` calls it in-process, so
//! native → `wat.add` → `math.add` here → fnhost's `math.add` splits fnhost's cost per call into
//! the instance itself, the guest's code, and fnhost's own work (docs/PERFORMANCE.md).

use anyhow::{Context, bail};
use fnhost::Config;
use fnhost::sandbox::Sandbox;
use fnhost_abi::{CALL_PREFIX, HOST_MODULE, LOG_IMPORT, MEMORY_EXPORT, PARAMS_IMPORT};
use wasmtime::{Caller, Engine, Extern, InstancePre, Linker, Memory, Module, ModuleExport, Store};

const ADD_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "add") (param i64 i64) (result i64)
    local.get 0
    local.get 1
    i64.add))"#;

/// What each call's store gets, as fnhost sets up a call's first attempt.
#[derive(Clone, Copy)]
struct StoreLimits {
    /// One fuel slice (the rest of a call's budget is fnhost's rerun, never reached here).
    fuel: u64,
    /// The default timeout in epoch ticks, +1 as fnhost counts them.
    deadline_ticks: u64,
}

impl StoreLimits {
    fn new(config: &Config) -> Self {
        let tick = config.epoch_tick.as_nanos().max(1);
        let ticks = config.defaults.timeout().as_nanos().div_ceil(tick);
        Self {
            fuel: config.defaults.fuel.min(config.fuel_yield_interval),
            deadline_ticks: u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1),
        }
    }

    fn store<T>(self, engine: &Engine, data: T) -> anyhow::Result<Store<T>> {
        let mut store = Store::new(engine, data);
        store.set_fuel(self.fuel)?;
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        Ok(store)
    }
}

/// What a guest call's store holds: the params the guest pulls, and where they go.
struct Call {
    params: Vec<u8>,
    memory: Option<Memory>,
}

/// The `math` guest, ready to instantiate, with its exports looked up once.
struct Guest {
    pre: InstancePre<Call>,
    limits: StoreLimits,
    memory: ModuleExport,
    add: ModuleExport,
}

impl Guest {
    fn new(engine: &Engine, limits: StoreLimits, wasm: &[u8]) -> anyhow::Result<Self> {
        let module = Module::new(engine, wasm)?;
        let mut linker = Linker::new(engine);
        // The guest SDK's log import; nothing logs on this path.
        linker.func_wrap(
            HOST_MODULE,
            LOG_IMPORT,
            |_: Caller<'_, Call>, _level: i32, _ptr: i32, _len: i32| {},
        )?;
        // ABI v2's params import, as fnhost's (`host/src/sandbox/hostfn/params.rs`).
        linker.func_wrap(
            HOST_MODULE,
            PARAMS_IMPORT,
            |mut caller: Caller<'_, Call>, ptr: i32| -> wasmtime::Result<()> {
                let memory = caller
                    .data()
                    .memory
                    .ok_or_else(|| wasmtime::Error::msg("no memory yet"))?;
                let (bytes, call) = memory.data_and_store_mut(&mut caller);
                let start = ptr as u32 as usize;
                bytes
                    .get_mut(start..start + call.params.len())
                    .ok_or_else(|| wasmtime::Error::msg("params outside memory"))?
                    .copy_from_slice(&call.params);
                Ok(())
            },
        )?;
        let export = |name: &str| {
            module
                .get_export_index(name)
                .with_context(|| format!("the guest has no `{name}` export"))
        };
        Ok(Self {
            memory: export(MEMORY_EXPORT)?,
            add: export(&format!("{CALL_PREFIX}add"))?,
            pre: linker.instantiate_pre(&module)?,
            limits,
        })
    }

    /// One call through the guest ABI in a fresh instance: the guest's output bytes.
    fn call(&self, params: &[u8]) -> anyhow::Result<Vec<u8>> {
        let len = i32::try_from(params.len())?;
        let call = Call {
            params: params.to_vec(),
            memory: None,
        };
        let mut store = self.limits.store(self.pre.module().engine(), call)?;
        let instance = self.pre.instantiate(&mut store)?;
        let Some(Extern::Memory(memory)) = instance.get_module_export(&mut store, &self.memory)
        else {
            bail!("no memory export");
        };
        store.data_mut().memory = Some(memory);
        let add = instance
            .get_module_export(&mut store, &self.add)
            .and_then(Extern::into_func)
            .context("missing function export")?
            .typed::<i32, i64>(&store)?;
        let (out_ptr, out_len) = fnhost_abi::unpack(add.call(&mut store, len)?);
        let mut output = vec![0; out_len as usize];
        memory.read(&store, out_ptr as usize, &mut output)?;
        Ok(output)
    }
}

/// The hand-written `add`, params parsed by the host.
struct Wat {
    pre: InstancePre<()>,
    limits: StoreLimits,
    add: ModuleExport,
}

impl Wat {
    fn new(engine: &Engine, limits: StoreLimits) -> anyhow::Result<Self> {
        let module = Module::new(engine, wat::parse_str(ADD_WAT)?)?;
        Ok(Self {
            add: module.get_export_index("add").context("no add export")?,
            pre: Linker::new(engine).instantiate_pre(&module)?,
            limits,
        })
    }

    fn call(&self, params: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (x, y): (i64, i64) = serde_json::from_slice(params)?;
        let mut store = self.limits.store(self.pre.module().engine(), ())?;
        let instance = self.pre.instantiate(&mut store)?;
        let add = instance
            .get_module_export(&mut store, &self.add)
            .and_then(Extern::into_func)
            .context("no add export")?
            .typed::<(i64, i64), i64>(&store)?;
        let sum = add.call(&mut store, (x, y))?;
        let mut output = vec![0];
        serde_json::to_writer(&mut output, &sum)?;
        Ok(output)
    }
}

/// The two guests on fnhost's engine.
pub struct Bare {
    guest: Guest,
    wat: Wat,
    /// Owns the engine's epoch ticker, which stops when it is dropped.
    _sandbox: Sandbox,
}

impl Bare {
    /// Builds fnhost's engine for the default [`Config`] and compiles the `math` example guest
    /// (from [`crate::guest_dir`]) and the WAT `add` on it.
    pub fn new() -> anyhow::Result<Self> {
        // `Sandbox::new` reads only the engine's settings; nothing touches this directory.
        let mut config = Config::new(std::env::temp_dir());
        // Under valgrind, which cannot reserve the address space of the default 128-slot pool
        // (bench/instructions.sh), a smaller pool keeps the pooled code path.
        if let Some(slots) = std::env::var("FNHOST_BENCH_SLOTS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            config.max_concurrent_calls = slots;
        }
        let sandbox = Sandbox::new(&config)?;
        let engine = sandbox.engine();
        let limits = StoreLimits::new(&config);
        Ok(Self {
            guest: Guest::new(engine, limits, &crate::guest_bytes("math")?)?,
            wat: Wat::new(engine, limits)?,
            _sandbox: sandbox,
        })
    }

    /// Runs `method` (`math.add` or `wat.add`) in a fresh instance: the guest glue's output
    /// (status byte, then JSON), or `None` for another method.
    pub fn answer(&self, method: &str, params: &[u8]) -> Option<anyhow::Result<Vec<u8>>> {
        match method {
            "math.add" => Some(self.guest.call(params)),
            "wat.add" => Some(self.wat.call(params)),
            _ => None,
        }
    }
}
