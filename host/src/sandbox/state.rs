//! What one call's `Store` carries: its limiter, who it is (module, function, digest, request)
//! for log lines, the fuel it was given, its guest log lines, and (ABI v2) the params the guest
//! pulls with `fnhost.params` and the memory they go into.

use std::sync::Arc;
use std::time::SystemTime;

use fnhost_abi::LogLevel;

use super::limiter::Limiter;
use crate::digest::Digest;

/// How much a call may log (`Config::max_log_lines`, `Config::max_log_message_bytes`).
#[derive(Debug, Clone, Copy)]
pub(super) struct LogCaps {
    pub lines: u32,
    pub message_bytes: usize,
}

/// A call's guest log lines.
#[derive(Debug)]
pub(super) struct LogState {
    pub caps: LogCaps,
    lines: u32,
    dropped: u32,
    /// Lines held back until the attempt is known to count: `Some` in a first attempt that
    /// may be run again, so a rerun does not log its lines twice.
    held: Option<Vec<(LogLevel, String)>>,
}

impl LogState {
    pub fn new(caps: LogCaps, hold: bool) -> Self {
        Self {
            caps,
            lines: 0,
            dropped: 0,
            held: hold.then(Vec::new),
        }
    }

    /// Counts one more line: `false` (and counted as dropped) past the cap.
    pub fn admit(&mut self) -> bool {
        if self.lines >= self.caps.lines {
            self.dropped += 1;
            return false;
        }
        self.lines += 1;
        true
    }
}

/// One line a guest logged, as a [`LogSink`] receives it.
#[derive(Debug, Clone)]
pub struct GuestLog {
    pub time: SystemTime,
    pub level: LogLevel,
    pub function: Arc<str>,
    pub request_id: crate::context::RequestId,
    pub message: String,
}

/// Where a call's guest log lines go besides the host's log (a module's live ring, the
/// `fnhost run` printout). Called only when a guest logs, and only for lines that count.
pub trait LogSink: Send + Sync + std::fmt::Debug {
    fn line(&self, line: GuestLog);
}

/// Per-call store data.
pub(super) struct CallState {
    pub limiter: Limiter,
    pub module: Arc<str>,
    pub function: Arc<str>,
    pub digest: Digest,
    /// The request this call serves, named in its log lines.
    pub request_id: crate::context::RequestId,
    /// The fuel this attempt was given, to tell what it used.
    pub fuel_budget: u64,
    pub log: LogState,
    /// Where log lines go besides tracing.
    pub sink: Option<Arc<dyn LogSink>>,
    /// ABI v2: the call's params, for `fnhost.params` (shared by a call's two attempts); empty
    /// for v1 calls and calls without params.
    pub params: Arc<[u8]>,
    /// ABI v2: the instance's memory, set once it is instantiated.
    pub memory: Option<wasmtime::Memory>,
}

impl CallState {
    /// A guest's log line: emitted now, or held until the attempt is known to count.
    pub fn log(&mut self, level: LogLevel, message: String) {
        match &mut self.log.held {
            Some(held) => held.push((level, message)),
            None => self.emit(level, &message),
        }
    }

    /// Sends a guest's log line to the host's tracing, naming the module, function and digest,
    /// and to the sink.
    fn emit(&self, level: LogLevel, message: &str) {
        if let Some(sink) = &self.sink {
            sink.line(GuestLog {
                time: SystemTime::now(),
                level,
                function: self.function.clone(),
                request_id: self.request_id.clone(),
                message: message.to_owned(),
            });
        }
        let (module, function, digest) = (&*self.module, &*self.function, self.digest);
        let request_id = &self.request_id;
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "fnhost::guest", $level, module, function, %digest, %request_id, "{message}")
            };
        }
        match level {
            LogLevel::Error => emit!(tracing::Level::ERROR),
            LogLevel::Warn => emit!(tracing::Level::WARN),
            LogLevel::Info => emit!(tracing::Level::INFO),
            LogLevel::Debug => emit!(tracing::Level::DEBUG),
            LogLevel::Trace => emit!(tracing::Level::TRACE),
        }
    }

    /// Emits the held lines (the attempt counts) and the warning about dropped ones.
    pub fn flush_logs(&mut self) {
        for (level, message) in self.log.held.take().unwrap_or_default() {
            self.emit(level, &message);
        }
        if self.log.dropped > 0 {
            tracing::warn!(
                module = &*self.module, function = &*self.function, digest = %self.digest,
                request_id = %self.request_id, dropped = self.log.dropped,
                "guest log lines dropped (at most {} per call)", self.log.caps.lines
            );
        }
    }

    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            limiter: Limiter::new(1 << 20, 10),
            module: Arc::from("m"),
            function: Arc::from("f"),
            digest: Digest::of(b""),
            request_id: crate::context::RequestId::generated(),
            fuel_budget: 0,
            sink: None,
            params: Arc::default(),
            memory: None,
            log: LogState::new(
                LogCaps {
                    lines: 2,
                    message_bytes: 8,
                },
                false,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_cap_are_dropped_and_counted() {
        let mut log = LogState::new(
            LogCaps {
                lines: 2,
                message_bytes: 8,
            },
            true,
        );
        assert!(log.admit() && log.admit());
        assert!(!log.admit() && !log.admit());
        assert_eq!((log.lines, log.dropped), (2, 2));
    }
}
