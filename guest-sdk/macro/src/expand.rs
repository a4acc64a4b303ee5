//! The code `#[export]` generates for a checked function.
//!
//! For `fn add(x: i64, y: i64) -> i64` that is:
//!
//! * `__fnhost_invoke_add(params: &[u8]) -> Vec<u8>`, a hidden native function: decode, call,
//!   encode (status byte + JSON payload), through `::fnhost_guest::__private`;
//! * on wasm32 only, inside an anonymous `const _: () = { ... };` so it adds no names: the
//!   `fnhost_call_add` export, and a static in the `fnhost.functions` link section
//!   holding the function's JSON metadata record.

use fnhost_abi::{ABI_VERSION, CALL_PREFIX, FunctionMeta, META_SECTION, ParamMeta};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use crate::check::{self, Options};
use crate::schema;

/// The whole expansion: the original function followed by the generated items, or the original
/// function followed by the compile errors (so call sites do not add errors of their own).
pub fn export(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = Options::parse(attr);
    let function = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Fn(f)) => f,
        Ok(other) => return not_a_function(&other, item),
        Err(e) => {
            let mut out = item;
            out.extend(e.to_compile_error());
            return out;
        }
    };
    let checked = options.and_then(|options| {
        check::function(&function, &options).map(|(name, params)| (options, name, params))
    });
    match checked {
        Ok((options, name, params)) => generate(&function, &options, &name, &params),
        Err(error) => {
            // Keep the function so its callers compile; without a C-variadic part, which rustc
            // would reject again.
            let mut function = function;
            function.sig.variadic = None;
            let mut out = quote!(#function);
            out.extend(error.to_compile_error());
            out
        }
    }
}

fn not_a_function(at: &impl quote::ToTokens, item: TokenStream) -> TokenStream {
    let error = syn::Error::new_spanned(
        at,
        "#[export] goes on a free function (`fn`), not on this item",
    );
    let mut out = item;
    out.extend(error.to_compile_error());
    out
}

