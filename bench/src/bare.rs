//! A bare wasmtime host: the guest call fnhost makes, with nothing of fnhost around it.
//!
//! [`Bare`] runs each call in a fresh instance from an engine configured as fnhost configures
//! its own (pooling allocator with 128 slots, copy-on-write images, 64 KiB keep-resident with
//! `pagemap_scan`, fuel, epoch interruption with a 5 ms ticker, `InstancePre`, synchronous
//! calls):
//!
//! - `math.add` runs the `math` example guest through the guest ABI (`docs/ABI.md`:
//!   `fnhost_alloc`, params written into guest memory, `fnhost_call_add`, output read back), so
//!   it does the guest's share of fnhost's work and none of the host's: no registry, no limits
//!   per call, no params or output checks, no usage counters, no logs;
//! - `wat.add` runs a hand-written module whose `add` takes two `i64`s, the params parsed by
//!   the host: the floor of a fresh instance per call, with no guest code to speak of.
//!
//! `src/bin/wasm-ref.rs` serves it over HTTP and `benches/sandbox.rs` calls it in-process, so
//! native → `wat.add` → `math.add` here → fnhost's `math.add` splits fnhost's cost per call into
//! the instance itself, the guest's code, and fnhost's own work (docs/PERFORMANCE.md).

use std::time::Duration;

use anyhow::{Context, bail};
use fnhost_abi::{ALLOC_EXPORT, CALL_PREFIX, HOST_MODULE, LOG_IMPORT, MEMORY_EXPORT};
use wasmtime::{
    Caller, Config, Enabled, Engine, Extern, InstanceAllocationStrategy, InstancePre, Linker,
    Module, ModuleExport, OptLevel, PoolingAllocationConfig, Store,
};

const SLOTS: u32 = 128;
const MEMORY_BYTES: usize = 64 << 20;
/// One sync slice of fuel, as fnhost gives a call's first attempt.
const FUEL: u64 = 2_000_000;
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Ticks before a call is stopped: one second.
const DEADLINE_TICKS: u64 = 201;

const ADD_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "add") (param i64 i64) (result i64)
    local.get 0
    local.get 1
    i64.add))"#;

fn engine() -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(SLOTS)
        .total_memories(SLOTS)
        .total_tables(SLOTS)
        .total_stacks(SLOTS)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(10_000)
        .max_memory_size(MEMORY_BYTES)
        .linear_memory_keep_resident(64 << 10)
        .table_keep_resident(16 << 10)
        .pagemap_scan(Enabled::Auto);
    let mut c = Config::new();
    c.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 << 10)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&c)?)
}

/// The `math` guest, ready to instantiate, with its exports looked up once.
struct Guest {
    pre: InstancePre<()>,
    memory: ModuleExport,
    alloc: ModuleExport,
    add: ModuleExport,
}

impl Guest {
    fn new(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Self> {
        let module = Module::new(engine, wasm)?;
        let mut linker = Linker::new(engine);
        // The guest SDK's log import; nothing logs on this path.
        linker.func_wrap(
            HOST_MODULE,
            LOG_IMPORT,
            |_: Caller<'_, ()>, _level: i32, _ptr: i32, _len: i32| {},
        )?;
        let export = |name: &str| {
            module
                .get_export_index(name)
                .with_context(|| format!("the guest has no `{name}` export"))
        };
        Ok(Self {
            memory: export(MEMORY_EXPORT)?,
            alloc: export(ALLOC_EXPORT)?,
            add: export(&format!("{CALL_PREFIX}add"))?,
            pre: linker.instantiate_pre(&module)?,
        })
    }

    /// One call through the guest ABI in a fresh instance: the guest's output bytes.
    fn call(&self, params: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut store = store(self.pre.module().engine())?;
        let instance = self.pre.instantiate(&mut store)?;
        let Some(Extern::Memory(memory)) = instance.get_module_export(&mut store, &self.memory)
        else {
            bail!("no memory export");
        };
        let func = |export: &ModuleExport, store: &mut Store<()>| {
            instance
                .get_module_export(&mut *store, export)
                .and_then(Extern::into_func)
                .context("missing function export")
        };
        let alloc = func(&self.alloc, &mut store)?.typed::<i32, i32>(&store)?;
        let add = func(&self.add, &mut store)?.typed::<(i32, i32), i64>(&store)?;
        let len = i32::try_from(params.len())?;
        let ptr = alloc.call(&mut store, len)?;
        memory.write(&mut store, ptr as u32 as usize, params)?;
        let (out_ptr, out_len) = fnhost_abi::unpack(add.call(&mut store, (ptr, len))?);
        let mut output = vec![0; out_len as usize];
        memory.read(&store, out_ptr as usize, &mut output)?;
        Ok(output)
    }
}

/// The hand-written `add`, params parsed by the host.
struct Wat {
    pre: InstancePre<()>,
    add: ModuleExport,
}

impl Wat {
    fn new(engine: &Engine) -> anyhow::Result<Self> {
        let module = Module::new(engine, wat::parse_str(ADD_WAT)?)?;
        Ok(Self {
            add: module.get_export_index("add").context("no add export")?,
            pre: Linker::new(engine).instantiate_pre(&module)?,
        })
    }

    fn call(&self, params: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (x, y): (i64, i64) = serde_json::from_slice(params)?;
        let mut store = store(self.pre.module().engine())?;
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

fn store(engine: &Engine) -> anyhow::Result<Store<()>> {
    let mut store = Store::new(engine, ());
    store.set_fuel(FUEL)?;
    store.set_epoch_deadline(DEADLINE_TICKS);
    store.epoch_deadline_trap();
    Ok(store)
}

/// The two guests on one engine, with its epoch ticker.
pub struct Bare {
    guest: Guest,
    wat: Wat,
}

impl Bare {
    /// Compiles the `math` example guest (from [`crate::guest_dir`]) and the WAT `add`, and
    /// starts the epoch ticker (it stops when the engine is dropped).
    pub fn new() -> anyhow::Result<Self> {
        let engine = engine()?;
        let guest = Guest::new(&engine, &crate::guest_bytes("math")?)?;
        let wat = Wat::new(&engine)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Self { guest, wat })
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
