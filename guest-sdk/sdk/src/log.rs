//! Writing to the host's log, through the `fnhost.log` import.
//!
//! The host attaches the module, the function and the digest to each line, cuts a line at
//! [`fnhost_abi::MAX_LOG_MESSAGE`] bytes and keeps at most [`fnhost_abi::MAX_LOG_LINES`] lines
//! per call. Built natively (unit tests) the lines go to stderr instead, so the same code runs
//! in both places.
//!
//! ```
//! use fnhost_guest::log;
//!
//! log::info("cache miss");
//! log::warn(&format!("slow path for n = {}", 42));
//! log::log(log::Level::Debug, "the same, with the level as a value");
//! ```

/// The level of a line: `Error`, `Warn`, `Info`, `Debug` or `Trace`.
pub use fnhost_abi::LogLevel as Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    imp::write(level, message);
}

/// Logs `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Logs `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;

    #[link(wasm_import_module = "fnhost")]
    unsafe extern "C" {
        /// `fnhost_abi::HOST_MODULE`.`fnhost_abi::LOG_IMPORT`; see `docs/ABI.md`.
        #[link_name = "log"]
        fn fnhost_log(level: i32, ptr: i32, len: i32);
    }

    pub(super) fn write(level: Level, message: &str) {
        // SAFETY: the host only reads `len` bytes at `ptr`, which is a live &str in our memory.
        // On wasm32 a pointer and a usize are 32 bits, so the casts are lossless.
        unsafe {
            fnhost_log(
                level as i32,
                message.as_ptr() as usize as i32,
                message.len() as i32,
            )
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;

    pub(super) fn write(level: Level, message: &str) {
        eprintln!("[fnhost guest {level:?}] {message}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logging_natively_does_not_fail() {
        super::error("e");
        super::warn("w");
        super::info("i");
        super::debug("d");
        super::trace("t");
    }
}
