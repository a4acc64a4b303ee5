//! Any upload: the pre-compile inspection never panics (it either accepts or names the cause).
#![no_main]

use fnhost::sandbox::{Caps, inspect};
use libfuzzer_sys::fuzz_target;

const CAPS: Caps = Caps {
    max_memory_bytes: 64 << 20,
    max_table_elements: 10_000,
    max_functions: 20_000,
};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = inspect(data, &CAPS) {
        assert!(!e.message.is_empty());
    }
});
