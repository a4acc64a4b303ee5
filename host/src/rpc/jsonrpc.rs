//! JSON-RPC 2.0 on bytes: parse requests, write responses. No I/O here.
//!
//! Requests are parsed from the body's bytes (not through a JSON extractor) so every protocol
//! failure is a protocol answer: invalid JSON is -32700 with a null id, a malformed request is
//! -32600 with its id when the id itself was usable. Params and results are carried as raw JSON
//! text: the guest gets the params exactly as sent, and the client gets the result exactly as
//! the guest wrote it.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::error::{Error, Kind};

/// A request that passed validation.
#[derive(Debug)]
pub struct Request<'a> {
    /// `None` for a notification (no `id` member); `Some("null")` when the id was null.
    pub id: Option<&'a RawValue>,
    pub method: Cow<'a, str>,
    /// The params value as sent (an array or an object), if any.
    pub params: Option<&'a RawValue>,
}

/// The members of a request object, each kept raw; `present` tells an absent member from null.
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Kind::InvalidRequest, message)
}

/// What a body is, before any request in it is looked at.
#[derive(Debug)]
pub enum Body<'a> {
    Single(&'a RawValue),
    Batch(Vec<&'a RawValue>),
}

/// Parses a body into one request value or a batch of them.
pub fn parse_body(body: &[u8]) -> Result<Body<'_>, Error> {
    let not_json = |e: serde_json::Error| {
        Error::new(Kind::ParseError, format!("the body is not valid JSON: {e}"))
    };
    // A batch is read as its members in one pass (not as one value and then again as an array:
    // a tenth of a batched call's cost, docs/PERFORMANCE.md, *Batch of 100*).
    if body.iter().find(|b| !b" \t\r\n".contains(b)) == Some(&b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(not_json)?;
        if items.is_empty() {
            return Err(invalid("the batch is empty"));
        }
        return Ok(Body::Batch(items));
    }
    let raw: &RawValue = serde_json::from_slice(body).map_err(not_json)?;
    match raw.get().as_bytes().first() {
        Some(b'{') => Ok(Body::Single(raw)),
        _ => Err(invalid(
            "a request must be a JSON object (or a batch: an array of them)",
        )),
    }
}

/// Validates one request value. On failure, returns the id to answer with (when it was usable).
pub fn parse_request(raw: &RawValue) -> Result<Request<'_>, (Option<&RawValue>, Error)> {
    if !raw.get().starts_with('{') {
        return Err((None, invalid("a request must be a JSON object")));
    }
    let members: Members<'_> = serde_json::from_str(raw.get())
        .map_err(|e| (None, invalid(format!("malformed request object: {e}"))))?;
    let id = members.id;
    if let Some(id) = id {
        let ok = matches!(
            id.get().as_bytes().first(),
            Some(b'"' | b'-' | b'0'..=b'9' | b'n')
        );
        if !ok {
            return Err((None, invalid("`id` must be a string, a number or null")));
        }
    }
    let fail = |e: Error| (id, e);
    match members
        .jsonrpc
        .map(|v| serde_json::from_str::<Cow<'_, str>>(v.get()))
    {
        Some(Ok(v)) if v == "2.0" => {}
        Some(_) => return Err(fail(invalid("`jsonrpc` must be exactly \"2.0\""))),
        None => {
            return Err(fail(invalid(
                "the `jsonrpc` member is missing (must be \"2.0\")",
            )));
        }
    }
    let method = match members.method {
        None => return Err(fail(invalid("the `method` member is missing"))),
        Some(m) => serde_json::from_str::<Cow<'_, str>>(m.get())
            .map_err(|_| fail(invalid("`method` must be a string")))?,
    };
    if let Some(params) = members.params
        && !matches!(params.get().as_bytes().first(), Some(b'[' | b'{'))
    {
        return Err(fail(invalid("`params` must be an array or an object")));
    }
    Ok(Request {
        id,
        method,
        params: members.params,
    })
}

const NULL: &str = "null";

/// Appends `{"jsonrpc":"2.0","id":..,"result":..}`.
pub fn write_result(out: &mut Vec<u8>, id: Option<&RawValue>, result: &RawValue) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or(NULL, RawValue::get).as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result.get().as_bytes());
    out.push(b'}');
}

