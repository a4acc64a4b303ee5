//! The only place wasmtime is named: the engine, compiled programs, and the per-call sandbox.
//!
//! One [`Sandbox`] per process owns the `Engine` ([`engine`]: pooling allocator, fuel, epoch
//! interruption, async calls) and the one epoch ticker thread. [`Sandbox::compile`] turns
//! checked bytes ([`inspect`]) into a [`Program`] (an `InstancePre` plus the export handles a
//! call needs), and [`Program::call`] ([`call`]) runs one call in a fresh `Store` with its own
//! limits ([`limiter`]), host functions ([`hostfn`]) and state ([`state`]); its output is read
//! by [`output`] and its failures classified by [`trap`]. [`abi`] is where ABI versions part.
//! Everything else in the crate deals in [`Program`], [`CallOutput`] and
//! [`crate::error::Error`].

pub mod abi;
mod call;
mod engine;
mod hostfn;
mod inspect;
mod lane;
mod limiter;
mod output;
mod state;
mod trap;
pub mod worker;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fnhost_abi::FunctionMeta;
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, ModuleExport, ValType};

pub use abi::Abi;
pub use call::CallOutput;
pub use engine::{MemoryReset, memory_reset};
pub use inspect::{Caps, Inspected, inspect};
pub use lane::LongCalls;
pub use output::read_output;
pub use state::{GuestLog, LogSink};

use crate::config::Config;
use crate::digest::Digest;
use crate::error::{Error, Kind};

/// Errors building the engine. Only at start-up.
#[derive(Debug, thiserror::Error)]
#[error("cannot configure the wasm engine: {0}")]
pub struct EngineError(String);

/// Sandbox-wide settings a call needs, copied from [`Config`].
#[derive(Debug, Clone, Copy)]
struct Settings {
    epoch_tick: Duration,
    fuel_yield_interval: u64,
    max_result_bytes: usize,
    max_table_elements: u32,
    log: state::LogCaps,
}

