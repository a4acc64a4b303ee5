//! Compiling in a child process: the `fnhost` binary re-executed as `fnhost compile-worker`,
//! under an address-space and a CPU limit, killed at the compile budget.
//!
//! Cranelift cannot be cancelled and its memory is not bounded by anything fnhost sets, so a
//! hostile module (thousands of nested loops) could run a compile for tens of seconds and take
//! gigabytes of the host. In a worker, the budget kills it (its slot frees at once) and
//! `RLIMIT_AS` caps its memory; the host only ever holds the bytes.
//!
//! The protocol, on the worker's stdin and stdout: the module's bytes in; out, one status byte
//! then either `0` + the artifact's SHA-256 (32 bytes) + the artifact, or `1` + a UTF-8
//! message saying why the module does not compile. The host loads the artifact only after its
//! checksum matches; it came from our own binary, built for an engine with the same
//! compatibility key (the worker checks the key it was given against its own).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmtime::Module;

use super::{Compiled, Sandbox, engine};
use crate::config::Config;
use crate::digest::Digest;
use crate::error::{Error, Kind};

/// The settings that shape compiled code: what a worker needs to build the host's engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSettings {
    pub max_wasm_stack: usize,
    pub max_table_elements: u32,
    pub max_memory_bytes: u64,
    pub slots: u32,
}

impl EngineSettings {
    pub fn of(config: &Config) -> Self {
        Self {
            max_wasm_stack: config.max_wasm_stack,
            max_table_elements: config.max_table_elements,
            max_memory_bytes: config.maxima.memory_bytes,
            slots: config.max_concurrent_calls,
        }
    }

    fn config(&self) -> Config {
        let mut c = Config::new("");
        c.max_wasm_stack = self.max_wasm_stack;
        c.max_table_elements = self.max_table_elements;
        c.maxima.memory_bytes = self.max_memory_bytes;
        c.max_concurrent_calls = self.slots;
        c
    }
}

/// How the host runs its workers.
#[derive(Debug, Clone)]
pub(super) struct Worker {
    pub exe: PathBuf,
    pub settings: String,
    pub memory_bytes: u64,
}

const OK: u8 = 0;
const REFUSED: u8 = 1;

/// The worker's side: `fnhost compile-worker SETTINGS KEY`, module on stdin. Returns the exit
/// code: 0 when it wrote an answer, 2 for a misuse (bad settings, another engine).
pub fn worker_main(settings: &str, expected_key: &str) -> i32 {
    let fail = |why: String| {
        eprintln!("compile-worker: {why}");
        2
    };
    let settings: EngineSettings = match serde_json::from_str(settings) {
        Ok(s) => s,
        Err(e) => return fail(format!("bad settings: {e}")),
    };
    let engine = match engine::build_unpooled(&settings.config()) {
        Ok(engine) => engine,
        Err(e) => return fail(format!("cannot build the engine: {e}")),
    };
    let key = engine::compat_key(&engine);
    if key != expected_key {
        return fail(format!(
            "this worker's engine key is {key}, the host's {expected_key}: not the same build"
        ));
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        return fail(format!("cannot read the module: {e}"));
    }
    let mut out = std::io::stdout().lock();
    let written = match engine.precompile_module(&bytes) {
        Ok(artifact) => out
            .write_all(&[OK])
            .and_then(|()| out.write_all(Digest::of(&artifact).as_bytes()))
            .and_then(|()| out.write_all(&artifact)),
        Err(e) => out
            .write_all(&[REFUSED])
            .and_then(|()| out.write_all(engine::first_line(&e).as_bytes())),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => fail(format!("cannot write the answer: {e}")),
    }
}

