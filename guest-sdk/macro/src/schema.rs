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
                // `serde_json::Map<String, Value>`, or the bare `Map` of a `use`.
                ("Map", [] | [_, _]) => json!({"type": "object"}),
                ("Vec" | "VecDeque" | "HashSet" | "BTreeSet", [item]) => {
                    json!({"type": "array", "items": of(item)})
                }
                ("HashMap" | "BTreeMap", [_, value]) => {
                    json!({"type": "object", "additionalProperties": of(value)})
                }
                ("Box" | "Rc" | "Arc" | "Cow", [inner]) => of(inner),
                ("Option", [inner]) => json!({"anyOf": [of(inner), {"type": "null"}]}),
                _ => json!({"title": title(ty)}),
            }
        }
        _ => json!({"title": title(ty)}),
    }
}

/// A type's name for a `title`: as written, but without module paths, also inside generic
/// arguments (`people::Page<people::Person>` is `Page<Person>`).
fn title(ty: &Type) -> String {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return String::new();
            };
            let mut name = last.ident.to_string();
            if let PathArguments::AngleBracketed(a) = &last.arguments {
                let args: Vec<String> = a
                    .args
                    .iter()
                    .map(|arg| match arg {
                        GenericArgument::Type(t) => title(t),
                        other => crate::check::pretty_tokens(other),
                    })
                    .collect();
                name.push('<');
                name.push_str(&args.join(", "));
                name.push('>');
            }
            name
        }
        _ => crate::check::pretty(ty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ty: &str) -> Value {
        of(&syn::parse_str(ty).unwrap())
    }

    fn param_of(ty: &str) -> (Value, bool) {
        param(&syn::parse_str(ty).unwrap())
    }

    fn result_of(ty: Option<&str>) -> Value {
        result(ty.map(|t| syn::parse_str(t).unwrap()).as_ref())
    }

    /// One block per row of the table "Schemas the SDK emits for Rust types" in `docs/ABI.md`,
    /// in its order: a row added there without a block here is a row nobody checked.
    #[test]
    fn every_row_of_the_table_in_docs_abi_md() {
        // `i8`…`i128`, `u8`…`u128`, `isize`, `usize`
        for ty in [
            "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
        ] {
            assert_eq!(s(ty), json!({"type": "integer"}), "{ty}");
        }
        // `f32`, `f64`
        for ty in ["f32", "f64"] {
            assert_eq!(s(ty), json!({"type": "number"}), "{ty}");
        }
        // `bool`
        assert_eq!(s("bool"), json!({"type": "boolean"}));
        // `String`, `&str`, `char`
        for ty in [
            "String",
            "&str",
            "&'static str",
            "char",
            "std::string::String",
        ] {
            assert_eq!(s(ty), json!({"type": "string"}), "{ty}");
        }
        // `Vec<T>`, `VecDeque<T>`, `HashSet<T>`, `BTreeSet<T>`, `[T; N]`, `&[T]`
        for ty in [
            "Vec<i32>",
            "VecDeque<i32>",
            "HashSet<i32>",
            "BTreeSet<i32>",
            "std::collections::BTreeSet<i32>",
            "[i32; 4]",
            "&[i32]",
        ] {
            assert_eq!(
                s(ty),
                json!({"type": "array", "items": {"type": "integer"}}),
                "{ty}"
            );
        }
        // `(A, B, …)`
        assert_eq!(
            s("(u8, String)"),
            json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2})
        );
        assert_eq!(
            s("(bool,)"),
            json!({"type": "array", "prefixItems": [{"type": "boolean"}], "minItems": 1, "maxItems": 1})
        );
        // `HashMap<K, V>`, `BTreeMap<K, V>`
        for ty in [
            "HashMap<String, u8>",
            "BTreeMap<String, u8>",
            "std::collections::HashMap<String, u8>",
        ] {
            assert_eq!(
                s(ty),
                json!({"type": "object", "additionalProperties": {"type": "integer"}}),
                "{ty}"
            );
        }
        // `serde_json::Map`: an object, however it is spelled (the issue's
        // `Map<String, Value>` was a `title`).
        for ty in [
            "serde_json::Map<String, serde_json::Value>",
            "serde_json::Map<String, Value>",
            "Map<String, Value>",
            "fnhost_guest::serde_json::Map<String, Value>",
            "Map",
        ] {
            assert_eq!(s(ty), json!({"type": "object"}), "{ty}");
        }
        // `Box<T>`, `Rc<T>`, `Arc<T>`, `Cow<T>`, `&T`
        for ty in [
            "Box<f64>",
            "Rc<f64>",
            "Arc<f64>",
            "std::sync::Arc<f64>",
            "Cow<'static, f64>",
            "&f64",
            "Box<Box<f64>>",
        ] {
            assert_eq!(s(ty), json!({"type": "number"}), "{ty}");
        }
        assert_eq!(s("Cow<'static, str>"), json!({"type": "string"}));
        // `Option<T>` as a parameter: `<T>`, and not required
        assert_eq!(
            param_of("Option<String>"),
            (json!({"type": "string"}), false)
        );
        assert_eq!(
            param_of("std::option::Option<Vec<u8>>"),
            (
                json!({"type": "array", "items": {"type": "integer"}}),
                false
            )
        );
        assert_eq!(param_of("String"), (json!({"type": "string"}), true));
        // `Option<T>` anywhere else
        let nullable_integer = json!({"anyOf": [{"type": "integer"}, {"type": "null"}]});
        assert_eq!(s("Vec<Option<u8>>")["items"], nullable_integer);
        assert_eq!(result_of(Some("Option<u8>")), nullable_integer);
        assert_eq!(
            result_of(Some("Result<Option<u8>, Error>")),
            nullable_integer
        );
        // `Result<T, E>` as the return type
        assert_eq!(
            result_of(Some("Result<f64, Error>")),
            json!({"type": "number"})
        );
        assert_eq!(
            result_of(Some("fnhost_guest::Result<u8>")),
            json!({"type": "integer"})
        );
        assert_eq!(
            result_of(Some("std::result::Result<String, String>")),
            json!({"type": "string"})
        );
        // `()`, or no return type
        assert_eq!(result_of(None), json!({"type": "null"}));
        assert_eq!(result_of(Some("()")), json!({"type": "null"}));
        assert_eq!(s("()"), json!({"type": "null"}));
        // `serde_json::Value`, `RawValue`
        for ty in [
            "serde_json::Value",
            "Value",
            "RawValue",
            "Box<RawValue>",
            "serde_json::value::RawValue",
        ] {
            assert_eq!(s(ty), json!({}), "{ty}");
        }
        // any other type `T`: its name without its module path
        assert_eq!(s("Person"), json!({"title": "Person"}));
        assert_eq!(s("crate::people::Person"), json!({"title": "Person"}));
        assert_eq!(s("Page<Person>"), json!({"title": "Page<Person>"}));
        assert_eq!(
            s("crate::x::Page<crate::y::Person>"),
            json!({"title": "Page<Person>"})
        );
        assert_eq!(
            s("Either<u8, people::Person>"),
            json!({"title": "Either<u8, Person>"})
        );
        assert_eq!(
            s("Vec<people::Person>"),
            json!({"type": "array", "items": {"title": "Person"}})
        );
    }
}
