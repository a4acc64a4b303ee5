//! Any `/RPC2` body: the XML-RPC reader never panics, whatever the nesting or entities.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = fnhost::rpc::xmlrpc::parse_call(data, fnhost::rpc::xmlrpc::DEFAULT_MAX_DEPTH) {
        let value = serde_json::Value::Array(call.params);
        let mut out = String::new();
        let _ = fnhost::rpc::xmlrpc::encode_value(&mut out, &value, fnhost::rpc::xmlrpc::DEFAULT_MAX_DEPTH);
    }
});
