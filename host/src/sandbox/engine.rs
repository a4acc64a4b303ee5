//! The engine: one per process, configured once (pooling allocator, fuel, epoch interruption,
//! async support), its epoch ticker thread, and the key that names its precompiled artifacts.

use std::hash::Hasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::Digest as _;
use wasmtime::{
    Config as WasmConfig, Enabled, Engine, InstanceAllocationStrategy, OptLevel,
    PoolingAllocationConfig,
};

use crate::config::Config;

/// Builds the engine for `config`: pooled if the pool's address space can be reserved, else
/// on-demand (slower, but correct).
pub(super) fn build(config: &Config) -> wasmtime::Result<Engine> {
    let reset = memory_reset();
    tracing::info!(
        pagemap_scan = reset.pagemap_scan,
        why = reset.why,
        "memory reset between calls"
    );
    match Engine::new(&wasm_config(config, true)) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            // The pool reserves address space up front; where that is refused (e.g. a low
            // `ulimit -v`), run with on-demand allocation.
            tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
            Engine::new(&wasm_config(config, false))
        }
    }
}

/// The same engine without the pooling allocator (a compile worker: it runs no instances, and
/// must fit under an address-space limit the pool's reservation would break).
pub(super) fn build_unpooled(config: &Config) -> wasmtime::Result<Engine> {
    Engine::new(&wasm_config(config, false))
}

/// Names artifacts `engine` can load: a different wasmtime or configuration gets another key.
pub(super) fn compat_key(engine: &Engine) -> String {
    let mut h = Sha256Hasher(sha2::Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    hex::encode(&h.0.finalize()[..8])
}

fn wasm_config(config: &Config, pooling: bool) -> WasmConfig {
    let mut c = WasmConfig::new();
    c.consume_fuel(true);
    c.epoch_interruption(true);
    c.max_wasm_stack(config.max_wasm_stack);
    c.async_stack_size(config.max_wasm_stack + (256 << 10));
    c.cranelift_opt_level(OptLevel::Speed);
    // Only what guests built for wasm32-unknown-unknown need; less surface to trust. (Threads,
    // GC, function references and exceptions are not even compiled in: see Cargo features.)
    c.wasm_multi_memory(false);
    c.wasm_memory64(false);
    c.wasm_stack_switching(false);
    if pooling {
        let slots = config.max_concurrent_calls;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .total_stacks(slots)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .table_elements(config.max_table_elements as usize)
            .max_memory_size(config.maxima.memory_bytes as usize)
            // Keep the first pages of a slot mapped between calls: most guests live there, and
            // resetting them is cheaper than faulting them in again (docs/PERFORMANCE.md).
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10)
            .pagemap_scan(if memory_reset().pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// How a pool slot's memory is reset between calls, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReset {
    /// Whether wasmtime may ask the kernel which pages a call dirtied (`PAGEMAP_SCAN`) instead
    /// of resetting every kept-resident page.
    pub pagemap_scan: bool,
    pub why: &'static str,
}

/// The reset this process uses, decided once from `/proc/swaps`.
///
/// wasmtime 48's `pagemap_scan` reset asks for pages that are *written and present*
/// (`sys/unix/pagemap.rs`, `category_mask(WRITTEN | PRESENT | ..)`): a page a call dirtied that
/// the kernel has since swapped out is not present, is not reported, and keeps the previous
/// call's bytes for the next call in that slot (wasmtime PR #14357, fixed after 48). So with
/// any swap device active, or when that cannot be told, fnhost resets by hand: slower, never
/// stale. Swap turned on after start is not seen: restart the host (docs/SECURITY.md).
pub fn memory_reset() -> MemoryReset {
    static DECIDED: std::sync::OnceLock<MemoryReset> = std::sync::OnceLock::new();
    *DECIDED.get_or_init(|| reset_for(std::fs::read_to_string("/proc/swaps").ok().as_deref()))
}

/// The decision for a `/proc/swaps` text (`None`: unreadable).
fn reset_for(proc_swaps: Option<&str>) -> MemoryReset {
    match proc_swaps {
        None => MemoryReset {
            pagemap_scan: false,
            why: "/proc/swaps is unreadable, so swap may be on",
        },
        // The first line is the header; every other line is an active swap device or file.
        Some(text) if text.lines().skip(1).any(|l| !l.trim().is_empty()) => MemoryReset {
            pagemap_scan: false,
            why: "swap is on: wasmtime 48's pagemap_scan would miss swapped-out dirty pages",
        },
        Some(_) => MemoryReset {
            pagemap_scan: true,
            why: "no swap: pagemap_scan sees every page a call dirtied",
        },
    }
}

pub(super) fn spawn_ticker(
    engine: &Engine,
    tick: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("fnhost-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(|_| ())
}

/// The first line of an error, without wasmtime's context chain.
pub(super) fn first_line(e: &wasmtime::Error) -> String {
    let root = e.root_cause().to_string();
    let top = e.to_string();
    if top == root {
        top
    } else {
        format!("{top}: {root}")
    }
}

/// Feeds `Hash` output into SHA-256, for a stable artifact key.
struct Sha256Hasher(sha2::Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_scan_only_without_swap() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(reset_for(Some(header)).pagemap_scan);
        assert!(reset_for(Some("")).pagemap_scan);
        let zram = format!("{header}/dev/zram0   partition\t4194300\t0\t100\n");
        assert!(!reset_for(Some(&zram)).pagemap_scan);
        let file = format!("{header}/swapfile  file  1048572  524  -2\n");
        assert!(!reset_for(Some(&file)).pagemap_scan);
        assert!(!reset_for(None).pagemap_scan);
    }
}
