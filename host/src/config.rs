//! Limits and paths, with defaults that are safe.
//!
//! [`Config`] is everything the operator can set. Per-call [`Limits`] come in two layers: the
//! defaults every function gets, and the maxima that per-function overrides (given at deploy
//! time) may never exceed. `README.md` documents each default; tests pin them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Kind};

/// Per-call limits in force for one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Fuel (roughly: wasm instructions) one call may spend, start function included.
    pub fuel: u64,
    /// Wall-clock deadline of one call, in milliseconds, start function and host calls included.
    pub timeout_ms: u64,
    /// Linear memory one instance may have, in bytes.
    pub memory_bytes: u64,
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Defaults: tens of millions of instructions, one second, 64 MiB.
pub const DEFAULT_LIMITS: Limits = Limits {
    fuel: 50_000_000,
    timeout_ms: 1_000,
    memory_bytes: 64 << 20,
};

/// Maxima: overrides above these are refused.
pub const MAX_LIMITS: Limits = Limits {
    fuel: 10_000_000_000,
    timeout_ms: 30_000,
    memory_bytes: 512 << 20,
};

/// Limits a deployer asked for (`PUT /v1/functions/{name}?fuel=..&timeout_ms=..&memory_mib=..`).
/// `None` means "the host default". Stored with the version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

impl LimitOverrides {
    /// The limits in force: each override, or the default; refused when above the maximum or zero.
    pub fn resolve(&self, defaults: &Limits, maxima: &Limits) -> Result<Limits, Error> {
        fn pick(name: &str, given: Option<u64>, default: u64, max: u64) -> Result<u64, Error> {
            match given {
                None => Ok(default),
                Some(0) => Err(
                    Error::new(Kind::BadLimits, format!("{name} must be above 0"))
                        .with("limit", name),
                ),
                Some(v) if v > max => Err(Error::new(
                    Kind::BadLimits,
                    format!("{name} {v} is above the host maximum {max}"),
                )
                .with("limit", name)
                .with("requested", v)
                .with("maximum", max)),
                Some(v) => Ok(v),
            }
        }
        Ok(Limits {
            fuel: pick("fuel", self.fuel, defaults.fuel, maxima.fuel)?,
            timeout_ms: pick(
                "timeout_ms",
                self.timeout_ms,
                defaults.timeout_ms,
                maxima.timeout_ms,
            )?,
            memory_bytes: pick(
                "memory_mib",
                self.memory_mib,
                defaults.memory_bytes >> 20,
                maxima.memory_bytes >> 20,
            )? << 20,
        })
    }
}

