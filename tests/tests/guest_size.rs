//! Guest size: the issue "Writing guests feels like spin new + extism call" set a budget of
//! 60 KB for the `math` example and for a two-function guest (`hello`), built with the guest
//! profile (size-optimised, LTO, stripped, panic=abort), as `tests/build.rs` builds them.
//!
//! docs/GUESTS.md (*Size*) says where the bytes go; a change to the SDK that brings back
//! serde_json's deserializer, core's float formatting or a table-driven float parser shows up
//! here first.

use fnhost_tests::guest;

/// The budget, in bytes.
const BUDGET: usize = 60_000;

#[test]
fn math_and_a_two_function_guest_stay_under_60_kb() {
    for name in ["math", "hello"] {
        let size = guest(name).len();
        assert!(
            size < BUDGET,
            "{name}.wasm is {size} bytes, over the {BUDGET}-byte budget: see docs/GUESTS.md, Size"
        );
    }
}
