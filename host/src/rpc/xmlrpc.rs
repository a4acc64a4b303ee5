//! XML-RPC at `POST /RPC2`: parses a `methodCall`, maps its values to JSON, runs the call
//! through [`dispatch`](super::dispatch) and writes the `methodResponse` (a value or a fault).
//!
//! The XML is read with `quick-xml`, which never resolves entities: a DOCTYPE (the only place
//! entities or external resources could be declared) is refused, so is any entity reference
//! but the five predefined ones and character references, and values may nest at most
//! `Config::xmlrpc_max_depth` levels. Body size is capped by the route. `system.multicall` is answered here
//! (the calls run concurrently, answers keep their order); every other method, `system.*`
//! introspection included, goes to the dispatcher. Faults carry the error's code
//! ([`Error::code`]) as `faultCode` and its message as `faultString`. `README.md` (section
//! *XML-RPC*) documents the type mapping and what XML-RPC cannot carry.

mod read;
mod write;

use serde_json::Value;

pub use read::{Call, parse_call};
pub use write::encode_value;

use super::{ResponseBudget, dispatch};
use crate::App;
use crate::context::CallContext;
use crate::error::{Error, Kind};
use write::{escape_into, write_int};

/// How deep values may nest by default (an array in an array in ... counts one level each):
/// `Config::xmlrpc_max_depth`.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Handles one `/RPC2` body; the answer is always a complete `methodResponse` document.
pub async fn handle_xmlrpc(app: &App, ctx: &CallContext, body: &[u8]) -> Vec<u8> {
    let call = match parse_call(body, app.config.xmlrpc_max_depth) {
        Ok(call) => call,
        Err(e) => return fault_response(&e),
    };
    let value = if call.method == "system.multicall" {
        multicall(app, ctx, &call.params).await
    } else {
        run(app, ctx, &call.method, &call.params).await
    };
    match value {
        Ok(xml) => {
            let mut out = String::with_capacity(xml.len() + 96);
            out.push_str("<?xml version=\"1.0\"?>\n<methodResponse><params><param>");
            out.push_str(&xml);
            out.push_str("</param></params></methodResponse>\n");
            out.into_bytes()
        }
        Err(e) => fault_response(&e),
    }
}

/// A complete fault document for `e`.
pub fn fault_response(e: &Error) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\"?>\n<methodResponse><fault>");
    write_fault_value(&mut out, e);
    out.push_str("</fault></methodResponse>\n");
    out.into_bytes()
}

/// `<value><struct>{faultCode, faultString}</struct></value>`; characters XML cannot carry in
/// the message become U+FFFD.
fn write_fault_value(out: &mut String, e: &Error) {
    out.push_str("<value><struct><member><name>faultCode</name>");
    write_int(out, e.code());
    out.push_str("</member><member><name>faultString</name><value><string>");
    let message: String = e
        .message
        .chars()
        .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
        .collect();
    // Cannot fail: every character is now one XML carries.
    let _ = escape_into(out, &message);
    out.push_str("</string></value></member></struct></value>");
}

/// Runs one call and encodes its result as a `<value>`.
async fn run(
    app: &App,
    ctx: &CallContext,
    method: &str,
    params: &[Value],
) -> Result<String, Error> {
    let params = serde_json::to_vec(params).map_err(|e| {
        tracing::error!(error = %e, "cannot encode XML-RPC params as JSON");
        Error::internal()
    })?;
    let output = dispatch(app, ctx, method, &params).await?;
    let value: Value = serde_json::from_str(output.result.get()).map_err(|e| {
        unrepresentable(
            method,
            format!("the result cannot be read as a JSON value ({e})"),
        )
    })?;
    let mut out = String::with_capacity(output.result.get().len() * 2 + 32);
    encode_value(&mut out, &value, app.config.xmlrpc_max_depth)
        .map_err(|why| unrepresentable(method, why))?;
    Ok(out)
}

fn unrepresentable(method: &str, why: String) -> Error {
    Error::new(
        Kind::BadGuestOutput,
        format!("the result of `{method}` cannot be sent as XML-RPC: {why}"),
    )
    .with("method", method)
    .with("reason", "not_representable_in_xmlrpc")
}