/// Everything the operator sets: the one home of every limit. [`Config::validate`] checks it
/// all, naming the flag of the first value that cannot work.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the HTTP listener (`--listen`).
    pub listen: SocketAddr,
    /// Address of the newline-delimited JSON-RPC listener (`--tcp`); none when `None`.
    pub tcp_listen: Option<SocketAddr>,
    /// Where the store lives: modules, names, precompiled artifacts, the admin token.
    pub data_dir: PathBuf,
    /// A shared store instead of the data directory's (`--store postgres://…`): names, modules
    /// and keys live there; the data dir keeps the admin token and compiled artifacts.
    pub store_url: Option<String>,
    /// The admin token; when `None`, one is generated in the data dir at first start.
    pub admin_token: Option<String>,
    /// Limits every function gets unless its deployment overrides them.
    pub defaults: Limits,
    /// Ceilings for overrides. Also sizes the instance pool's memory slots.
    pub maxima: Limits,
    /// Largest module upload, in bytes.
    pub max_module_bytes: usize,
    /// Largest `/rpc` request body, in bytes.
    pub max_request_bytes: usize,
    /// Largest output a guest may return, in bytes.
    pub max_result_bytes: usize,
    /// Calls running at once, in total; past it callers get `busy` at once. Also the number of
    /// instance slots in the pool.
    pub max_concurrent_calls: u32,
    /// Requests one JSON-RPC batch (or XML-RPC multicall) may hold.
    pub max_batch_len: usize,
    /// Bytes of answers one batch (or multicall) may hold, all members together: past it,
    /// further members are answered `payload_too_large` instead of their results, so a batch
    /// of large results cannot make the host hold `max_batch_len` × `max_result_bytes`.
    pub max_batch_response_bytes: usize,
    /// Modules compiled at once (compiles run on the blocking pool).
    pub compile_concurrency: usize,
    /// A compile taking longer than this is refused (the module is not stored).
    pub compile_timeout: Duration,
    /// Run each compile in this executable (`EXE compile-worker`), killed at the budget and
    /// capped by `compile_memory_bytes`; `None`: compile in process (tests, embedding).
    pub compile_worker: Option<PathBuf>,
    /// Address space one compile worker may use.
    pub compile_memory_bytes: u64,
    /// Functions a module may define; more is refused before compiling.
    pub max_functions: u32,
    /// Calls running at once per module name; past it callers get `busy`.
    pub max_calls_per_module: u32,
    /// Table elements one instance may have.
    pub max_table_elements: u32,
    /// Wasm stack one call may use, in bytes; deeper recursion traps.
    pub max_wasm_stack: usize,
    /// How often the engine's epoch advances; the deadline's resolution.
    pub epoch_tick: Duration,
    /// Fuel between cooperative yields to the async runtime: short calls never yield, long
    /// ones give other tasks a turn this often.
    pub fuel_yield_interval: u64,
    /// Guest log lines one call may write; more are dropped and counted.
    pub max_log_lines: u32,
    /// A guest log line is cut to this many bytes.
    pub max_log_message_bytes: usize,
    /// Recent guest log lines kept per module for `GET /v1/functions/{name}/logs`.
    pub log_ring_lines: usize,
    /// XML-RPC: how deep values in a call may nest (results: twice as deep).
    pub xmlrpc_max_depth: usize,
    /// TCP transport: a connection with no request for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// TCP transport: a request line must arrive completely, and its answer be written, within
    /// this.
    pub tcp_request_timeout: Duration,
    /// TCP transport: connections open at once; more get `busy` and are closed.
    pub tcp_max_connections: usize,
    /// A request head must arrive within this, from the connection's accept or from the first
    /// byte of a later request (TLS handshake included).
    pub header_timeout: Duration,
    /// A request body must arrive within this once its head has; a slower one is answered 408
    /// and nothing is dispatched.
    pub body_timeout: Duration,
    /// A kept-alive connection waiting longer than this for its next request is closed.
    pub idle_timeout: Duration,
    /// A write blocked longer than this on a client that does not read closes the connection.
    pub write_timeout: Duration,
    /// Connections open at once on every listener; `None`: sized from the open-file limit at
    /// start ([`crate::server::default_caps`]).
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address (trusted proxies exempt); `None`:
    /// sized from `max_connections`.
    pub max_connections_per_ip: Option<usize>,
    /// TLS for the HTTP listener (and the TCP one with `tcp_tls`); plain when `None`.
    pub tls: Option<TlsFiles>,
    /// Serve the TCP transport over TLS too (needs `tls`).
    pub tcp_tls: bool,
    /// Client addresses that may call; empty: everyone.
    pub allow_from: Vec<IpNet>,
    /// Client addresses that may use the admin API (`/v1`); empty: everyone.
    pub admin_allow_from: Vec<IpNet>,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The access mode of a deploy that does not give one (`?access=`).
    pub default_access: crate::store::Access,
    /// Client addresses that may read `/metrics` on the main listener (default: loopback).
    pub metrics_allow_from: Vec<IpNet>,
    /// Serve `/metrics` on this address instead of the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Calls per second (burst the same) each client address may make to `public` functions;
    /// `None`: no limit.
    pub public_rate_per_s: Option<u32>,
}

