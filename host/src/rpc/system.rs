//! Introspection shared by every front end: `system.listMethods`, `system.methodHelp`,
//! `system.methodSignature` (the XML-RPC introspection conventions), answered from the
//! metadata guests embed.

use fnhost_abi::FunctionMeta;
use serde_json::Value;

use crate::App;
use crate::context::CallContext;
use crate::error::{Error, Kind};
use crate::registry::Entry;

/// Whether a caller presenting `secret` from `client` may call `function` of `entry` (any of
/// its functions, when `None`): what introspection and listings show it.
pub fn may_call(
    app: &App,
    secret: Option<&str>,
    client: Option<std::net::IpAddr>,
    entry: &Entry,
    function: Option<&str>,
) -> bool {
    let version = entry.current();
    if let Some(ip) = client
        && !crate::net::allows(&version.allow_from, ip)
    {
        return false;
    }
    match version.access {
        crate::store::Access::Public => true,
        crate::store::Access::Key => {
            let Some(key) = secret.and_then(|s| app.keys.verify(s).ok()) else {
                return false;
            };
            key.record.role == crate::store::Role::Invoke
                && match function {
                    Some(f) => key.covers_call(&entry.name, f),
                    None => entry
                        .functions()
                        .iter()
                        .any(|f| key.covers_call(&entry.name, &f.name)),
                }
        }
    }
}

fn visible(app: &App, ctx: &CallContext, entry: &Entry, function: &str) -> bool {
    entry.unavailable().is_none()
        && may_call(
            app,
            ctx.credentials.secret(),
            ctx.client,
            entry,
            Some(function),
        )
}

/// Methods the protocol layer answers itself, on every front end.
pub const SYSTEM_METHODS: [&str; 4] = [
    "system.listMethods",
    "system.methodHelp",
    "system.methodSignature",
    "system.multicall",
];

/// Every method `ctx` may call, sorted: each ready module's functions, then the system methods.
pub fn list_methods(app: &App, ctx: &CallContext) -> Vec<String> {
    let mut methods: Vec<String> = Vec::new();
    for entry in app.registry.list() {
        methods.extend(
            entry
                .functions()
                .iter()
                .filter(|f| visible(app, ctx, &entry, &f.name))
                .map(|f| format!("{}.{}", entry.name, f.name)),
        );
    }
    methods.sort();
    methods.extend(SYSTEM_METHODS.iter().map(|m| (*m).to_owned()));
    methods
}

/// The metadata of a guest method `ctx` may call, or the error a caller should get (a method
/// it may not call does not exist, as far as introspection tells).
pub fn lookup(app: &App, ctx: &CallContext, method: &str) -> Result<FunctionMeta, Error> {
    let not_found =
        || Error::new(Kind::MethodNotFound, format!("no method `{method}`")).with("method", method);
    let (module, function) = method.split_once('.').ok_or_else(not_found)?;
    let entry = app.registry.get(module).ok_or_else(not_found)?;
    if !may_call(
        app,
        ctx.credentials.secret(),
        ctx.client,
        &entry,
        Some(function),
    ) {
        return Err(not_found());
    }
    entry.function(function).cloned().ok_or_else(not_found)
}

/// The doc comment of a method (empty when it has none).
pub fn method_help(app: &App, ctx: &CallContext, method: &str) -> Result<String, Error> {
    if let Some(help) = system_help(method) {
        return Ok(help.to_owned());
    }
    lookup(app, ctx, method).map(|m| m.doc)
}

fn system_help(method: &str) -> Option<&'static str> {
    Some(match method {
        "system.listMethods" => "Lists every method this server offers.",
        "system.methodHelp" => "Returns the documentation of a method.",
        "system.methodSignature" => {
            "Returns the signatures of a method: [[result type, param types...], ...], one per accepted arity."
        }
        "system.multicall" => {
            "Runs several calls in one request: [{methodName, params}, ...] -> [[result] or fault, ...]."
        }
        _ => return None,
    })
}

/// The XML-RPC type name of a JSON Schema fragment.
pub fn xmlrpc_type(schema: &Value) -> &'static str {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => "int",
        Some("number") => "double",
        Some("boolean") => "boolean",
        Some("string") => "string",
        Some("array") => "array",
        Some("object") => "struct",
        Some("null") => "nil",
        _ => "any",
    }
}

/// One signature per accepted arity: `[result, param...]` (XML-RPC type names).
pub fn method_signature(
    app: &App,
    ctx: &CallContext,
    method: &str,
) -> Result<Vec<Vec<String>>, Error> {
    if system_help(method).is_some() {
        let sig: &[&str] = match method {
            "system.listMethods" => &["array"],
            "system.methodHelp" => &["string", "string"],
            "system.methodSignature" => &["array", "string"],
            _ => &["array", "array"],
        };
        return Ok(vec![sig.iter().map(|s| (*s).to_owned()).collect()]);
    }
    let meta = lookup(app, ctx, method)?;
    let result = xmlrpc_type(&meta.result).to_owned();
    if meta.raw {
        return Ok(vec![vec![result.clone()], vec![result, "any".to_owned()]]);
    }
    let required = meta.params.iter().take_while(|p| p.required).count();
    Ok((required..=meta.params.len())
        .map(|arity| {
            std::iter::once(result.clone())
                .chain(
                    meta.params[..arity]
                        .iter()
                        .map(|p| xmlrpc_type(&p.schema).to_owned()),
                )
                .collect()
        })
        .collect())
}

/// The OpenRPC 1.3 document of every method `ctx` may call (`rpc.discover`).
pub fn discover(app: &App, ctx: &CallContext) -> Value {
    let mut methods = Vec::new();
    for entry in app.registry.list() {
        for f in entry.functions() {
            if !visible(app, ctx, &entry, &f.name) {
                continue;
            }
            let summary = f.doc.lines().next().unwrap_or("").trim();
            let params: Vec<Value> = f
                .params
                .iter()
                .map(|p| serde_json::json!({"name": p.name, "required": p.required, "schema": p.schema}))
                .collect();
            let mut method = serde_json::json!({
                "name": format!("{}.{}", entry.name, f.name),
                "params": params,
                "result": {"name": "result", "schema": f.result},
                "paramStructure": "either",
            });
            if !summary.is_empty() {
                method["summary"] = Value::from(summary);
            }
            if !f.doc.is_empty() {
                method["description"] = Value::from(f.doc.as_str());
            }
            if f.raw {
                method["x-fnhost-raw"] = Value::Bool(true);
            }
            methods.push(method);
        }
    }
    serde_json::json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "fnhost",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Functions deployed on this fnhost; each call runs in a fresh WebAssembly sandbox.",
        },
        "methods": methods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_types_map_to_xmlrpc_names() {
        assert_eq!(xmlrpc_type(&json!({"type": "integer"})), "int");
        assert_eq!(xmlrpc_type(&json!({"type": "object"})), "struct");
        assert_eq!(xmlrpc_type(&json!({})), "any");
        assert_eq!(xmlrpc_type(&json!({"title": "Person"})), "any");
    }
}
