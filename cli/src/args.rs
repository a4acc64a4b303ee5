//! The command line: every subcommand and flag, declared once.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use fnhost::config::LimitOverrides;
use serde::Deserialize;

use crate::client::Remote;

#[derive(Parser)]
#[command(
    name = "fnhost",
    version,
    about = "Run untrusted WebAssembly functions as JSON-RPC methods"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the host.
    Serve(Box<ServeArgs>),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Upload a module and register it under a name.
    Deploy {
        /// The .wasm file.
        file: PathBuf,
        /// The name to register it under.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// `public` or `key` (default: the host's --default-access).
        #[arg(long)]
        access: Option<String>,
        /// Who may call it (CIDRs, within the host's --allow-from; repeatable).
        #[arg(long = "allow-from", value_name = "CIDR")]
        allow_from: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Call a method: `fnhost call math.add 7 3` or `fnhost call directory.search --params '{"last_name":"Smith"}'`.
    Call {
        /// `<module>.<function>`.
        method: String,
        /// Positional params; each is read as JSON, or taken as a string when it is not JSON.
        args: Vec<String>,
        /// The whole params value as JSON (an array or an object); excludes ARGS.
        #[arg(long, conflicts_with = "args")]
        params: Option<String>,
        /// An invoke key, for functions deployed with `access=key`.
        #[arg(long, env = "FNHOST_KEY", hide_env_values = true)]
        key: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List deployed modules.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a module and its history.
    Remove {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage caller keys (admin token): create, list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit log (admin token).
    Audit {
        /// Entries numbered above this.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make an earlier version current again (by default the one before the current).
    Rollback {
        name: String,
        /// A version number or a sha256.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a name's recent guest log lines; with `-f`, follow new ones.
    Logs {
        name: String,
        /// Keep printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
        /// Recent lines to print first.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Create a guest crate, ready to build, test and deploy: `fnhost new hello`.
    New {
        /// The crate's name, which is also the name it deploys as.
        name: String,
        /// The fnhost guest SDK (`guest-sdk/sdk` of an fnhost checkout) [default: the one of
        /// the checkout this fnhost was built from, when it is still there].
        #[arg(long, env = "FNHOST_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Run one call in process, no server, under the host's limits: `fnhost run hello.wasm
    /// greet Ann`; or `fnhost run NAME@V FUNCTION ...` with a stored version's bytes.
    Run(RunArgs),
    /// Print what an upload of a module would accept or refuse, and why.
    Inspect {
        /// The .wasm file.
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Watch a guest crate: rebuild on save, redeploy, show compiler errors and new methods.
    Dev(DevArgs),
    /// Compile one module in a child process (used by `serve`; module on stdin).
    #[command(hide = true)]
    CompileWorker {
        settings: String,
        engine_key: String,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// A `.wasm` file, or `NAME@VERSION` (`NAME` alone: the current version) of the host at
    /// --url, fetched with deploy rights.
    pub target: String,
    /// The function to call.
    pub function: String,
    /// Positional params; each is read as JSON, or taken as a string when it is not JSON.
    pub args: Vec<String>,
    /// The whole params value as JSON (an array or an object); excludes ARGS.
    #[arg(long, conflicts_with = "args")]
    pub params: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Args)]
pub struct DevArgs {
    /// The guest crate [default: the current directory].
    pub dir: Option<PathBuf>,
    /// The name to deploy as [default: the crate's name].
    #[arg(long)]
    pub name: Option<String>,
    /// A call to make after each deploy: `--call "add 1 2"` (function, then params).
    #[arg(long)]
    pub call: Option<String>,
    /// Deploy to this host instead of starting a local one with a temporary store.
    #[arg(long)]
    pub url: Option<String>,
    /// The admin token (or a deploy key) of --url.
    #[arg(long, env = "FNHOST_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// A label for people.
        #[arg(long)]
        name: String,
        /// `invoke` (call `key` functions) or `deploy` (deploy, remove, roll back names).
        #[arg(long)]
        role: String,
        /// Scope patterns: `math`, `team-a-*`, `billing.charge` (repeatable).
        #[arg(long = "scope", required = true)]
        scope: Vec<String>,
        /// RFC 3339 time after which the key is refused.
        #[arg(long)]
        expires_at: Option<String>,
        /// Calls per second (burst the same), for an invoke key.
        #[arg(long)]
        rate_per_s: Option<u32>,
        /// Caps on what a deploy key may ask for.
        #[arg(long)]
        max_fuel: Option<u64>,
        #[arg(long)]
        max_memory_mib: Option<u64>,
        #[arg(long)]
        max_timeout_ms: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a key: refused from the next request on.
    Revoke {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// The per-call limits: the host's defaults for `serve`, one function's for `deploy`.
#[derive(Args, Clone, Copy)]
pub struct LimitArgs {
    /// Fuel per call (default: the host's).
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Deadline per call in milliseconds (default: the host's).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Linear memory cap per instance in MiB (default: the host's).
    #[arg(long)]
    pub memory_mib: Option<u64>,
}

impl LimitArgs {
    pub fn overrides(self) -> LimitOverrides {
        LimitOverrides {
            fuel: self.fuel,
            timeout_ms: self.timeout_ms,
            memory_mib: self.memory_mib,
        }
    }
}

/// The settings of `fnhost serve`: each is a flag and, with the same name in snake_case, a key
/// of the config file (`--config`); a flag given on the command line wins over the file.
/// Unset settings take the library's defaults (`fnhost::Config::new`).
#[derive(Args, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeArgs {
    /// A TOML file holding any of these settings (keys: the flag names in snake_case). Reloaded
    /// on SIGHUP; `fnhost config check FILE` validates it.
    #[arg(long, env = "FNHOST_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "FNHOST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where modules, names and compiled artifacts are stored [default: fnhost-data].
    #[arg(long, env = "FNHOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep names, modules and keys in this shared store instead of the data dir, for several
    /// hosts serving one registry: postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    #[arg(long, env = "FNHOST_STORE", hide_env_values = true, value_name = "URL")]
    pub store: Option<String>,
    /// Deploy every `*.wasm` in this directory at start, named after the file (same bytes: no-op).
    #[arg(long)]
    pub deploy_dir: Option<PathBuf>,
    /// Default fuel per call.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Default deadline per call, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Default linear memory cap per instance, in MiB.
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// Calls running at once, in total; more get `busy`.
    #[arg(long)]
    pub max_concurrent_calls: Option<u32>,
    /// Calls running at once per module name; more get `busy`.
    #[arg(long)]
    pub max_calls_per_module: Option<u32>,
    /// A module whose compile takes longer than this is refused (milliseconds).
    #[arg(long)]
    pub compile_timeout_ms: Option<u64>,
    /// Requests one JSON-RPC batch (or XML-RPC multicall) may hold.
    #[arg(long)]
    pub max_batch_len: Option<usize>,
    /// Answers of one batch (or multicall), all together, in MiB; members past it are answered
    /// `payload_too_large`.
    #[arg(long)]
    pub max_batch_response_mib: Option<usize>,
    /// Also serve newline-delimited JSON-RPC 2.0 over TCP on this address (off by default).
    #[arg(long)]
    pub tcp: Option<SocketAddr>,
    /// TCP: close a connection idle for this long (milliseconds) [default: 60000].
    #[arg(long)]
    pub tcp_idle_timeout_ms: Option<u64>,
    /// TCP: a request line must arrive, and its answer be written, within this (milliseconds)
    /// [default: 10000].
    #[arg(long)]
    pub tcp_request_timeout_ms: Option<u64>,
    /// TCP: connections open at once; more get `busy` and are closed [default: 256].
    #[arg(long)]
    pub tcp_max_connections: Option<usize>,
    /// A request head must arrive within this (milliseconds), from the connection's accept
    /// or the first byte of a later request [default: 10000].
    #[arg(long)]
    pub header_timeout_ms: Option<u64>,
    /// A request body must arrive within this after its head (milliseconds); a slower one is
    /// answered 408 and nothing runs [default: 30000].
    #[arg(long)]
    pub body_timeout_ms: Option<u64>,
    /// A kept-alive connection idle for this long is closed (milliseconds) [default: 60000].
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// A write blocked this long on a client that does not read closes the connection
    /// (milliseconds) [default: 30000].
    #[arg(long)]
    pub write_timeout_ms: Option<u64>,
    /// Connections open at once on every listener; more are closed at once [default: 3/4 of
    /// the open-file limit left after 128].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address (trusted proxies exempt) [default:
    /// 1/8 of --max-connections, at least 8].
    #[arg(long)]
    pub max_connections_per_ip: Option<usize>,
    /// Serve HTTPS with this certificate (PEM; a chain is allowed); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates that chain to this CA (PEM): mutual TLS.
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve the TCP transport (--tcp) over TLS too, with the same certificate.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tcp_tls: Option<bool>,
    /// Client addresses that may call (CIDR, repeatable or comma-separated) [default: everyone].
    #[arg(long = "allow-from", value_name = "CIDR")]
    pub allow_from: Vec<String>,
    /// Client addresses that may use the admin API (/v1) [default: everyone].
    #[arg(long = "admin-allow-from", value_name = "CIDR")]
    pub admin_allow_from: Vec<String>,
    /// Peers whose X-Forwarded-For / Forwarded headers are believed (CIDR, repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxy: Vec<String>,
    /// The access of a deploy that does not say: `public` (anyone who reaches the host may
    /// call) or `key` (an invoke key is needed) [default: public].
    #[arg(long)]
    pub default_access: Option<String>,
    /// Calls per second (burst the same) each client address may make to public functions
    /// [default: no limit].
    #[arg(long)]
    pub public_rate_per_s: Option<u32>,
    /// Address space one compile may use, in MiB (each compile runs in a child process,
    /// killed at the compile budget) [default: 2048].
    #[arg(long)]
    pub compile_memory_mib: Option<u64>,
    /// `text` or `json` log lines on stderr [default: text].
    #[arg(long)]
    pub log_format: Option<String>,
    /// Client addresses that may read /metrics on the main listener [default: loopback].
    #[arg(long = "metrics-allow-from", value_name = "CIDR")]
    pub metrics_allow_from: Vec<String>,
    /// Serve /metrics on this address instead of the main listener.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// These flags over `file`: each setting given here wins, the file fills in the rest.
    pub fn over(self, file: ServeArgs) -> ServeArgs {
        macro_rules! pick {
            ($($field:ident),* ; $($list:ident),*) => {
                ServeArgs {
                    config: self.config,
                    $($field: self.$field.or(file.$field),)*
                    $($list: if self.$list.is_empty() { file.$list } else { self.$list },)*
                }
            };
        }
        pick!(
            listen, data_dir, store, deploy_dir, fuel, timeout_ms, memory_mib, max_concurrent_calls,
            max_calls_per_module, compile_timeout_ms, max_batch_len, max_batch_response_mib, tcp,
            tcp_idle_timeout_ms, tcp_request_timeout_ms, tcp_max_connections, header_timeout_ms,
            body_timeout_ms, idle_timeout_ms, write_timeout_ms, max_connections,
            max_connections_per_ip, tls_cert, tls_key, tls_client_ca, tcp_tls, default_access,
            public_rate_per_s, compile_memory_mib, log_format, metrics_listen;
            allow_from, admin_allow_from, trusted_proxy, metrics_allow_from
        )
    }
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file: says which key is wrong and why, exit status 1 if one is.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}