/// The PEM files of the server's certificate (a chain is allowed) and key, and optionally the
/// CA that client certificates must chain to (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// The settings a running host applies anew on SIGHUP ([`crate::App::reload`]): client
/// address rules, connection timeouts and caps, default limits. TLS certificates reload too
/// (`server::tls`). Everything else in [`Config`] needs a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub allow_from: Vec<IpNet>,
    pub admin_allow_from: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
    pub timeouts: crate::server::watch::Timeouts,
    pub body_timeout: Duration,
    pub caps: crate::server::Caps,
    pub defaults: Limits,
    pub default_access: crate::store::Access,
    pub public_rate_per_s: Option<u32>,
    pub metrics_allow_from: Vec<IpNet>,
}

impl Live {
    /// The live part of `config`, with connection caps sized from `open_files` where the
    /// config leaves them unset.
    pub fn of(config: &Config, open_files: u64) -> Self {
        let sized = crate::server::default_caps(open_files);
        let total = config.max_connections.unwrap_or(sized.total);
        Self {
            allow_from: config.allow_from.clone(),
            admin_allow_from: config.admin_allow_from.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            timeouts: crate::server::watch::Timeouts {
                header: config.header_timeout,
                idle: config.idle_timeout,
                write: config.write_timeout,
            },
            body_timeout: config.body_timeout,
            caps: crate::server::Caps {
                total,
                per_ip: config
                    .max_connections_per_ip
                    .unwrap_or_else(|| crate::server::per_ip_share(total)),
            },
            defaults: config.defaults,
            default_access: config.default_access,
            public_rate_per_s: config.public_rate_per_s,
            metrics_allow_from: config.metrics_allow_from.clone(),
        }
    }
}

/// The settings that differ between `running` and `new` but only take effect at a restart.
pub fn restart_only_differences(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    macro_rules! differs {
        ($($field:ident),*) => {$(
            if running.$field != new.$field {
                out.push(stringify!($field));
            }
        )*};
    }
    differs!(
        listen,
        tcp_listen,
        data_dir,
        store_url,
        admin_token,
        maxima,
        max_module_bytes,
        max_request_bytes,
        max_result_bytes,
        max_concurrent_calls,
        max_batch_len,
        max_batch_response_bytes,
        compile_concurrency,
        compile_timeout,
        compile_worker,
        compile_memory_bytes,
        max_functions,
        max_calls_per_module,
        max_table_elements,
        max_wasm_stack,
        epoch_tick,
        fuel_yield_interval,
        max_log_lines,
        max_log_message_bytes,
        log_ring_lines,
        xmlrpc_max_depth,
        tcp_idle_timeout,
        tcp_request_timeout,
        tcp_max_connections,
        tls,
        tcp_tls,
        metrics_listen
    );
    out
}

/// A setting that cannot work, named by its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    /// The flag (`--max-batch-len`) of the setting.
    pub flag: &'static str,
    pub message: String,
}

