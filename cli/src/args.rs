//! The command line: every subcommand and flag, declared once.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use fnhost::config::LimitOverrides;

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
    Serve(ServeArgs),
    /// Upload a module and register it under a name.
    Deploy {
        /// The .wasm file.
        file: PathBuf,
        /// The name to register it under.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
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

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878", env = "FNHOST_LISTEN")]
    pub listen: SocketAddr,
    /// Where modules, names and compiled artifacts are stored.
    #[arg(long, default_value = "fnhost-data", env = "FNHOST_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Deploy every `*.wasm` in this directory at start, named after the file (same bytes: no-op).
    #[arg(long)]
    pub deploy_dir: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
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
    /// Also serve newline-delimited JSON-RPC 2.0 over plain TCP on this address (off by default).
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
}
