//! Counters and histograms, recorded on the hot path with plain atomics (no lock, no
//! allocation), read as typed snapshots, and rendered in the Prometheus text format at
//! `/metrics` through `prometheus-client`'s encoder.
//!
//! Per function ([`FunctionStats`], created when a name is deployed, so a client cannot grow
//! the label set): calls by outcome (`ok` or the error kind), a latency and a fuel histogram.
//! Per host ([`HostStats`]): unknown methods (one counter, no label), busy and rate-limited
//! refusals, deploys by outcome, compile durations, artifact cache hits and misses, instance
//! slots in use. Gauges read elsewhere (calls in flight, open connections, panics) are
//! rendered from where they live.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::error::Kind;

/// A histogram over fixed bounds, in integer units (µs, fuel), updated with atomics.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, ascending, in the recorded unit.
    bounds: &'static [u64],
    /// Per bound, then the overflow (`+Inf`): counts of values at or below each bound (not
    /// cumulative; cumulated when rendered).
    buckets: Box<[AtomicU64]>,
    /// The count is the buckets' total: one atomic add fewer per value, and a snapshot's
    /// `+Inf` bucket always equals its count.
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    /// The sum of the recorded values.
    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    /// `(sum, count, [(upper bound, cumulative count)])`, bounds scaled by `scale` (µs → s); the
    /// last bound is `f64::MAX`, which prometheus-client writes as `+Inf`.
    pub fn snapshot(&self, scale: f64) -> (f64, u64, Vec<(f64, u64)>) {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let bound = self.bounds.get(i).map_or(f64::MAX, |b| *b as f64 * scale);
            buckets.push((bound, cumulative));
        }
        (self.sum.load(Relaxed) as f64 * scale, cumulative, buckets)
    }

    /// The value below which `q` (0..1) of the recorded values fall, from the buckets (an
    /// upper bound: the bucket's bound), in the recorded unit; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let (_, count, buckets) = self.snapshot(1.0);
        if count == 0 {
            return None;
        }
        let rank = (q * count as f64).ceil().max(1.0) as u64;
        buckets
            .iter()
            .zip(self.bounds.iter().map(Some).chain([None]))
            .find(|((_, c), _)| *c >= rank)
            .map(|(_, bound)| bound.copied().unwrap_or(u64::MAX))
    }
}

/// Latency bounds in µs: 50 µs to 30 s.
pub const LATENCY_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Fuel bounds: 1e3 to 1e10 units.
pub const FUEL: &[u64] = &[
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
];

/// Compile duration bounds in µs: 1 ms to 60 s.
pub const COMPILE_US: &[u64] = &[
    1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000, 30_000_000,
    60_000_000,
];

/// One function's numbers.
#[derive(Debug)]
pub struct FunctionStats {
    /// Calls by outcome: index 0 is `ok`, then one per [`Kind`] (`Kind as usize + 1`).
    outcomes: [AtomicU64; Kind::ALL.len() + 1],
    /// Their sums are the fuel used and the time taken in total. Every call adds to these on
    /// lines shared by all cores, so each atomic counts (docs/PERFORMANCE.md, *What is shared
    /// between cores on the call path*).
    pub latency: Histogram,
    pub fuel: Histogram,
}

impl Default for FunctionStats {
    fn default() -> Self {
        Self {
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: Histogram::new(LATENCY_US),
            fuel: Histogram::new(FUEL),
        }
    }
}

impl FunctionStats {
    /// Records one finished call.
    pub fn record(&self, fuel_used: u64, elapsed_us: u64, error: Option<Kind>) {
        self.outcomes[error.map_or(0, |k| k as usize + 1)].fetch_add(1, Relaxed);
        self.latency.record(elapsed_us);
        self.fuel.record(fuel_used);
    }