impl Config {
    /// A config with every default, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            tcp_listen: None,
            data_dir: data_dir.into(),
            store_url: None,
            admin_token: None,
            defaults: DEFAULT_LIMITS,
            maxima: MAX_LIMITS,
            max_module_bytes: 16 << 20,
            max_request_bytes: 1 << 20,
            max_result_bytes: 4 << 20,
            max_concurrent_calls: 128,
            max_batch_len: 1_000,
            max_batch_response_bytes: 16 << 20,
            compile_concurrency: 2,
            compile_timeout: Duration::from_secs(30),
            compile_worker: None,
            compile_memory_bytes: 2 << 30,
            max_functions: 20_000,
            max_calls_per_module: 64,
            max_table_elements: 10_000,
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(5),
            fuel_yield_interval: 2_000_000,
            max_log_lines: fnhost_abi::MAX_LOG_LINES,
            max_log_message_bytes: fnhost_abi::MAX_LOG_MESSAGE,
            log_ring_lines: 1_000,
            xmlrpc_max_depth: crate::rpc::xmlrpc::DEFAULT_MAX_DEPTH,
            tcp_idle_timeout: Duration::from_secs(60),
            tcp_request_timeout: Duration::from_secs(10),
            tcp_max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: None,
            max_connections_per_ip: None,
            tls: None,
            tcp_tls: false,
            allow_from: Vec::new(),
            admin_allow_from: Vec::new(),
            trusted_proxies: Vec::new(),
            default_access: crate::store::Access::Public,
            metrics_allow_from: vec![
                IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                IpNet::from(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
            ],
            metrics_listen: None,
            public_rate_per_s: None,
        }
    }

    /// Checks every setting; the error names the flag of the first that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn positive(flag: &'static str, ok: bool) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError {
                    flag,
                    message: "must be above 0".to_owned(),
                })
            }
        }
        let limit = |flag: &'static str, default: u64, max: u64| {
            if default == 0 {
                Err(ConfigError {
                    flag,
                    message: "must be above 0".to_owned(),
                })
            } else if default > max {
                Err(ConfigError {
                    flag,
                    message: format!("{default} is above the host maximum {max}"),
                })
            } else {
                Ok(())
            }
        };
        let (d, m) = (&self.defaults, &self.maxima);
        limit("--fuel", d.fuel, m.fuel)?;
        limit("--timeout-ms", d.timeout_ms, m.timeout_ms)?;
        limit("--memory-mib", d.memory_bytes >> 20, m.memory_bytes >> 20)?;
        positive("--max-concurrent-calls", self.max_concurrent_calls > 0)?;
        positive("--max-calls-per-module", self.max_calls_per_module > 0)?;
        positive("--compile-timeout-ms", !self.compile_timeout.is_zero())?;
        positive("--compile-memory-mib", self.compile_memory_bytes >> 20 > 0)?;
        positive("compile_concurrency", self.compile_concurrency > 0)?;
        positive("--max-batch-len", self.max_batch_len > 0)?;
        positive(
            "--max-batch-response-mib",
            self.max_batch_response_bytes > 0,
        )?;
        positive("max_module_bytes", self.max_module_bytes > 0)?;
        positive("max_request_bytes", self.max_request_bytes > 0)?;
        positive("max_result_bytes", self.max_result_bytes > 0)?;
        positive("max_functions", self.max_functions > 0)?;
        positive("max_table_elements", self.max_table_elements > 0)?;
        positive("max_wasm_stack", self.max_wasm_stack > 0)?;
        positive("epoch_tick", !self.epoch_tick.is_zero())?;
        positive("fuel_yield_interval", self.fuel_yield_interval > 0)?;
        positive("max_log_message_bytes", self.max_log_message_bytes > 0)?;
        positive("xmlrpc_max_depth", self.xmlrpc_max_depth > 0)?;
        positive("--tcp-idle-timeout-ms", !self.tcp_idle_timeout.is_zero())?;
        positive(
            "--tcp-request-timeout-ms",
            !self.tcp_request_timeout.is_zero(),
        )?;
        positive("--tcp-max-connections", self.tcp_max_connections > 0)?;
        positive("--public-rate-per-s", self.public_rate_per_s != Some(0))?;
        positive("--header-timeout-ms", !self.header_timeout.is_zero())?;
        positive("--body-timeout-ms", !self.body_timeout.is_zero())?;
        positive("--idle-timeout-ms", !self.idle_timeout.is_zero())?;
        positive("--write-timeout-ms", !self.write_timeout.is_zero())?;
        positive("--max-connections", self.max_connections != Some(0))?;
        positive(
            "--max-connections-per-ip",
            self.max_connections_per_ip != Some(0),
        )?;
        if let Some(url) = &self.store_url
            && !matches!(store_scheme(url), Some("postgres" | "postgresql"))
        {
            return Err(ConfigError {
                flag: "--store",
                message: format!(
                    "{:?} is not a store URL fnhost knows: give postgres://USER@HOST:PORT/DB",
                    store_scheme(url).map_or("(no scheme)".to_owned(), |s| format!("{s}:"))
                ),
            });
        }
        if self.tcp_tls && self.tls.is_none() {
            return Err(ConfigError {
                flag: "--tcp-tls",
                message: "needs --tls-cert and --tls-key".to_owned(),
            });
        }
        if self.tcp_tls && self.tcp_listen.is_none() {
            return Err(ConfigError {
                flag: "--tcp-tls",
                message: "needs --tcp ADDR (the TCP transport is off)".to_owned(),
            });
        }
        Ok(())
    }
}

