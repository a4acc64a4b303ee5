//! Making panics visible: a hook that logs the panic message before the trap.
//!
//! Guests build with `panic = "abort"`, so a panic becomes a trap and the host reports only the
//! trap kind. The hook sends the message and location to the host's log at error level first.

use std::sync::Once;

/// Installs the hook; only the first call in an instance does anything.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("Box<dyn Any>");
            let line = match info.location() {
                Some(at) => format!(
                    "panicked at {}:{}:{}: {message}",
                    at.file(),
                    at.line(),
                    at.column()
                ),
                None => format!("panicked: {message}"),
            };
            crate::log::error(&line);
        }));
    });
}