/// Appends `{"jsonrpc":"2.0","id":..,"error":{code,message,data}}`.
pub fn write_error(out: &mut Vec<u8>, id: Option<&RawValue>, error: &Error) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or(NULL, RawValue::get).as_bytes());
    out.extend_from_slice(b",\"error\":");
    // Serializing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &error.to_rpc_object());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn req(s: &str) -> Result<Request<'_>, (Option<String>, Kind)> {
        let raw: &RawValue = serde_json::from_str(s).unwrap();
        parse_request(raw).map_err(|(id, e)| (id.map(|i| i.get().to_owned()), e.kind))
    }

    #[test]
    fn valid_requests() {
        let r = req(r#"{"jsonrpc":"2.0","id":1,"method":"math.add","params":[1,2]}"#).unwrap();
        assert_eq!((r.id.unwrap().get(), &*r.method), ("1", "math.add"));
        assert_eq!(r.params.unwrap().get(), "[1,2]");
        let r = req(r#"{"jsonrpc":"2.0","method":"a.b"}"#).unwrap();
        assert!(r.id.is_none() && r.params.is_none());
        let r = req(r#"{"jsonrpc":"2.0","id":null,"method":"a\u002eb","params":{"x":1}}"#).unwrap();
        assert_eq!((r.id.unwrap().get(), &*r.method), ("null", "a.b"));
    }

    #[test]
    fn invalid_requests_keep_a_usable_id() {
        assert_eq!(
            req(r#"{"id":7,"method":"a.b"}"#).unwrap_err(),
            (Some("7".into()), Kind::InvalidRequest)
        );
        assert_eq!(
            req(r#"{"jsonrpc":"1.0","id":"x","method":"a.b"}"#).unwrap_err(),
            (Some("\"x\"".into()), Kind::InvalidRequest)
        );
        assert_eq!(
            req(r#"{"jsonrpc":"2.0","id":1,"method":1}"#).unwrap_err().1,
            Kind::InvalidRequest
        );
        assert_eq!(
            req(r#"{"jsonrpc":"2.0","id":1,"method":"a.b","params":"bar"}"#)
                .unwrap_err()
                .1,
            Kind::InvalidRequest
        );
        assert_eq!(
            req(r#"{"jsonrpc":"2.0","id":{},"method":"a.b"}"#).unwrap_err(),
            (None, Kind::InvalidRequest)
        );
        assert_eq!(
            req(r#"{"jsonrpc":"2.0","id":true,"method":"a.b"}"#).unwrap_err(),
            (None, Kind::InvalidRequest)
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b"{").unwrap_err().kind, Kind::ParseError);
        assert_eq!(parse_body(b"[]").unwrap_err().kind, Kind::InvalidRequest);
        assert_eq!(parse_body(b"42").unwrap_err().kind, Kind::InvalidRequest);
        assert!(matches!(parse_body(b" [1, {}] ").unwrap(), Body::Batch(v) if v.len() == 2));
        assert!(matches!(parse_body(b"\n{}\n").unwrap(), Body::Single(_)));
        // A batch is read in one pass; broken ones are still parse errors that say why.
        assert!(matches!(parse_body(b"\r\n\t[{},{}]").unwrap(), Body::Batch(v) if v.len() == 2));
        for broken in [
            &b"[{}"[..],
            b"[{},]",
            b"[{}] x",
            b"[{\"a\":}]",
            b" [ \xff ]",
        ] {
            let e = parse_body(broken).unwrap_err();
            assert_eq!(
                e.kind,
                Kind::ParseError,
                "{:?}",
                String::from_utf8_lossy(broken)
            );
            assert!(
                e.message.starts_with("the body is not valid JSON"),
                "{}",
                e.message
            );
        }
        assert_eq!(
            parse_body(b"  [ ] ").unwrap_err().kind,
            Kind::InvalidRequest
        );
    }

    #[test]
    fn responses_are_valid_json_with_raw_parts_verbatim() {
        let id: &RawValue = serde_json::from_str("\"abc\"").unwrap();
        let result: &RawValue = serde_json::from_str("{\"z\": 1.50}").unwrap();
        let mut out = Vec::new();
        write_result(&mut out, Some(id), result);
        assert_eq!(out, br#"{"jsonrpc":"2.0","id":"abc","result":{"z": 1.50}}"#);
        out.clear();
        write_error(&mut out, None, &Error::new(Kind::ParseError, "bad"));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], json!(-32700));
    }
}