/// The scheme of a store URL (`postgres` of `postgres://…`), never the rest (it may hold a
/// password).
pub fn store_scheme(url: &str) -> Option<&str> {
    url.split_once(':').map(|(scheme, _)| scheme)
}

impl LimitOverrides {
    /// Like [`LimitOverrides::resolve`], but an override above a maximum (the operator lowered
    /// it since the deploy) is clamped to it rather than refused, so the function stays up.
    pub fn clamped(&self, defaults: &Limits, maxima: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel).min(maxima.fuel),
            timeout_ms: self
                .timeout_ms
                .unwrap_or(defaults.timeout_ms)
                .min(maxima.timeout_ms),
            memory_bytes: self
                .memory_mib
                .map_or(defaults.memory_bytes, |m| m.saturating_mul(1 << 20))
                .min(maxima.memory_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `1234567` -> `1,234,567`, as the README writes numbers.
    fn grouped(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    /// The README's limits table states these defaults; they must be the code's.
    #[test]
    fn readme_limits_table_matches_the_defaults() {
        let readme = include_str!("../../README.md");
        let c = Config::new("x");
        let rows = [
            format!(
                "| {} | {} |",
                grouped(c.defaults.fuel),
                grouped(c.maxima.fuel)
            ),
            format!(
                "| {} ms | {} ms |",
                grouped(c.defaults.timeout_ms),
                grouped(c.maxima.timeout_ms)
            ),
            format!(
                "| {} MiB | {} MiB |",
                c.defaults.memory_bytes >> 20,
                c.maxima.memory_bytes >> 20
            ),
            format!(
                "| table elements per instance | {} |",
                grouped(c.max_table_elements.into())
            ),
            format!("| wasm stack per call | {} KiB |", c.max_wasm_stack >> 10),
            format!(
                "| functions defined per module | {} |",
                grouped(c.max_functions.into())
            ),
            format!(
                "| compile time per upload | {} s |",
                c.compile_timeout.as_secs()
            ),
            format!(
                "compiles run off the request workers, {} at a time;",
                c.compile_concurrency
            ),
            format!("| module upload | {} MiB |", c.max_module_bytes >> 20),
            format!(
                "| `/rpc` request body | {} MiB |",
                c.max_request_bytes >> 20
            ),
            format!("| guest result | {} MiB |", c.max_result_bytes >> 20),
            format!(
                "| concurrent calls, in total | {} |",
                c.max_concurrent_calls
            ),
            format!(
                "| concurrent calls, per module | {} |",
                c.max_calls_per_module
            ),
            format!(
                "| {} | – | `invalid_request`",
                grouped(c.max_batch_len as u64)
            ),
            format!(
                "| answers of one batch (or multicall), together | {} MiB |",
                c.max_batch_response_bytes >> 20
            ),
            format!(
                "| {} ({} KiB each) |",
                fnhost_abi::MAX_LOG_LINES,
                fnhost_abi::MAX_LOG_MESSAGE >> 10
            ),
        ];
        let tcp_row = format!(
            "| {} s / {} s / {} |",
            c.tcp_idle_timeout.as_secs(),
            c.tcp_request_timeout.as_secs(),
            c.tcp_max_connections
        );
        let ms = |d: Duration| grouped(d.as_millis() as u64);
        let network = [
            format!("| `--header-timeout-ms` | {} |", ms(c.header_timeout)),
            format!("| `--body-timeout-ms` | {} |", ms(c.body_timeout)),
            format!("| `--idle-timeout-ms` | {} |", ms(c.idle_timeout)),
            format!("| `--write-timeout-ms` | {} |", ms(c.write_timeout)),
        ];
        let caps = crate::server::default_caps(1024);
        let caps_line = format!(
            "with the common limit of 1,024 the\ncaps are {} and {}.",
            caps.total, caps.per_ip
        );
        for row in rows
            .into_iter()
            .chain([tcp_row])
            .chain(network)
            .chain([caps_line])
        {
            assert!(
                readme.contains(&row),
                "README.md's limits table lacks `{row}`"
            );
        }
    }

    #[test]
    fn the_defaults_validate_and_each_bad_value_names_its_flag() {
        assert_eq!(Config::new("x").validate(), Ok(()));
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 6] = [
            ("--max-concurrent-calls", |c| c.max_concurrent_calls = 0),
            ("--max-batch-len", |c| c.max_batch_len = 0),
            ("--tcp-max-connections", |c| c.tcp_max_connections = 0),
            ("--compile-timeout-ms", |c| {
                c.compile_timeout = Duration::ZERO
            }),
            ("--fuel", |c| c.defaults.fuel = c.maxima.fuel + 1),
            ("xmlrpc_max_depth", |c| c.xmlrpc_max_depth = 0),
        ];
        for (flag, spoil) in cases {
            let mut c = Config::new("x");
            spoil(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.flag, flag, "{e}");
            assert!(e.to_string().starts_with(flag), "{e}");
        }
    }

    #[test]
    fn a_store_url_must_be_postgres_and_is_named_without_its_secret() {
        let mut c = Config::new("x");
        for ok in ["postgres://u:pw@h/db", "postgresql://h/db"] {
            c.store_url = Some(ok.into());
            assert_eq!(c.validate(), Ok(()), "{ok}");
        }
        c.store_url = Some("mysql://root:hunter2@db/x".into());
        let e = c.validate().unwrap_err();
        assert_eq!(e.flag, "--store");
        assert!(e.message.contains("\"mysql:\""), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn clamping_keeps_values_within_maxima() {
        let o = LimitOverrides {
            fuel: Some(u64::MAX),
            timeout_ms: Some(5),
            memory_mib: Some(u64::MAX),
        };
        let l = o.clamped(&DEFAULT_LIMITS, &MAX_LIMITS);
        assert_eq!(
            (l.fuel, l.timeout_ms, l.memory_bytes),
            (MAX_LIMITS.fuel, 5, MAX_LIMITS.memory_bytes)
        );
    }

    #[test]
    fn overrides_resolve_against_defaults_and_maxima() {
        let none = LimitOverrides::default();
        assert_eq!(
            none.resolve(&DEFAULT_LIMITS, &MAX_LIMITS).unwrap(),
            DEFAULT_LIMITS
        );

        let some = LimitOverrides {
            fuel: Some(1000),
            timeout_ms: None,
            memory_mib: Some(8),
        };
        let l = some.resolve(&DEFAULT_LIMITS, &MAX_LIMITS).unwrap();
        assert_eq!(l.fuel, 1000);
        assert_eq!(l.timeout_ms, DEFAULT_LIMITS.timeout_ms);
        assert_eq!(l.memory_bytes, 8 << 20);
    }

    #[test]
    fn overrides_above_maximum_or_zero_are_refused() {
        let too_much = LimitOverrides {
            fuel: Some(MAX_LIMITS.fuel + 1),
            ..Default::default()
        };
        let e = too_much.resolve(&DEFAULT_LIMITS, &MAX_LIMITS).unwrap_err();
        assert_eq!(e.kind, Kind::BadLimits);
        assert!(
            e.message.contains("above the host maximum"),
            "{}",
            e.message
        );

        let zero = LimitOverrides {
            memory_mib: Some(0),
            ..Default::default()
        };
        assert_eq!(
            zero.resolve(&DEFAULT_LIMITS, &MAX_LIMITS).unwrap_err().kind,
            Kind::BadLimits
        );
    }
}