/// The process's wasm engine and what every call shares.
pub struct Sandbox {
    engine: Engine,
    /// Host functions every module may import ([`hostfn::ALL`]).
    linker: Linker<state::CallState>,
    settings: Settings,
    caps: Caps,
    /// Stops the epoch ticker when the sandbox is dropped.
    ticker_stop: Arc<AtomicBool>,
    /// Names this engine's precompiled artifacts: a different wasmtime or config never loads them.
    compat_key: String,
    /// Compiles run in this child process when set ([`worker`]).
    worker: Option<worker::Worker>,
    /// Instances alive now (pool slots in use), shared with every program.
    instances: Arc<std::sync::atomic::AtomicUsize>,
    /// Where calls past their first slice run, shared with every program.
    lane: Arc<lane::Lane>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("compat_key", &self.compat_key)
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled module, ready to instantiate once per call.
pub struct Program {
    pub digest: Digest,
    /// The ABI version the module speaks; calls follow it.
    abi: Abi,
    pre: InstancePre<state::CallState>,
    memory: ModuleExport,
    /// `fnhost_alloc` (ABI v1 only).
    alloc: Option<ModuleExport>,
    /// RPC functions by name.
    functions: Functions,
    /// Metadata in export order, for listings.
    metas: Vec<FunctionMeta>,
    settings: Settings,
    /// The sandbox's count of instances alive.
    instances: Arc<std::sync::atomic::AtomicUsize>,
    /// The sandbox's long-call lane.
    lane: Arc<lane::Lane>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("digest", &self.digest)
            .field("functions", &self.functions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A program's functions by name, looked up on every call: hashed with foldhash, not SipHash
/// (the names are the deployer's, so there is no flooding to defend against here).
type Functions = HashMap<String, Function, foldhash::fast::RandomState>;

/// One RPC function of a [`Program`].
struct Function {
    export: ModuleExport,
    meta: FunctionMeta,
    /// The name, shared into each call's store for log lines (no allocation per call).
    name: Arc<str>,
}

/// A compiled module and its serialized form (to cache on disk).
pub struct Compiled {
    pub program: Program,
    pub artifact: Vec<u8>,
}

impl Sandbox {
    /// Builds the engine for `config` and starts its epoch ticker.
    pub fn new(config: &Config) -> Result<Self, EngineError> {
        let settings = Settings {
            epoch_tick: config.epoch_tick,
            fuel_yield_interval: config.fuel_yield_interval,
            max_result_bytes: config.max_result_bytes,
            max_table_elements: config.max_table_elements,
            log: state::LogCaps {
                lines: config.max_log_lines,
                message_bytes: config.max_log_message_bytes,
            },
        };
        let caps = Caps {
            max_memory_bytes: config.maxima.memory_bytes,
            max_table_elements: config.max_table_elements,
            max_functions: config.max_functions,
        };

        let engine = engine::build(config).map_err(|e| EngineError(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        hostfn::add_all(&mut linker).map_err(|e| EngineError(e.to_string()))?;
        let compat_key = engine::compat_key(&engine);

        let ticker_stop = Arc::new(AtomicBool::new(false));
        engine::spawn_ticker(&engine, config.epoch_tick, ticker_stop.clone())
            .map_err(|e| EngineError(format!("cannot start the epoch ticker: {e}")))?;

        let worker = config.compile_worker.as_ref().map(|exe| worker::Worker {
            exe: exe.clone(),
            settings: serde_json::to_string(&worker::EngineSettings::of(config))
                .unwrap_or_default(),
            memory_bytes: config.compile_memory_bytes,
        });
        Ok(Self {
            engine,
            linker,
            settings,
            caps,
            ticker_stop,
            compat_key,
            worker,
            instances: Arc::default(),
            lane: Arc::new(lane::Lane::new(config.max_concurrent_calls)),
        })
    }

    /// The engine every call runs on (pooling, fuel, epochs: `wasm_config`), for benchmarks that
    /// compare fnhost with wasmtime alone on the same engine (`bench/src/bare.rs`).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Long calls running in the long-call lane and waiting for it now.
    pub fn long_calls(&self) -> &Arc<LongCalls> {
        self.lane.calls()
    }

    /// Instances alive now (instance pool slots in use).
    pub fn instances(&self) -> &Arc<std::sync::atomic::AtomicUsize> {
        &self.instances
    }

    /// Names artifacts this engine can load; part of their path on disk.
    pub fn compat_key(&self) -> &str {
        &self.compat_key
    }

    /// The checks that run before compiling (see [`inspect`]).
    pub fn inspect(&self, bytes: &[u8]) -> Result<Inspected, Error> {
        inspect(bytes, &self.caps)
    }

    /// Checks and compiles uploaded bytes. CPU-heavy: call it off the async workers.
    pub fn compile(&self, digest: Digest, bytes: &[u8]) -> Result<Compiled, Error> {
        let inspected = self.inspect(bytes)?;
        let module = Module::new(&self.engine, bytes).map_err(|e| {
            Error::new(
                Kind::BadModule,
                format!(
                    "the module does not validate or compile: {}",
                    engine::first_line(&e)
                ),
            )
        })?;
        let program = self.program(digest, module, inspected)?;
        let artifact = program.serialize()?;
        Ok(Compiled { program, artifact })
    }

    /// Loads a precompiled artifact this host wrote earlier.
    ///
    /// The caller must have checked the file's integrity (its recorded SHA-256): deserializing
    /// is only sound for artifacts this engine produced.
    pub fn load_artifact(
        &self,
        digest: Digest,
        module_bytes: &[u8],
        artifact: &Path,
    ) -> Result<Program, Error> {
        let inspected = self.inspect(module_bytes)?;
        // SAFETY: the artifact was written by `compile` on an engine with the same
        // compatibility key (it is in the path) and its checksum was verified by the caller.
        let module = unsafe { Module::deserialize_file(&self.engine, artifact) }.map_err(|e| {
            tracing::warn!(%digest, path = %artifact.display(), error = %e, "cannot load artifact");
            Error::internal()
        })?;
        self.program(digest, module, inspected)
    }

    /// A program for `module`, whose exports must be what its ABI version requires.
    fn program(
        &self,
        digest: Digest,
        module: Module,
        inspected: Inspected,
    ) -> Result<Program, Error> {
        let (abi, metas) = (inspected.abi, inspected.functions);
        let bad = |m: String| Error::new(Kind::BadModule, m);
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            bad(format!(
                "the module's imports do not match what the host offers: {}",
                engine::first_line(&e)
            ))
        })?;
        let (memory, alloc, functions) = abi_exports(abi, &module, &metas)?;
        Ok(Program {
            digest,
            abi,
            pre,
            memory,
            alloc,
            functions,
            metas,
            settings: self.settings,
            instances: self.instances.clone(),
            lane: self.lane.clone(),
        })
    }
}

impl Program {
    /// The functions' metadata, in the module's order.
    pub fn functions(&self) -> &[FunctionMeta] {
        &self.metas
    }

    /// One function's metadata.
    pub fn function(&self, name: &str) -> Option<&FunctionMeta> {
        self.functions.get(name).map(|f| &f.meta)
    }

    /// The ABI version the module speaks.
    pub fn abi(&self) -> Abi {
        self.abi
    }

    /// The compiled code in the form [`Sandbox::load_artifact`] reads back.
    pub fn serialize(&self) -> Result<Vec<u8>, Error> {
        self.pre.module().serialize().map_err(|e| {
            tracing::error!(digest = %self.digest, error = %e, "cannot serialize a compiled module");
            Error::internal()
        })
    }
}

/// The exports `abi` calls: the memory, (v1) `fnhost_alloc`, and one `fnhost_call_<f>` per
/// function, each of the type `docs/ABI.md` gives (v1 `(i32 i32) -> i64`, v2 `(i32) -> i64`).
fn abi_exports(
    abi: Abi,
    module: &Module,
    metas: &[FunctionMeta],
) -> Result<(ModuleExport, Option<ModuleExport>, Functions), Error> {
    let bad = |m: String| Error::new(Kind::BadModule, m);
    let memory = module
        .get_export_index(fnhost_abi::MEMORY_EXPORT)
        .ok_or_else(|| bad("the module does not export `memory`".into()))?;
    let (alloc, call_params): (_, &[ValType]) = match abi {
        Abi::V1 => {
            expect_func_type(
                module,
                fnhost_abi::ALLOC_EXPORT,
                &[ValType::I32],
                &[ValType::I32],
            )?;
            let alloc = module
                .get_export_index(fnhost_abi::ALLOC_EXPORT)
                .ok_or_else(|| {
                    bad(format!(
                        "the module does not export `{}`",
                        fnhost_abi::ALLOC_EXPORT
                    ))
                })?;
            (Some(alloc), &[ValType::I32, ValType::I32])
        }
        Abi::V2 => (None, &[ValType::I32]),
    };
    let mut functions = Functions::with_capacity_and_hasher(metas.len(), Default::default());
    for meta in metas {
        let name = format!("{}{}", fnhost_abi::CALL_PREFIX, meta.name);
        expect_func_type(module, &name, call_params, &[ValType::I64])?;
        let export = module
            .get_export_index(&name)
            .ok_or_else(|| bad(format!("the module does not export `{name}`")))?;
        functions.insert(
            meta.name.clone(),
            Function {
                export,
                meta: meta.clone(),
                name: Arc::from(meta.name.as_str()),
            },
        );
    }
    Ok((memory, alloc, functions))
}

fn expect_func_type(
    module: &Module,
    name: &str,
    params: &[ValType],
    results: &[ValType],
) -> Result<(), Error> {
    let Some(ExternType::Func(ty)) = module.get_export(name) else {
        return Err(Error::new(
            Kind::BadModule,
            format!("the module does not export the function `{name}`"),
        ));
    };
    let same = |got: &mut dyn ExactSizeIterator<Item = ValType>, want: &[ValType]| {
        got.len() == want.len() && got.zip(want).all(|(g, w)| ValType::eq(&g, w))
    };
    if same(&mut ty.params(), params) && same(&mut ty.results(), results) {
        Ok(())
    } else {
        Err(Error::new(
            Kind::BadModule,
            format!(
                "the export `{name}` has type {ty}, but docs/ABI.md requires (func (param {}) (result {}))",
                params
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                results
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ))
    }
}
