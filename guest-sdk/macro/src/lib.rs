//! `#[export]`: turns a plain Rust function into an fnhost function.
//!
//! The function is left exactly as written. Beside it the attribute generates a native
//! `__fnhost_invoke_<name>(params: &[u8]) -> Vec<u8>` (decode the params, call, encode the
//! output), and on wasm32 only the `fnhost_call_<name>` export around it plus the function's
//! JSON metadata record in the `fnhost.functions` custom section (`docs/ABI.md`). The metadata is
//! computed here, at expansion time, from the signature and the doc comment.
//!
//! Everything the attribute cannot support is a compile error pointing at the offending tokens,
//! never a panic: see [`check`] for the list.

mod check;
mod expand;
mod schema;

use proc_macro::TokenStream;

/// Exports a free function as an fnhost function (an RPC method `<module>.<name>`).
///
/// Parameters are decoded from the call's params, given either by position (a JSON array) or by
/// name (a JSON object); `Option<T>` parameters may be left out. The return value is encoded as
/// JSON; a `Result<T, E>` with `E: Into<fnhost_guest::Error>` returns either a result or a guest
/// error. `///` comments become the function's documentation.
///
/// `#[export(raw)]` hands the whole params value to the function's one parameter instead
/// (`null` when the call had no params).
#[proc_macro_attribute]
pub fn export(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::export(attr.into(), item.into()).into()
}