impl Sandbox {
    /// Checks and compiles `bytes` within `budget`: in a worker process when one is
    /// configured (`Config::compile_worker`), else on the blocking pool (where a compile past
    /// its budget is refused but runs on until it ends: `release` is called only then).
    pub async fn compile_bounded(
        self: &Arc<Self>,
        digest: Digest,
        bytes: Arc<[u8]>,
        budget: Duration,
        release: impl FnOnce() + Send + 'static,
    ) -> Result<Compiled, Error> {
        let Some(worker) = &self.worker else {
            let sandbox = self.clone();
            let compile = tokio::task::spawn_blocking(move || {
                let compiled = sandbox.compile(digest, &bytes);
                release();
                compiled
            });
            return match tokio::time::timeout(budget, compile).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "compile task failed");
                    Err(Error::internal())
                }
                Err(_) => Err(over_budget(budget)),
            };
        };
        let _release = Release(Some(release));
        let inspected = self.inspect(&bytes)?;
        let answer = tokio::time::timeout(budget, run(worker, &self.compat_key, &bytes, budget))
            .await
            .map_err(|_| over_budget(budget))??;
        let (status, rest) = answer.split_first().ok_or_else(|| {
            tracing::error!(%digest, "the compile worker answered nothing");
            Error::internal()
        })?;
        if *status == REFUSED {
            return Err(Error::new(
                Kind::BadModule,
                format!(
                    "the module does not validate or compile: {}",
                    String::from_utf8_lossy(rest)
                ),
            ));
        }
        let (sum, artifact) = rest.split_at_checked(32).ok_or_else(|| {
            tracing::error!(%digest, "the compile worker's answer is cut short");
            Error::internal()
        })?;
        if *status != OK || Digest::of(artifact).as_bytes() != sum {
            tracing::error!(%digest, status, "the compile worker's artifact fails its checksum");
            return Err(Error::internal());
        }
        // SAFETY: the artifact was produced by our own binary in worker mode, for an engine
        // whose compatibility key it checked against ours, and arrived intact (checksum above).
        let module = unsafe { Module::deserialize(&self.engine, artifact) }.map_err(|e| {
            tracing::error!(%digest, error = %e, "cannot load the compile worker's artifact");
            Error::internal()
        })?;
        let program = self.program(digest, module, inspected)?;
        Ok(Compiled {
            program,
            artifact: artifact.to_vec(),
        })
    }
}

/// Runs its closure when dropped: the worker is gone (done, or killed with its future).
struct Release<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for Release<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

fn over_budget(budget: Duration) -> Error {
    Error::new(
        Kind::BadModule,
        format!(
            "compiling the module took longer than the budget of {} s; refused",
            budget.as_secs_f64()
        ),
    )
    .with("limit_ms", budget.as_millis() as u64)
}

/// Runs one worker to its answer. Dropping the future (the budget ran out) kills it.
async fn run(worker: &Worker, key: &str, bytes: &[u8], budget: Duration) -> Result<Vec<u8>, Error> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(exe = %worker.exe.display(), error = %e, "compile worker: {what}");
        Error::internal()
    };
    let mut command = tokio::process::Command::new(&worker.exe);
    command
        .arg("compile-worker")
        .arg(&worker.settings)
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let (memory, cpu) = (worker.memory_bytes, budget.as_secs() + 2);
    // SAFETY: only `setrlimit` runs between fork and exec: async-signal-safe, no allocation.
    unsafe {
        command.pre_exec(move || {
            rlimit::setrlimit(rlimit::Resource::AS, memory, memory)?;
            rlimit::setrlimit(rlimit::Resource::CPU, cpu, cpu)?;
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| failed("cannot start", &e))?;
    let mut stdin = child.stdin.take().ok_or_else(Error::internal)?;
    let mut stdout = child.stdout.take().ok_or_else(Error::internal)?;
    let mut stderr = child.stderr.take().ok_or_else(Error::internal)?;
    let input = bytes.to_vec();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        // Dropping stdin closes it: the worker reads to the end.
    });
    let mut answer = Vec::new();
    let mut errors = Vec::new();
    let (read, _) = tokio::join!(
        stdout.read_to_end(&mut answer),
        stderr.read_to_end(&mut errors)
    );
    let _ = writer.await;
    read.map_err(|e| failed("cannot read the answer", &e))?;
    let status = child.wait().await.map_err(|e| failed("cannot wait", &e))?;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let why = String::from_utf8_lossy(&errors);
        // Killed by its CPU limit, or out of address space (an allocation failure aborts).
        let out_of_memory = [
            "memory allocation",
            "failed to map",
            "Cannot allocate",
            "out of memory",
        ]
        .iter()
        .any(|m| why.contains(m));
        if matches!(status.signal(), Some(9 | 24 | 6 | 11)) || out_of_memory {
            tracing::warn!(%status, stderr = %why.trim(), "compile worker hit its limits; refused");
            return Err(Error::new(
                Kind::BadModule,
                format!(
                    "compiling the module exceeded the compile limits ({} MiB of memory, {} s of \
                     CPU); refused",
                    worker.memory_bytes >> 20,
                    budget.as_secs_f64()
                ),
            )
            .with("limit_memory_mib", worker.memory_bytes >> 20));
        }
        return Err(failed(&format!("exited with {status}"), &why.trim()));
    }
    Ok(answer)
}

/// The executable a host re-runs as its compile worker: the running one.
pub fn current_exe() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .filter(|p| Path::new(p).exists())
}
