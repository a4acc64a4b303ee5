//! Helpers shared by fnhost's benchmarks: where the example guests are, how to make many
//! distinct copies of one module, and percentiles of measured latencies.
//!
//! The benchmarks themselves are `benches/sandbox.rs` (in-process, criterion),
//! `src/bin/native-ref.rs` (the native reference server the HTTP comparison runs against),
//! `src/bin/wasm-ref.rs` (the same server running the guest in a bare wasmtime host, [`bare`],
//! with no fnhost code; [`refserver`] is what the two servers share),
//! `src/bin/lifecycle.rs` (start-up and deploy) and `run.sh` (everything over HTTP, with wrk).
//! `docs/PERFORMANCE.md` has the commands and the numbers.

pub mod bare;
pub mod refserver;

use std::path::PathBuf;
use std::time::Duration;

/// The command that builds the example guests (what `tests/build.rs` runs, too).
pub const GUEST_BUILD_COMMAND: &str = "scripts/build-guests.sh";

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Where the example guests are built: `FNHOST_GUEST_DIR`, or the workspace's guest target dir.
pub fn guest_dir() -> PathBuf {
    std::env::var_os("FNHOST_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/guests/wasm32-unknown-unknown/guest"))
}

/// The bytes of the example guest `name` (`math`, `echo`, …), or an error naming the command
/// that builds them.
pub fn guest_bytes(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = guest_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e}\nbuild the example guests first, from the workspace root:\n  {GUEST_BUILD_COMMAND}",
            path.display()
        )
    })
}

/// `module` with one more custom section named `name` holding `payload` appended: a module
/// that behaves the same but has its own sha256 (fnhost stores modules by content, so identical
/// bytes would be one module and one compile).
pub fn with_custom_section(module: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    leb128(&mut body, name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(module.len() + body.len() + 6);
    out.extend_from_slice(module);
    out.push(0); // custom section id
    leb128(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Latencies summarised: sorted once, then read at any quantile.
#[derive(Debug, Clone)]
pub struct Percentiles {
    sorted: Vec<Duration>,
}

impl Percentiles {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// The sample at quantile `q` (0.0..=1.0), nearest rank; zero when there are none.
    pub fn at(&self, q: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.at(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.at(0.99)
    }

    pub fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

/// A duration in microseconds with two decimals, for tables.
pub fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

/// A duration in milliseconds with two decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let p = Percentiles::new((1..=100).rev().map(Duration::from_micros).collect());
        assert_eq!(p.p50(), Duration::from_micros(50));
        assert_eq!(p.p99(), Duration::from_micros(99));
        assert_eq!(p.max(), Duration::from_micros(100));
    }

    #[test]
    fn custom_section_is_well_formed() {
        let empty = b"\0asm\x01\0\0\0";
        let out = with_custom_section(empty, "x", &[7; 200]);
        // id 0, size 202 as LEB128 (0xca 0x01), name length 1, "x", then the payload.
        assert_eq!(&out[8..13], &[0, 0xca, 0x01, 1, b'x']);
        assert_eq!(out.len(), 8 + 3 + 202);
    }
}
