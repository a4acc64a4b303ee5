//! `burn`: spends CPU on purpose, for testing fuel limits and deadlines.
//!
//! The work is proportional to `n` and cannot be optimized away, so a large enough `n` runs out
//! of fuel or time on any host limit.

use core::hint::black_box;

use fnhost_guest::export;

/// Spins through n rounds of arithmetic, then returns n.
///
/// Each round costs a few wasm instructions of fuel; the time taken grows linearly with n.
#[export]
pub fn burn(n: u64) -> u64 {
    let mut acc: u64 = 0;
    for i in 0..n {
        acc = black_box(acc.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    black_box(acc);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_n() {
        assert_eq!(burn(0), 0);
        assert_eq!(burn(10_000), 10_000);
    }

    #[test]
    fn rpc_glue() {
        assert_eq!(__fnhost_invoke_burn(b"[5]"), b"\x005");
        assert_eq!(__fnhost_invoke_burn(b"[-1]")[0], 2);
    }
}