fn generate(f: &ItemFn, options: &Options, name: &str, params: &[check::Param<'_>]) -> TokenStream {
    let ident = &f.sig.ident;
    let invoke = format_ident!("__fnhost_invoke_{}", name);
    let export_name = format!("{CALL_PREFIX}{name}");
    let return_type = match &f.sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    let is_result = return_type.is_some_and(|ty| check::last_segment(ty, "Result").is_some());
    let output_span = f.sig.output.span();
    let encode = |call: TokenStream| {
        if is_result {
            quote_spanned!(output_span=> ::fnhost_guest::__private::from_result(#call))
        } else {
            quote_spanned!(output_span=> ::fnhost_guest::__private::ok(&#call))
        }
    };

    let body = if options.raw {
        let ty = params[0].ty;
        let call = encode(quote!(#ident(__value)));
        quote! {
            ::fnhost_guest::__private::invoke_raw(__params, |__value: #ty| #call)
        }
    } else {
        let names = params.iter().map(|p| &p.name);
        let args = params.iter().enumerate().map(|(index, p)| {
            let ty = p.ty;
            let required = schema::option_inner(ty).is_none();
            quote_spanned!(ty.span()=> __args.take::<#ty>(#index, #required)?)
        });
        let call = encode(quote!(#ident(#(#args),*)));
        quote! {
            ::fnhost_guest::__private::invoke(__params, &[#(#names),*], &|__args| {
                ::core::result::Result::Ok(#call)
            })
        }
    };

    let meta_bytes = metadata(f, options, name, params, return_type);
    let meta_len = meta_bytes.len();
    let meta = Literal::byte_string(&meta_bytes);

    quote! {
        #f

        #[doc(hidden)]
        #[allow(dead_code)]
        pub fn #invoke(__params: &[u8]) -> ::fnhost_guest::__private::Vec<u8> {
            #body
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = #export_name)]
            extern "C" fn __fnhost_call(params_len: i32) -> i64 {
                // ABI v2 (docs/ABI.md, *A call*): the params are pulled from the host.
                ::fnhost_guest::__private::call(params_len, #invoke)
            }

            // No `#[used]`: on wasm rustc turns a `link_section` static into a custom section
            // whether or not the static is kept, and `#[used]` kept a second copy of the
            // record in the data segment.
            #[unsafe(link_section = #META_SECTION)]
            static __FNHOST_META: [u8; #meta_len] = *#meta;
        };
    }
}

/// The function's metadata record, as the JSON bytes that go into the custom section.
fn metadata(
    f: &ItemFn,
    options: &Options,
    name: &str,
    params: &[check::Param<'_>],
    return_type: Option<&syn::Type>,
) -> Vec<u8> {
    let params = params
        .iter()
        .map(|p| {
            let (schema, mut required) = schema::param(p.ty);
            if options.raw && schema == serde_json::json!({}) {
                // A raw `Value` parameter gets `null` when the params are left out.
                required = false;
            }
            ParamMeta {
                name: p.name.clone(),
                schema,
                required,
            }
        })
        .collect();
    let meta = FunctionMeta {
        abi: ABI_VERSION,
        name: name.to_owned(),
        doc: doc(&f.attrs),
        params,
        result: schema::result(return_type),
        raw: options.raw,
    };
    serde_json::to_vec(&meta).expect("metadata is plain JSON")
}

/// The `///` comment: one line per `#[doc = "..."]`, each without its first leading space.
fn doc(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| {
            text.split('\n')
                .map(|line| line.strip_prefix(' ').unwrap_or(line).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_lines_lose_one_leading_space() {
        let f: ItemFn = syn::parse_quote! {
            /// Divides x by y.
            ///
            ///   Indented.
            fn divide() {}
        };
        assert_eq!(doc(&f.attrs), "Divides x by y.\n\n  Indented.");
    }

    #[test]
    fn metadata_record() {
        let f: ItemFn = syn::parse_quote! {
            /// Finds people.
            fn search(number: Option<String>, r#type: u8) -> Vec<Person> { todo!() }
        };
        let (name, params) = check::function(&f, &Options::default()).unwrap();
        let ReturnType::Type(_, ty) = &f.sig.output else {
            unreachable!()
        };
        let meta: FunctionMeta =
            serde_json::from_slice(&metadata(&f, &Options::default(), &name, &params, Some(ty)))
                .unwrap();
        assert_eq!(meta.name, "search");
        assert_eq!(meta.doc, "Finds people.");
        assert_eq!(
            meta.params[0],
            ParamMeta {
                name: "number".into(),
                schema: serde_json::json!({"type": "string"}),
                required: false
            }
        );
        assert_eq!(meta.params[1].name, "type");
        assert!(meta.params[1].required);
        assert_eq!(
            meta.result,
            serde_json::json!({"type": "array", "items": {"title": "Person"}})
        );
        assert!(!meta.raw);
    }

    /// The note under the table in `docs/ABI.md`: a raw function's parameter is optional when
    /// it is an `Option<T>` or any JSON (it gets `null` when the call has no params).
    #[test]
    fn raw_parameter_is_optional_only_when_it_takes_null() {
        let raw = Options { raw: true };
        for (signature, schema, required) in [
            (
                "fn f(v: Option<Point>) {}",
                serde_json::json!({"title": "Point"}),
                false,
            ),
            (
                "fn f(v: serde_json::Value) {}",
                serde_json::json!({}),
                false,
            ),
            ("fn f(v: Box<RawValue>) {}", serde_json::json!({}), false),
            (
                "fn f(v: Point) {}",
                serde_json::json!({"title": "Point"}),
                true,
            ),
            (
                "fn f(v: Vec<u8>) {}",
                serde_json::json!({"type": "array", "items": {"type": "integer"}}),
                true,
            ),
        ] {
            let f: ItemFn = syn::parse_str(signature).unwrap();
            let (name, params) = check::function(&f, &raw).unwrap();
            let meta: FunctionMeta =
                serde_json::from_slice(&metadata(&f, &raw, &name, &params, None)).unwrap();
            assert!(meta.raw);
            assert_eq!(meta.params[0].schema, schema, "{signature}");
            assert_eq!(meta.params[0].required, required, "{signature}");
        }
    }
}
