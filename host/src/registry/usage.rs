//! Per-function usage counters, shown on `GET /v1/functions/{name}`.
//!
//! Counters belong to a name, not a version: a redeploy keeps them. They are created only for
//! functions that exist, so unknown method names cannot grow the map.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use dashmap::DashMap;
use serde_json::{Map, Value, json};

use crate::error::Kind;

/// Counters of one function.
#[derive(Debug, Default)]
pub struct Counters {
    calls: AtomicU64,
    fuel_used: AtomicU64,
    elapsed_us: AtomicU64,
    /// Failures by kind, indexed like [`Kind::ALL`].
    errors: [AtomicU64; Kind::ALL.len()],
}

/// Counters of every function of a name.
#[derive(Debug, Default)]
pub struct Usage {
    functions: DashMap<String, Counters>,
}

impl Usage {
    /// Records one finished call of `function`.
    pub fn record(&self, function: &str, fuel_used: u64, elapsed_us: u64, error: Option<Kind>) {
        let update = |c: &Counters| {
            c.calls.fetch_add(1, Relaxed);
            c.fuel_used.fetch_add(fuel_used, Relaxed);
            c.elapsed_us.fetch_add(elapsed_us, Relaxed);
            if let Some(i) = error.and_then(|k| Kind::ALL.iter().position(|x| *x == k)) {
                c.errors[i].fetch_add(1, Relaxed);
            }
        };
        match self.functions.get(function) {
            Some(c) => update(&c),
            None => update(&self.functions.entry(function.to_owned()).or_default()),
        }
    }

    /// `{function: {calls, errors, errors_by_kind, fuel_used, elapsed_ms, mean_elapsed_us}}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for f in &self.functions {
            let c = f.value();
            let calls = c.calls.load(Relaxed);
            let elapsed = c.elapsed_us.load(Relaxed);
            let mut by_kind = Map::new();
            let mut errors = 0;
            for (kind, n) in Kind::ALL.iter().zip(&c.errors) {
                let n = n.load(Relaxed);
                if n > 0 {
                    errors += n;
                    by_kind.insert(kind.name().to_owned(), json!(n));
                }
            }
            out.insert(
                f.key().clone(),
                json!({
                    "calls": calls,
                    "errors": errors,
                    "errors_by_kind": by_kind,
                    "fuel_used": c.fuel_used.load(Relaxed),
                    "elapsed_ms": elapsed as f64 / 1000.0,
                    "mean_elapsed_us": if calls == 0 { 0.0 } else { elapsed as f64 / calls as f64 },
                }),
            );
        }
        Value::Object(out)
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
}
