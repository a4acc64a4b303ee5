//! `echo`: returns its params, whatever they are. The example of `#[export(raw)]`.
//!
//! The params are taken and returned as raw JSON text, so the answer is byte for byte what the
//! client sent (member order, number spelling and all). Useful to see what a client actually
//! sends, and to measure the host's per-call overhead with a function that does nothing.

use fnhost_guest::export;
use fnhost_guest::serde_json::value::RawValue;

/// Returns the params unchanged: an array, an object, or null when the call had none.
#[export(raw)]
pub fn echo(params: Box<RawValue>) -> Box<RawValue> {
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_its_input_verbatim() {
        let input = RawValue::from_string(r#"{"b": 1, "a": [1.50, "x"]}"#.into()).unwrap();
        assert_eq!(echo(input).get(), r#"{"b": 1, "a": [1.50, "x"]}"#);
    }

    #[test]
    fn rpc_glue() {
        assert_eq!(
            __fnhost_invoke_echo(b"[1, {\"x\": null}]"),
            b"\x00[1, {\"x\": null}]"
        );
        assert_eq!(__fnhost_invoke_echo(b""), b"\x00null");
    }
}
