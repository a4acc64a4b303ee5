//! Making panics visible: a hook that logs the panic message before the trap.
//!
//! Guests build with `panic = "abort"`, so a panic becomes a trap and the host reports only the
//! trap kind. The hook sends the message and location to the host's log at error level first.
//! It builds the line by hand rather than with `format!` (docs/GUESTS.md, *Size*).

use std::sync::Once;

/// Installs the hook; only the first call in an instance does anything.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
            let mut line = String::with_capacity(message.len() + 64);
            match info.location() {
                Some(at) => {
                    line.push_str("panicked at ");
                    line.push_str(at.file());
                    line.push(':');
                    crate::glue::push_u64(&mut line, u64::from(at.line()));
                    line.push(':');
                    crate::glue::push_u64(&mut line, u64::from(at.column()));
                    line.push_str(": ");
                }
                None => line.push_str("panicked: "),
            }
            line.push_str(message);
            crate::log::error(&line);
        }));
    });
}