    pub fn calls(&self) -> u64 {
        self.outcomes.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn fuel_used(&self) -> u64 {
        self.fuel.sum()
    }

    pub fn elapsed_us(&self) -> u64 {
        self.latency.sum()
    }

    /// Failures by kind, the kinds that never happened left out.
    pub fn errors(&self) -> Vec<(Kind, u64)> {
        Kind::ALL
            .iter()
            .map(|k| (*k, self.outcomes[*k as usize + 1].load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Calls by outcome name (`ok`, `out_of_fuel`, ...), those that never happened left out.
    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        std::iter::once(("ok", self.outcomes[0].load(Relaxed)))
            .chain(self.errors().into_iter().map(|(k, n)| (k.name(), n)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// The host's own numbers.
#[derive(Debug)]
pub struct HostStats {
    /// Calls of methods that do not exist (one counter: no label a client can grow).
    pub unknown_methods: AtomicU64,
    /// Calls refused `busy` (a full host, module or pool).
    pub busy: AtomicU64,
    /// Calls refused `rate_limited`.
    pub rate_limited: AtomicU64,
    /// Deploys by outcome: index 0 `created`, 1 `unchanged`, then `Kind as usize + 2`.
    deploys: [AtomicU64; Kind::ALL.len() + 2],
    pub compile: Histogram,
    pub artifact_hits: AtomicU64,
    pub artifact_misses: AtomicU64,
    /// Sandbox instances alive now (instance pool slots in use), counted by the sandbox.
    pub instances: std::sync::Arc<AtomicUsize>,
    /// The sandbox's long-call lane: calls running in it and waiting for it.
    pub long_calls: std::sync::Arc<crate::sandbox::LongCalls>,
}

impl Default for HostStats {
    fn default() -> Self {
        Self {
            unknown_methods: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            deploys: std::array::from_fn(|_| AtomicU64::new(0)),
            compile: Histogram::new(COMPILE_US),
            artifact_hits: AtomicU64::new(0),
            artifact_misses: AtomicU64::new(0),
            instances: std::sync::Arc::default(),
            long_calls: std::sync::Arc::default(),
        }
    }
}

/// How a deploy ended.
#[derive(Debug, Clone, Copy)]
pub enum DeployOutcome {
    Created,
    Unchanged,
    Refused(Kind),
}

impl HostStats {
    /// Counters sharing the sandbox's counts of instances alive and long calls.
    pub fn new(sandbox: &crate::sandbox::Sandbox) -> Self {
        Self {
            instances: sandbox.instances().clone(),
            long_calls: sandbox.long_calls().clone(),
            ..Self::default()
        }
    }

    pub fn deploy(&self, outcome: DeployOutcome) {
        let i = match outcome {
            DeployOutcome::Created => 0,
            DeployOutcome::Unchanged => 1,
            DeployOutcome::Refused(k) => k as usize + 2,
        };
        self.deploys[i].fetch_add(1, Relaxed);
    }

    pub fn compiled(&self, took: Duration) {
        self.compile.record(took.as_micros() as u64);
    }

    /// Deploys by outcome name, those that never happened left out.
    pub fn deploys(&self) -> Vec<(&'static str, u64)> {
        let names = ["created", "unchanged"]
            .into_iter()
            .chain(Kind::ALL.iter().map(|k| k.name()));
        names
            .zip(&self.deploys)
            .map(|(n, c)| (n, c.load(Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }
}

/// Renders the whole host at scrape time.
#[derive(Debug)]
pub struct Scrape(pub crate::AppState);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Vec<(&str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Vec<(&str, String)>, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Vec<(&str, String)>, &Histogram)],
    scale: f64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        let (sum, _, cumulative) = h.snapshot(scale);
        // prometheus-client cumulates the buckets itself: give it each bucket's own count, and
        // their total as the count, so `_count` and `+Inf` agree even while calls record.
        let count = cumulative.last().map_or(0, |b| b.1);
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = cumulative
            .into_iter()
            .map(|(bound, c)| {
                let own = c - below;
                below = c;
                (bound, own)
            })
            .collect();
        family
            .encode_family(labels)?
            .encode_histogram::<Vec<(String, String)>>(sum, count, &buckets, None)?;
    }
    Ok(())
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let app = &self.0;
        let stats = &app.stats;
        let entries = app.registry.list();
        let mut calls = Vec::new();
        let mut latency = Vec::new();
        let mut fuel = Vec::new();
        for entry in &entries {
            for (meta, f) in entry.functions().iter().zip(entry.stats.iter()) {
                let who = || {
                    vec![
                        ("module", entry.name.to_string()),
                        ("function", meta.name.clone()),
                    ]
                };
                for (outcome, n) in f.outcomes() {
                    let mut labels = who();
                    labels.push(("outcome", outcome.to_owned()));
                    calls.push((labels, n));
                }
                latency.push((who(), &f.latency));
                fuel.push((who(), &f.fuel));
            }
        }
        counter(
            &mut e,
            "fnhost_calls",
            "Calls by module, function and outcome (ok or the error kind).",
            &calls,
        )?;
        histogram(
            &mut e,
            "fnhost_call_duration_seconds",
            "Wall-clock time of calls.",
            &latency,
            1e-6,
        )?;
        histogram(
            &mut e,
            "fnhost_call_fuel",
            "Fuel spent by calls.",
            &fuel,
            1.0,
        )?;
        let n = |a: &AtomicU64| a.load(Relaxed);
        counter(
            &mut e,
            "fnhost_unknown_method_calls",
            "Calls of methods that do not exist.",
            &[(vec![], n(&stats.unknown_methods))],
        )?;
        counter(
            &mut e,
            "fnhost_refusals",
            "Calls refused before running, by reason.",
            &[
                (vec![("reason", "busy".to_owned())], n(&stats.busy)),
                (
                    vec![("reason", "rate_limited".to_owned())],
                    n(&stats.rate_limited),
                ),
            ],
        )?;
        gauge(
            &mut e,
            "fnhost_calls_in_flight",
            "Calls running now.",
            &[(vec![], app.calls_in_flight() as i64)],
        )?;
        gauge(
            &mut e,
            "fnhost_pool_slots_in_use",
            "Sandbox instances (instance pool slots) in use now.",
            &[(vec![], stats.instances.load(Relaxed) as i64)],
        )?;
        gauge(
            &mut e,
            "fnhost_long_calls_running",
            "Calls past their first fuel slice running in the long-call lane now.",
            &[(vec![], stats.long_calls.running() as i64)],
        )?;
        gauge(
            &mut e,
            "fnhost_long_calls_waiting",
            "Long calls waiting for a place in the long-call lane now.",
            &[(vec![], stats.long_calls.waiting() as i64)],
        )?;
        let deploys: Vec<_> = stats
            .deploys()
            .into_iter()
            .map(|(o, c)| (vec![("outcome", o.to_owned())], c))
            .collect();
        counter(
            &mut e,
            "fnhost_deploys",
            "Deploys by outcome (created, unchanged, or the error kind).",
            &deploys,
        )?;
        histogram(
            &mut e,
            "fnhost_compile_duration_seconds",
            "Time to compile a module.",
            &[(vec![], &stats.compile)],
            1e-6,
        )?;
        counter(
            &mut e,
            "fnhost_artifact_cache",
            "Program loads from the artifact cache (hit) or by compiling (miss).",
            &[
                (vec![("result", "hit".to_owned())], n(&stats.artifact_hits)),
                (
                    vec![("result", "miss".to_owned())],
                    n(&stats.artifact_misses),
                ),
            ],
        )?;
        use crate::server::Listener;
        gauge(
            &mut e,
            "fnhost_open_connections",
            "Connections open now, by transport.",
            &[
                (
                    vec![("transport", "http".to_owned())],
                    app.connections.open(Listener::Http) as i64,
                ),
                (
                    vec![("transport", "tcp".to_owned())],
                    app.connections.open(Listener::Tcp) as i64,
                ),
            ],
        )?;
        counter(
            &mut e,
            "fnhost_refused_connections",
            "Connections closed at once for a cap.",
            &[(vec![], app.connections.refused())],
        )?;
        counter(
            &mut e,
            "fnhost_handler_panics",
            "Request handlers that panicked (answered -32603).",
            &[(vec![], n(&app.panics))],
        )?;
        gauge(
            &mut e,
            "fnhost_modules",
            "Names deployed.",
            &[(vec![], entries.len() as i64)],
        )?;
        Ok(())
    }
}

/// The Prometheus text of the whole host.
pub fn render(app: &crate::AppState) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Scrape(app.clone())));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot render /metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_cumulate_and_give_quantiles() {
        let h = Histogram::new(&[10, 100, 1000]);
        for v in [5, 10, 11, 500, 5000] {
            h.record(v);
        }
        let (sum, count, buckets) = h.snapshot(1.0);
        assert_eq!((sum, count), (5526.0, 5));
        assert_eq!(
            buckets,
            vec![(10.0, 2), (100.0, 3), (1000.0, 4), (f64::MAX, 5)]
        );
        assert_eq!(h.quantile(0.5), Some(100));
        assert_eq!(h.quantile(0.99), Some(u64::MAX));
        assert_eq!(Histogram::new(&[1]).quantile(0.5), None);
    }

    #[test]
    fn outcomes_are_counted_by_kind() {
        let f = FunctionStats::default();
        f.record(10, 5, None);
        f.record(20, 15, Some(Kind::OutOfFuel));
        assert_eq!(f.calls(), 2);
        assert_eq!(f.outcomes(), vec![("ok", 1), ("out_of_fuel", 1)]);
        assert_eq!(f.errors(), vec![(Kind::OutOfFuel, 1)]);
        assert_eq!((f.fuel_used(), f.elapsed_us()), (30, 20));
    }
}
