//! Any params against any metadata: the host-side check never panics. The input is split at
//! the first NUL: metadata JSON before it, params after.
#![no_main]

use fnhost_abi::FunctionMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (meta, params) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"{\"abi\":1,\"name\":\"f\",\"params\":[{\"name\":\"x\",\"schema\":{\"type\":\"integer\"}},{\"name\":\"y\",\"required\":false}]}"[..], data),
    };
    if let Ok(meta) = serde_json::from_slice::<FunctionMeta>(meta) {
        let _ = fnhost::rpc::params::check(&meta, params);
    }
});
