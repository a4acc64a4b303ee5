//! Any `/rpc` body: parsing never panics, and every answer written for it is valid JSON.
#![no_main]

use fnhost::error::{Error, Kind};
use fnhost::rpc::jsonrpc::{Body, parse_body, parse_request, write_error, write_result};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let items = match parse_body(data) {
        Ok(Body::Single(raw)) => vec![raw],
        Ok(Body::Batch(items)) => items,
        Err(e) => {
            write_error(&mut out, None, &e);
            serde_json::from_slice::<serde_json::Value>(&out).expect("error answers are JSON");
            return;
        }
    };
    for raw in items {
        out.clear();
        match parse_request(raw) {
            Ok(req) => {
                if let Some(params) = req.params {
                    write_result(&mut out, req.id, params);
                } else {
                    write_error(
                        &mut out,
                        req.id,
                        &Error::new(Kind::MethodNotFound, &*req.method),
                    );
                }
            }
            Err((id, e)) => write_error(&mut out, id, &e),
        }
        serde_json::from_slice::<serde_json::Value>(&out).expect("answers are JSON");
    }
});
