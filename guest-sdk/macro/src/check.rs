//! What `#[export]` accepts, and the compile errors for everything else.
//!
//! Accepted: a free, safe, synchronous, non-generic Rust-ABI function whose name is a valid
//! fnhost function name, whose parameters are plain identifiers with owned types, and without
//! `impl Trait` anywhere in its signature. Each violation is a `syn::Error` spanned on the
//! offending tokens; all of them are reported at once.

use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

/// The arguments of the attribute: `#[export]` or `#[export(raw)]`.
#[derive(Default)]
pub struct Options {
    /// The function takes the whole params value as its single parameter.
    pub raw: bool,
}

impl Options {
    pub fn parse(attr: proc_macro2::TokenStream) -> syn::Result<Self> {
        let mut options = Self::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("raw") {
                if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    return Err(meta.error("`raw` takes no value: write #[export(raw)]"));
                }
                options.raw = true;
                Ok(())
            } else {
                let name = meta.path.get_ident().map_or_else(
                    || quote::ToTokens::to_token_stream(&meta.path).to_string(),
                    |i| i.to_string(),
                );
                Err(meta.error(format!(
                    "unknown #[export] argument `{name}`; the only one is `raw`"
                )))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(options)
    }
}

/// One checked parameter.
pub struct Param<'a> {
    /// The parameter's JSON name: its identifier, without `r#`.
    pub name: String,
    pub ty: &'a Type,
}

/// Checks the function; returns its JSON name and parameters, or every error found.
pub fn function<'a>(f: &'a ItemFn, options: &Options) -> syn::Result<(String, Vec<Param<'a>>)> {
    let mut errors = Errors::default();
    let sig = &f.sig;

    let name = sig.ident.unraw().to_string();
    if !fnhost_abi::is_valid_function_name(&name) {
        errors.push(
            &sig.ident,
            format!(
                "`{name}` is not a valid fnhost function name: it must match \
                 [A-Za-z_][A-Za-z0-9_]* and be at most {} characters",
                fnhost_abi::MAX_FUNCTION_NAME
            ),
        );
    }
    if let Some(token) = &sig.asyncness {
        errors.push(
            token,
            "#[export] functions cannot be async: the host calls them synchronously",
        );
    }
    if let Some(token) = &sig.unsafety {
        errors.push(
            token,
            "#[export] functions cannot be unsafe: the host cannot uphold a safety contract",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.push(abi, "#[export] functions must use the Rust ABI: remove the `extern`; the export is generated");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(
            &sig.generics,
            "#[export] functions cannot be generic or have lifetime parameters: the host calls one concrete function",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic, "#[export] functions cannot be variadic");
    }

    let mut params = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.push(
                receiver,
                "#[export] goes on a free function, not a method: remove `self`",
            ),
            FnArg::Typed(typed) => {
                match &*typed.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => params.push(Param {
                        name: p.ident.unraw().to_string(),
                        ty: &typed.ty,
                    }),
                    pat => errors.push(
                        pat,
                        "#[export] parameters must be plain identifiers: the name is the parameter's JSON name",
                    ),
                }
                owned_param_type(&typed.ty, &mut errors);
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        no_impl_trait(ty, &mut errors);
    }
    if options.raw && sig.inputs.len() != 1 {
        errors.push_at(
            inputs_span(sig),
            format!(
                "#[export(raw)] functions take exactly one parameter, which receives the whole params value; this one takes {}",
                sig.inputs.len()
            ),
        );
    }

    errors.finish().map(|()| (name, params))
}

/// Where the parameter list is, even when it is empty.
fn inputs_span(sig: &syn::Signature) -> proc_macro2::Span {
    if sig.inputs.is_empty() {
        sig.paren_token.span.join()
    } else {
        sig.inputs.span()
    }
}

/// Parameters are decoded from JSON, so they must own their data.
fn owned_param_type(ty: &Type, errors: &mut Errors) {
    visit(ty, &mut |ty| match ty {
        Type::Reference(r) => {
            let owned = match &*r.elem {
                Type::Path(p) if p.path.is_ident("str") => "String".to_owned(),
                Type::Slice(s) => format!("Vec<{}>", pretty(&s.elem)),
                elem => pretty(elem),
            };
            errors.push(
                r,
                format!(
                    "#[export] parameters must be owned, since they are decoded from JSON: use {owned} instead of {}",
                    pretty(ty)
                ),
            );
            false
        }
        Type::ImplTrait(t) => {
            errors.push(
                t,
                "#[export] functions cannot use `impl Trait`: name a concrete type",
            );
            false
        }
        _ => true,
    });
}

fn no_impl_trait(ty: &Type, errors: &mut Errors) {
    visit(ty, &mut |ty| match ty {
        Type::ImplTrait(t) => {
            errors.push(
                t,
                "#[export] functions cannot return `impl Trait`: name a concrete type",
            );
            false
        }
        _ => true,
    });
}

/// Calls `f` on `ty` and, while `f` returns true, on the types nested in it.
fn visit(ty: &Type, f: &mut impl FnMut(&Type) -> bool) {
    if !f(ty) {
        return;
    }
    match ty {
        Type::Array(a) => visit(&a.elem, f),
        Type::Slice(s) => visit(&s.elem, f),
        Type::Paren(p) => visit(&p.elem, f),
        Type::Group(g) => visit(&g.elem, f),
        Type::Reference(r) => visit(&r.elem, f),
        Type::Ptr(p) => visit(&p.elem, f),
        Type::Tuple(t) => t.elems.iter().for_each(|e| visit(e, f)),
        Type::Path(p) => {
            if let Some(q) = &p.qself {
                visit(&q.ty, f);
            }
            for segment in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        if let syn::GenericArgument::Type(t) = arg {
                            visit(t, f);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// A type as a person would write it: `Vec<u8>`, not `Vec < u8 >`.
pub fn pretty(ty: &Type) -> String {
    pretty_tokens(ty)
}

/// Any tokens as a person would write them (see [`pretty`]).
pub fn pretty_tokens(tokens: &impl quote::ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    let chars: Vec<char> = text.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = out.chars().last().unwrap_or(' ');
            let after = chars.get(i + 1).copied().unwrap_or(' ');
            let keep = (word(before) && word(after)) || before == ',' || before == ';';
            if !keep {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Errors collected across the whole signature, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    /// An error spanning all of `tokens`.
    fn push(&mut self, tokens: &impl quote::ToTokens, message: impl std::fmt::Display) {
        self.add(syn::Error::new_spanned(tokens, message));
    }

    fn push_at(&mut self, span: proc_macro2::Span, message: impl std::fmt::Display) {
        self.add(syn::Error::new(span, message));
    }

    fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Whether `ident` is the last segment of `ty`'s path (`Option`, `Result`, ...).
pub fn last_segment<'a>(ty: &'a Type, ident: &str) -> Option<&'a syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().filter(|s| s.ident == ident),
        Type::Group(g) => last_segment(&g.elem, ident),
        Type::Paren(p) => last_segment(&p.elem, ident),
        _ => None,
    }
}

/// The first type argument of a path segment: `T` in `Option<T>`.
pub fn first_type_arg(segment: &syn::PathSegment) -> Option<&Type> {
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}
