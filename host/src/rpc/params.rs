//! Checks a call's params against the function's metadata before any sandbox is made.
//!
//! Only the top level is looked at (each member stays raw JSON text), so the check is cheap and
//! the guest still receives the params exactly as sent. It makes `-32602` the same for every
//! guest, SDK-built or hand-written: a missing, unknown, surplus or mistyped parameter is named.

use std::borrow::Cow;
use std::collections::HashMap;

use fnhost_abi::{FunctionMeta, ParamMeta};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{Error, Kind};

fn invalid(message: String) -> Error {
    Error::new(Kind::InvalidParams, message)
}

/// Checks `params` (raw JSON text; empty for none) against `meta`.
pub fn check(meta: &FunctionMeta, params: &[u8]) -> Result<(), Error> {
    if meta.raw {
        // Checked where the request was parsed (see `rpc::dispatch`); not scanned again.
        debug_assert!(
            params.is_empty()
                || serde_json::from_slice::<&RawValue>(params)
                    .is_ok_and(|r| r.get().len() == params.len()),
            "raw params must be one JSON value without whitespace around it"
        );
        return Ok(());
    }
    match params.first() {
        None => missing(meta, &[]),
        Some(b'[') => {
            let values: Vec<&RawValue> = serde_json::from_slice(params)
                .map_err(|e| invalid(format!("params are not a valid JSON array: {e}")))?;
            if values.len() > meta.params.len() {
                return Err(invalid(format!(
                    "`{}` takes at most {} parameters, got {}",
                    meta.name,
                    meta.params.len(),
                    values.len()
                ))
                .with("expected", meta.params.len())
                .with("given", values.len()));
            }
            for (param, value) in meta.params.iter().zip(&values) {
                check_type(param, value)?;
            }
            let given: Vec<&str> = meta.params[..values.len()]
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            missing(meta, &given)
        }
        Some(b'{') => {
            let members: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_slice(params)
                .map_err(|e| invalid(format!("params are not a valid JSON object: {e}")))?;
            let mut unknown: Vec<&str> = members
                .keys()
                .map(|k| k.as_ref())
                .filter(|k| !meta.params.iter().any(|p| p.name == *k))
                .collect();
            if !unknown.is_empty() {
                unknown.sort_unstable();
                let expected: Vec<&str> = meta.params.iter().map(|p| p.name.as_str()).collect();
                return Err(invalid(format!(
                    "unknown parameter{} {} for `{}`; it takes: {}",
                    if unknown.len() > 1 { "s" } else { "" },
                    quoted(&unknown),
                    meta.name,
                    if expected.is_empty() {
                        "no parameters".to_owned()
                    } else {
                        quoted(&expected)
                    }
                ))
                .with("param", unknown[0])
                .with("unknown", unknown.clone()));
            }
            for param in &meta.params {
                if let Some(value) = members.get(param.name.as_str()) {
                    check_type(param, value)?;
                }
            }
            let given: Vec<&str> = members.keys().map(|k| k.as_ref()).collect();
            missing(meta, &given)
        }
        Some(_) => Err(invalid("params must be an array or an object".to_owned())),
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn missing(meta: &FunctionMeta, given: &[&str]) -> Result<(), Error> {
    let missing: Vec<&str> = meta
        .params
        .iter()
        .filter(|p| p.required && !given.contains(&p.name.as_str()))
        .map(|p| p.name.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "missing required parameter{} {} for `{}`",
        if missing.len() > 1 { "s" } else { "" },
        quoted(&missing),
        meta.name
    ))
    .with("param", missing[0])
    .with("missing", missing))
}

/// The JSON type of a raw value, from its first characters.
fn json_type(raw: &RawValue) -> &'static str {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ if text.contains(['.', 'e', 'E']) => "number",
        _ => "integer",
    }
}

fn check_type(param: &ParamMeta, value: &RawValue) -> Result<(), Error> {
    let Some(expected) = param.schema.get("type").and_then(Value::as_str) else {
        return Ok(());
    };
    let got = json_type(value);
    let ok = got == expected
        || (expected == "number" && got == "integer")
        || (got == "null" && !param.required);
    if ok {
        return Ok(());
    }
    Err(invalid(format!(
        "parameter `{}` must be {} {expected}, got {} {got}",
        param.name,
        article(expected),
        article(got)
    ))
    .with("param", param.name.as_str())
    .with("expected", expected)
    .with("given", got))
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> FunctionMeta {
        serde_json::from_value(json!({
            "abi": 1, "name": "search",
            "params": [
                {"name": "x", "schema": {"type": "integer"}, "required": true},
                {"name": "y", "schema": {"type": "number"}, "required": true},
                {"name": "note", "schema": {"type": "string"}, "required": false},
            ]
        }))
        .unwrap()
    }

    fn err(params: &str) -> Error {
        check(&meta(), params.as_bytes()).unwrap_err()
    }

    #[test]
    fn accepts_positional_named_and_optional() {
        for ok in [
            r#"[1, 2]"#,
            r#"[1, 2.5, "n"]"#,
            r#"{"y": 1, "x": 2}"#,
            r#"{"x": 1, "y": 2, "note": null}"#,
        ] {
            check(&meta(), ok.as_bytes()).unwrap();
        }
    }

    #[test]
    fn names_what_is_wrong() {
        let e = err(r#"{"x": 1}"#);
        assert_eq!(
            (e.kind, e.data["param"].clone()),
            (Kind::InvalidParams, json!("y"))
        );
        assert!(
            e.message.contains("missing required parameter `y`"),
            "{}",
            e.message
        );
        let e = err(r#"{"x": 1, "y": 2, "zz": 3, "aa": 4}"#);
        assert!(
            e.message.contains("unknown parameters `aa`, `zz`"),
            "{}",
            e.message
        );
        let e = err("[1, 2, 3, 4]");
        assert!(
            e.message.contains("at most 3 parameters, got 4"),
            "{}",
            e.message
        );
        let e = err(r#"["1", 2]"#);
        assert!(
            e.message.contains("`x` must be an integer, got a string"),
            "{}",
            e.message
        );
        let e = err("[1.5, 2]");
        assert!(e.message.contains("got a number"), "{}", e.message);
        let e = err("");
        assert!(e.message.contains("`x`, `y`"), "{}", e.message);
    }

    #[test]
    fn raw_functions_take_anything() {
        let mut m = meta();
        m.raw = true;
        check(&m, b"42").unwrap();
    }
}
