//! JSON Schema fragments for Rust types, read off the syntax (the table in `docs/ABI.md`).
//!
//! A macro sees tokens, not types, so this goes by the last path segment: `Vec<T>` is an array
//! whatever module it came from, and a type alias is described by its own name. The schemas are
//! documentation for clients and the host; the real check is the deserialization.

use serde_json::{Value, json};
use syn::{GenericArgument, PathArguments, Type};

use crate::check::first_type_arg;

/// The schema of a parameter, and whether it must be given (`Option<T>` may be left out and is
/// described by `T`).
pub fn param(ty: &Type) -> (Value, bool) {
    match option_inner(ty) {
        Some(inner) => (of(inner), false),
        None => (of(ty), true),
    }
}

/// The schema of a function's success value: `T` for `Result<T, E>`.
pub fn result(ty: Option<&Type>) -> Value {
    match ty {
        None => json!({"type": "null"}),
        Some(ty) => match crate::check::last_segment(ty, "Result").and_then(first_type_arg) {
            Some(ok) => of(ok),
            None => of(ty),
        },
    }
}

/// `T` when `ty` is `Option<T>`.
pub fn option_inner(ty: &Type) -> Option<&Type> {
    crate::check::last_segment(ty, "Option").and_then(first_type_arg)
}

/// The schema of a value of type `ty`.
pub fn of(ty: &Type) -> Value {
    match ty {
        Type::Reference(r) => of(&r.elem),
        Type::Paren(p) => of(&p.elem),
        Type::Group(g) => of(&g.elem),
        Type::Array(a) => json!({"type": "array", "items": of(&a.elem)}),
        Type::Slice(s) => json!({"type": "array", "items": of(&s.elem)}),
        Type::Tuple(t) if t.elems.is_empty() => json!({"type": "null"}),
        Type::Tuple(t) => json!({
            "type": "array",
            "prefixItems": t.elems.iter().map(of).collect::<Vec<_>>(),
            "minItems": t.elems.len(),
            "maxItems": t.elems.len(),
        }),
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return json!({});
            };
            let args: Vec<&Type> = match &last.arguments {
                PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let name = last.ident.to_string();
            match (name.as_str(), args.as_slice()) {
                (
                    "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64"
                    | "u128" | "usize",
                    [],
                ) => json!({"type": "integer"}),
                ("f32" | "f64", []) => json!({"type": "number"}),
                ("bool", []) => json!({"type": "boolean"}),
                ("String" | "str" | "char", []) => json!({"type": "string"}),
                ("Value" | "RawValue", []) => json!({}),
                ("Map", []) => json!({"type": "object"}),
                ("Vec" | "VecDeque" | "HashSet" | "BTreeSet", [item]) => {
                    json!({"type": "array", "items": of(item)})
                }
                ("HashMap" | "BTreeMap", [_, value]) => {
                    json!({"type": "object", "additionalProperties": of(value)})
                }
                ("Box" | "Rc" | "Arc" | "Cow", [inner]) => of(inner),
                ("Option", [inner]) => json!({"anyOf": [of(inner), {"type": "null"}]}),
                _ => {
                    json!({"title": crate::check::pretty(ty).rsplit("::").next().unwrap_or_default()})
                }
            }
        }
        _ => json!({"title": crate::check::pretty(ty)}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ty: &str) -> Value {
        of(&syn::parse_str(ty).unwrap())
    }

    #[test]
    fn table_of_docs_abi_md() {
        assert_eq!(s("i64"), json!({"type": "integer"}));
        assert_eq!(s("usize"), json!({"type": "integer"}));
        assert_eq!(s("f32"), json!({"type": "number"}));
        assert_eq!(s("bool"), json!({"type": "boolean"}));
        assert_eq!(s("String"), json!({"type": "string"}));
        assert_eq!(s("&str"), json!({"type": "string"}));
        assert_eq!(s("char"), json!({"type": "string"}));
        assert_eq!(
            s("Vec<i32>"),
            json!({"type": "array", "items": {"type": "integer"}})
        );
        assert_eq!(
            s("[u8; 4]"),
            json!({"type": "array", "items": {"type": "integer"}})
        );
        assert_eq!(
            s("&[bool]"),
            json!({"type": "array", "items": {"type": "boolean"}})
        );
        assert_eq!(s("()"), json!({"type": "null"}));
        assert_eq!(s("serde_json::Value"), json!({}));
        assert_eq!(s("Value"), json!({}));
        assert_eq!(s("Person"), json!({"title": "Person"}));
        assert_eq!(s("crate::people::Person"), json!({"title": "Person"}));
        assert_eq!(s("Page<Person>"), json!({"title": "Page<Person>"}));
    }

    #[test]
    fn options() {
        let (schema, required) = param(&syn::parse_str("Option<String>").unwrap());
        assert_eq!((schema, required), (json!({"type": "string"}), false));
        let (schema, required) = param(&syn::parse_str("String").unwrap());
        assert_eq!((schema, required), (json!({"type": "string"}), true));
        assert_eq!(
            s("Vec<Option<u8>>")["items"],
            json!({"anyOf": [{"type": "integer"}, {"type": "null"}]})
        );
    }

    #[test]
    fn results() {
        assert_eq!(result(None), json!({"type": "null"}));
        assert_eq!(
            result(Some(&syn::parse_str("Result<f64, Error>").unwrap())),
            json!({"type": "number"})
        );
        assert_eq!(
            result(Some(&syn::parse_str("fnhost_guest::Result<u8>").unwrap())),
            json!({"type": "integer"})
        );
        assert_eq!(
            result(Some(&syn::parse_str("Vec<Person>").unwrap())),
            json!({"type": "array", "items": {"title": "Person"}})
        );
    }

    #[test]
    fn maps_and_tuples() {
        assert_eq!(
            s("HashMap<String, u8>"),
            json!({"type": "object", "additionalProperties": {"type": "integer"}})
        );
        assert_eq!(
            s("(u8, String)"),
            json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2})
        );
    }
}
