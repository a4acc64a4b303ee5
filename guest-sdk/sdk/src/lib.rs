//! Write fnhost functions as plain Rust functions.
//!
//! A guest crate is a `cdylib` that depends on this crate, marks free functions with
//! [`#[export]`](export), and builds for `wasm32-unknown-unknown`. Each exported function becomes
//! the RPC method `<deployed name>.<function>`: the macro decodes the JSON params into the
//! function's arguments, encodes its return value, and describes it in the module's metadata, all
//! as `docs/ABI.md` (ABI version [`ABI_VERSION`]) specifies. The function itself is left as
//! written, so it stays an ordinary function that unit tests call natively.
//!
//! ```
//! use fnhost_guest::{Error, export};
//!
//! /// Divides x by y.
//! #[export]
//! pub fn divide(x: f64, y: f64) -> Result<f64, Error> {
//!     if y == 0.0 { Err(Error::new("division by zero")) } else { Ok(x / y) }
//! }
//!
//! // Still a plain function:
//! assert_eq!(divide(1.0, 4.0), Ok(0.25));
//! // And what the host gets back for params `[1, 4]`: status 0, then the JSON result.
//! assert_eq!(__fnhost_invoke_divide(b"[1, 4]"), b"\x000.25");
//! ```
//!
//! Besides the macro this crate holds the guest's [`Error`], the host's [`log`], and (on wasm32
//! only, with the default feature `arena`) a global allocator built for one-call instances
//! ([`Arena`]).

#![warn(missing_docs)]

mod alloc;
mod error;
mod glue;
pub mod log;
#[cfg(target_arch = "wasm32")]
mod panic;

pub use alloc::{ARENA_BYTES, Arena, Pages};
pub use error::{Error, Result};
pub use fnhost_abi::ABI_VERSION;
/// Exports a free function as an fnhost function: the RPC method `<module>.<name>`.
///
/// Parameters are matched by position (a JSON array) or by name (a JSON object); `Option<T>`
/// parameters may be left out or `null`. Any `DeserializeOwned` type can be a parameter and
/// any `Serialize` type a result; `Result<T, E>` with `E: Into<Error>` returns a guest error
/// for `Err`. The `///` comment becomes the function's documentation in the metadata.
///
/// ```
/// use fnhost_guest::export;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Point {
///     x: i32,
///     y: i32,
/// }
///
/// /// Mirrors a point in the diagonal, scaled.
/// #[export]
/// pub fn flip(p: Point, scale: Option<i32>) -> Point {
///     let s = scale.unwrap_or(1);
///     Point { x: p.y * s, y: p.x * s }
/// }
///
/// // By position, with the optional parameter left out:
/// assert_eq!(__fnhost_invoke_flip(br#"[{"x": 1, "y": 2}]"#), b"\x00{\"x\":2,\"y\":1}");
/// // By name, in any order:
/// assert_eq!(
///     __fnhost_invoke_flip(br#"{"scale": 3, "p": {"x": 1, "y": 2}}"#),
///     b"\x00{\"x\":6,\"y\":3}"
/// );
/// // A missing parameter is invalid params (status 2), naming it:
/// assert_eq!(
///     __fnhost_invoke_flip(b"[]"),
///     b"\x02{\"message\":\"missing parameter `p`\",\"param\":\"p\"}"
/// );
/// ```
///
/// `#[export(raw)]` gives the whole params value, unmatched, to the function's one parameter
/// (`null` when the call had none):
///
/// ```
/// use fnhost_guest::{export, serde_json::Value};
///
/// #[export(raw)]
/// pub fn echo(params: Value) -> Value {
///     params
/// }
///
/// assert_eq!(__fnhost_invoke_echo(b"[1, {\"a\": null}]"), b"\x00[1,{\"a\":null}]");
/// assert_eq!(__fnhost_invoke_echo(b""), b"\x00null");
/// ```
///
/// What it refuses (generic, `async`, `unsafe` or `extern` functions, methods, borrowed
/// parameters, `impl Trait`, names the ABI does not allow) is a compile error at the offending
/// tokens.
#[doc(inline)]
pub use fnhost_guest_macro::export;
/// serde, as the generated code and your own `#[derive(Serialize, Deserialize)]` types use it.
pub use serde;
/// serde_json, for `Value`, `json!` and `RawValue` in signatures without a dependency of your own.
pub use serde_json;

/// The glue `#[export]` expands to. Not a public API: it changes with the macro.
#[doc(hidden)]
pub mod __private {
    pub use crate::glue::*;
    pub use ::std::vec::Vec;
}
