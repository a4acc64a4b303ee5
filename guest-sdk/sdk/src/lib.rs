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
//! only) the `fnhost_alloc` export the host uses to hand over params and, with the default
//! feature `arena`, a global allocator built for one-call instances ([`Arena`]).

mod alloc;
mod error;
mod glue;
pub mod log;
#[cfg(target_arch = "wasm32")]
mod panic;

pub use alloc::{ARENA_BYTES, Arena, Pages};
pub use error::{Error, Result};
pub use fnhost_abi::ABI_VERSION;
pub use fnhost_guest_macro::export;
pub use serde;
pub use serde_json;

/// The glue `#[export]` expands to. Not a public API: it changes with the macro.
#[doc(hidden)]
pub mod __private {
    pub use crate::glue::*;
    pub use ::std::vec::Vec;
}
