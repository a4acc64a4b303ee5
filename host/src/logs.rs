//! Live guest logs: a bounded ring of each module's recent guest log lines, and a stream of
//! new ones for followers (`GET /v1/functions/{name}/logs?follow=1`).
//!
//! A line carries what the guest wrote, its level, function, request id and time. The ring
//! keeps the last `Config::log_ring_lines`; followers read from a broadcast channel of
//! [`FOLLOW_BUFFER`] lines, so a slow follower never blocks a call nor grows memory: it falls
//! behind, loses lines and is told how many.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use fnhost_abi::LogLevel;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::sandbox::{GuestLog, LogSink};

/// Lines a follower may fall behind before it loses some.
pub const FOLLOW_BUFFER: usize = 256;

/// One guest log line, numbered per module.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub seq: u64,
    pub line: GuestLog,
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

impl LogLine {
    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "time": humantime::format_rfc3339_millis(self.line.time).to_string(),
            "level": level_name(self.line.level),
            "function": &*self.line.function,
            "request_id": self.line.request_id.to_string(),
            "message": self.line.message,
        })
    }
}

/// One module's ring and its followers.
#[derive(Debug)]
pub struct LogRing {
    capacity: usize,
    lines: Mutex<VecDeque<Arc<LogLine>>>,
    next: AtomicU64,
    followers: broadcast::Sender<Arc<LogLine>>,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(64))),
            next: AtomicU64::new(1),
            followers: broadcast::channel(FOLLOW_BUFFER).0,
        }
    }

    /// The last `limit` lines, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<LogLine>> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .skip(lines.len().saturating_sub(limit))
            .cloned()
            .collect()
    }

    /// New lines from now on; a receiver that falls [`FOLLOW_BUFFER`] lines behind is told it
    /// lagged, with how many it lost.
    pub fn follow(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.followers.subscribe()
    }
}

impl LogSink for LogRing {
    fn line(&self, line: GuestLog) {
        let line = Arc::new(LogLine {
            seq: self.next.fetch_add(1, Relaxed),
            line,
        });
        {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            if lines.len() == self.capacity {
                lines.pop_front();
            }
            if self.capacity > 0 {
                lines.push_back(line.clone());
            }
        }
        // No follower is no error.
        let _ = self.followers.send(line);
    }
}

/// A [`LogSink`] that keeps every line (for `fnhost run`'s printout).
#[derive(Debug, Default)]
pub struct Collect(pub Mutex<Vec<GuestLog>>);

impl LogSink for Collect {
    fn line(&self, line: GuestLog) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

/// When the line was written, for sorting and display.
pub fn time_of(line: &LogLine) -> SystemTime {
    line.line.time
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::RequestId;

    fn line(message: &str) -> GuestLog {
        GuestLog {
            time: SystemTime::now(),
            level: LogLevel::Info,
            function: Arc::from("f"),
            request_id: RequestId::Given(Arc::from("r1")),
            message: message.into(),
        }
    }

    #[test]
    fn the_ring_keeps_the_last_lines_numbered() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.line(line(&format!("m{i}")));
        }
        let recent = ring.recent(10);
        let seen: Vec<(u64, &str)> = recent
            .iter()
            .map(|l| (l.seq, l.line.message.as_str()))
            .collect();
        assert_eq!(seen, [(3, "m2"), (4, "m3"), (5, "m4")]);
        assert_eq!(ring.recent(1)[0].seq, 5);
        let v = recent[0].to_json();
        assert_eq!(
            (v["request_id"].as_str(), v["level"].as_str()),
            (Some("r1"), Some("info"))
        );
    }

    #[tokio::test]
    async fn a_slow_follower_loses_lines_and_is_told_how_many() {
        let ring = LogRing::new(10);
        let mut slow = ring.follow();
        for i in 0..(FOLLOW_BUFFER + 5) {
            ring.line(line(&format!("m{i}")));
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 5),
            other => panic!("{other:?}"),
        }
        assert_eq!(slow.recv().await.unwrap().seq, 6);
        assert_eq!(ring.recent(100).len(), 10, "the ring stays bounded");
    }
}
