//! Per-function usage counters, shown on `GET /v1/functions/{name}`.
//!
//! Counters belong to a name, not a version: a redeploy keeps them. They are created only for
//! functions that exist, so unknown method names cannot grow the map. Readers take a typed
//! [`FunctionUsage`] snapshot, so the JSON of the admin API and any other rendering (a
//! metrics endpoint) show the same numbers.

use std::sync::Arc;

use dashmap::DashMap;
use serde_json::{Map, Value, json};

use crate::error::Kind;
use crate::metrics::FunctionStats;

/// What one function has done so far.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionUsage {
    pub function: String,
    pub calls: u64,
    pub fuel_used: u64,
    pub elapsed_us: u64,
    /// Failures by kind; kinds that never happened are left out.
    pub errors: Vec<(Kind, u64)>,
    /// Latency quantiles from the histogram's buckets (an upper bound), when there were calls.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

impl FunctionUsage {
    /// Every failure, whatever its kind.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    /// `{calls, errors, errors_by_kind, fuel_used, elapsed_ms, mean_elapsed_us}`.
    pub fn to_json(&self) -> Value {
        let by_kind: Map<String, Value> = self
            .errors
            .iter()
            .map(|(kind, n)| (kind.name().to_owned(), json!(n)))
            .collect();
        let mean = if self.calls == 0 {
            0.0
        } else {
            self.elapsed_us as f64 / self.calls as f64
        };
        json!({
            "calls": self.calls,
            "errors": self.error_count(),
            "errors_by_kind": by_kind,
            "fuel_used": self.fuel_used,
            "elapsed_ms": self.elapsed_us as f64 / 1000.0,
            "mean_elapsed_us": mean,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
        })
    }
}

/// Counters of every function of a name, by function name. A deploy takes the counters of its
/// functions once ([`Usage::stats`]); calls record into them without a lookup.
#[derive(Debug, Default)]
pub struct Usage {
    functions: DashMap<String, Arc<FunctionStats>>,
}

impl Usage {
    /// The counters of `function`, created on first use.
    pub fn stats(&self, function: &str) -> Arc<FunctionStats> {
        self.functions
            .entry(function.to_owned())
            .or_default()
            .value()
            .clone()
    }

    /// Records one finished call of `function` (for callers without its counters at hand).
    pub fn record(&self, function: &str, fuel_used: u64, elapsed_us: u64, error: Option<Kind>) {
        self.stats(function).record(fuel_used, elapsed_us, error);
    }

    /// Every function's counters now, sorted by function: the functions called at least once (counters exist from deploy on, for the hot path's
    /// sake; one never called has nothing to report).
    pub fn snapshot(&self) -> Vec<FunctionUsage> {
        let mut all: Vec<FunctionUsage> = self
            .functions
            .iter()
            .filter(|f| f.value().calls() > 0)
            .map(|f| {
                let c = f.value();
                FunctionUsage {
                    function: f.key().clone(),
                    calls: c.calls(),
                    fuel_used: c.fuel_used(),
                    elapsed_us: c.elapsed_us(),
                    errors: c.errors(),
                    p50_us: c.latency.quantile(0.5),
                    p99_us: c.latency.quantile(0.99),
                }
            })
            .collect();
        all.sort_by(|a, b| a.function.cmp(&b.function));
        all
    }

    /// `{function: {calls, errors, ...}}` (see [`FunctionUsage::to_json`]).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.snapshot()
                .into_iter()
                .map(|f| (f.function.clone(), f.to_json()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_calls_and_errors_by_kind() {
        let u = Usage::default();
        u.record("add", 10, 5, None);
        u.record("add", 20, 15, Some(Kind::OutOfFuel));
        let v = u.to_json();
        assert_eq!(v["add"]["calls"], 2);
        assert_eq!(v["add"]["errors"], 1);
        assert_eq!(v["add"]["errors_by_kind"]["out_of_fuel"], 1);
        assert_eq!(v["add"]["fuel_used"], 30);
        assert_eq!(v["add"]["mean_elapsed_us"], 10.0);
    }

    #[test]
    fn the_snapshot_is_what_the_json_shows() {
        let u = Usage::default();
        u.record("b", 1, 1, Some(Kind::GuestTrap));
        u.record("a", 2, 2, None);
        let snap = u.snapshot();
        assert_eq!(
            snap.iter().map(|f| f.function.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(snap[1].errors, vec![(Kind::GuestTrap, 1)]);
        assert_eq!(u.to_json()["b"], snap[1].to_json());
    }
}
