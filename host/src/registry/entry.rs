//! A deployed name as calls and listings see it: its history, its limits, its program once
//! loaded, its counters and its share of call slots.

use std::sync::Arc;

use fnhost_abi::FunctionMeta;
use tokio::sync::{OnceCell, Semaphore};

use super::usage::Usage;
use crate::config::Limits;
use crate::sandbox::Program;
use crate::store::{NameRecord, VersionRecord};

/// A deployed name.
#[derive(Debug)]
pub struct Entry {
    pub name: Arc<str>,
    /// The persisted history; the last version is served.
    pub record: NameRecord,
    /// The limits in force for calls.
    pub limits: Limits,
    /// The program once loaded (verified and compiled or deserialized), or why it cannot be
    /// served. Empty until the first call or the background check after start-up.
    pub(super) program: OnceCell<Result<Arc<Program>, String>>,
    /// Call counters; kept across versions of the name.
    pub usage: Arc<Usage>,
    /// The counters of each of the current version's functions, in `functions()` order.
    pub stats: Vec<Arc<crate::metrics::FunctionStats>>,
    /// Recent guest log lines and their followers; kept across versions of the name.
    pub logs: Arc<crate::logs::LogRing>,
    /// `logs`, as the sandbox takes it.
    pub log_sink: Arc<dyn crate::sandbox::LogSink>,
    /// Bounds this name's calls in flight, so one hot or hostile module cannot take every slot.
    pub call_slots: Arc<Semaphore>,
}

/// Whether an entry's program is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<'a> {
    /// Verified and compiled (or loaded from its artifact): calls run at once.
    Loaded,
    /// Not loaded yet: it loads on the first call, or in the background pass after start-up.
    NotLoaded,
    /// It cannot be served, and why.
    Unavailable(&'a str),
}

impl Status<'_> {
    /// `loaded`, `not_loaded` or `unavailable`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Loaded => "loaded",
            Status::NotLoaded => "not_loaded",
            Status::Unavailable(_) => "unavailable",
        }
    }
}

impl Entry {
    pub fn current(&self) -> &VersionRecord {
        // A record is only ever created with one version and only grows.
        &self.record.versions[self.record.versions.len() - 1]
    }

    /// The current version's functions, from the persisted metadata: listings, introspection
    /// and params checks never need the program itself.
    pub fn functions(&self) -> &[FunctionMeta] {
        &self.current().functions
    }

    /// One function's metadata.
    pub fn function(&self, name: &str) -> Option<&FunctionMeta> {
        self.functions().iter().find(|f| f.name == name)
    }

    /// One function's metadata and counters.
    pub fn function_stats(
        &self,
        name: &str,
    ) -> Option<(&FunctionMeta, &crate::metrics::FunctionStats)> {
        let i = self.functions().iter().position(|f| f.name == name)?;
        Some((&self.functions()[i], &self.stats[i]))
    }

    pub fn status(&self) -> Status<'_> {
        match self.program.get() {
            Some(Ok(_)) => Status::Loaded,
            Some(Err(reason)) => Status::Unavailable(reason),
            None => Status::NotLoaded,
        }
    }

    /// Why the entry cannot be served, once that is known.
    pub fn unavailable(&self) -> Option<&str> {
        match self.status() {
            Status::Unavailable(reason) => Some(reason),
            _ => None,
        }
    }
}

/// What a deploy did.
#[derive(Debug)]
pub enum Deployed {
    /// A new version was stored and is now served.
    Created(Arc<Entry>),
    /// The same bytes and limits were already current; nothing changed.
    Unchanged(Arc<Entry>),
}