/// `system.multicall([{methodName, params}, ...])`: `[[result] or fault struct, ...]`.
async fn multicall(app: &App, ctx: &CallContext, params: &[Value]) -> Result<String, Error> {
    let calls = match params {
        [Value::Array(calls)] => calls,
        _ => {
            return Err(Error::new(
                Kind::InvalidParams,
                "`system.multicall` takes one parameter: an array of {methodName, params} structs",
            )
            .with("param", "calls"));
        }
    };
    let limit = app.config.max_batch_len;
    if calls.len() > limit {
        return Err(Error::new(
            Kind::InvalidRequest,
            format!(
                "the multicall has {} calls; at most {limit} are allowed",
                calls.len()
            ),
        )
        .with("limit", limit));
    }
    let budget = ResponseBudget::new(app.config.max_batch_response_bytes);
    let budget = &budget;
    let answers = futures_util::future::join_all(calls.iter().map(|call| async move {
        let result = match multicall_item(call) {
            Ok((method, params)) => run(app, ctx, method, params).await,
            Err(e) => Err(e),
        };
        let mut out = String::new();
        match result {
            Ok(xml) => {
                out.push_str("<value><array><data>");
                out.push_str(&xml);
                out.push_str("</data></array></value>");
            }
            Err(e) => write_fault_value(&mut out, &e),
        }
        if let Err(e) = budget.take(out.len()) {
            out.clear();
            write_fault_value(&mut out, &e);
        }
        out
    }))
    .await;
    let mut out = String::with_capacity(answers.iter().map(String::len).sum::<usize>() + 48);
    out.push_str("<value><array><data>");
    answers.iter().for_each(|a| out.push_str(a));
    out.push_str("</data></array></value>");
    Ok(out)
}

/// The method name and params of one multicall entry.
fn multicall_item(call: &Value) -> Result<(&str, &[Value]), Error> {
    let bad = |why: &str| {
        Error::new(
            Kind::InvalidRequest,
            format!("each call of `system.multicall` is a struct {{methodName, params}}: {why}"),
        )
    };
    let Value::Object(call) = call else {
        return Err(bad("this one is not a struct"));
    };
    let method = match call.get("methodName") {
        Some(Value::String(m)) => m.as_str(),
        _ => return Err(bad("`methodName` is missing or not a string")),
    };
    let params = match call.get("params") {
        Some(Value::Array(p)) => p.as_slice(),
        None => &[],
        Some(_) => return Err(bad("`params` is not an array")),
    };
    if method == "system.multicall" {
        return Err(
            Error::new(Kind::InvalidRequest, "`system.multicall` cannot be nested")
                .with("method", method),
        );
    }
    Ok((method, params))
}

/// Whether XML 1.0 can carry `c` at all (literally or as a character reference).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::read::tests::call_xml;
    use super::*;
    use serde_json::json;

    fn encoded(v: &Value) -> String {
        let mut out = String::new();
        encode_value(&mut out, v, DEFAULT_MAX_DEPTH).unwrap();
        out
    }

    #[test]
    fn values_round_trip_through_xml() {
        let v = json!({
            "int": 1, "neg": -2_147_483_648_i64, "big": 9_007_199_254_740_993_i64,
            "float": 0.1, "tiny": 5e-324, "huge": 1.7976931348623157e308,
            "s": "<&>\"' é \u{1F600}\t\n\r", "nil": null, "t": true, "f": false,
            "a": [[], {}, [1, [2, [3]]]],
        });
        let xml = call_xml("m.f", &[&encoded(&v)]);
        assert_eq!(
            parse_call(xml.as_bytes(), DEFAULT_MAX_DEPTH)
                .unwrap()
                .params,
            vec![v]
        );
    }

    #[test]
    fn faults_carry_code_and_message_and_stay_well_formed() {
        let mut e = Error::new(Kind::GuestError, "bad <thing> & \u{0}");
        let doc = String::from_utf8(fault_response(&e)).unwrap();
        assert!(doc.contains("<name>faultCode</name><value><int>-32010</int></value>"));
        assert!(
            doc.contains("<string>bad &lt;thing&gt; &amp; \u{FFFD}</string>"),
            "{doc}"
        );
        e.guest_code = Some(1 << 40);
        let doc = String::from_utf8(fault_response(&e)).unwrap();
        assert!(doc.contains("<i8>1099511627776</i8>"), "{doc}");
        // Our own reader accepts what we write.
        assert!(read::parse_tree(doc.as_bytes(), DEFAULT_MAX_DEPTH).is_ok());
    }

    #[test]
    fn multicall_entries_are_checked() {
        let ok = json!({"methodName": "math.add", "params": [1, 2]});
        let (m, p) = multicall_item(&ok).unwrap();
        assert_eq!((m, p), ("math.add", &[json!(1), json!(2)][..]));
        let no_params = json!({"methodName": "counter.next"});
        assert_eq!(multicall_item(&no_params).unwrap().1, &[] as &[Value]);
        for bad in [
            json!([1]),
            json!({"params": []}),
            json!({"methodName": 1, "params": []}),
            json!({"methodName": "math.add", "params": {}}),
            json!({"methodName": "system.multicall", "params": [[]]}),
        ] {
            assert_eq!(multicall_item(&bad).unwrap_err().code(), -32600, "{bad}");
        }
    }
}
