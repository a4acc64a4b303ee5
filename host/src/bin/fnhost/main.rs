//! The `fnhost` binary: parse the command line, then either serve or act as a client.
//!
//! `serve` sets up tracing and the config, binds, and hands over to [`fnhost::run`]; the client
//! commands (`deploy`, `call`, `list`, `remove`) live in `client.rs`. This is the only place
//! that uses `anyhow`: errors print their cause chain, never a backtrace.

mod client;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use fnhost::config::{Config, LimitOverrides};
use fnhost::rpc::tcp::TcpLimits;

#[derive(Parser)]
#[command(
    name = "fnhost",
    version,
    about = "Run untrusted WebAssembly functions as JSON-RPC methods"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the host.
    Serve(ServeArgs),
    /// Upload a module and register it under a name.
    Deploy {
        /// The .wasm file.
        file: PathBuf,
        /// The name to register it under.
        #[arg(long)]
        name: String,
        /// Fuel per call (default: the host's).
        #[arg(long)]
        fuel: Option<u64>,
        /// Deadline per call in milliseconds (default: the host's).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Linear memory cap in MiB (default: the host's).
        #[arg(long)]
        memory_mib: Option<u64>,
        #[command(flatten)]
        remote: client::Remote,
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
        remote: client::Remote,
    },
    /// List deployed modules.
    List {
        #[command(flatten)]
        remote: client::Remote,
    },
    /// Remove a module and its history.
    Remove {
        name: String,
        #[command(flatten)]
        remote: client::Remote,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7878", env = "FNHOST_LISTEN")]
    listen: SocketAddr,
    /// Where modules, names and compiled artifacts are stored.
    #[arg(long, default_value = "fnhost-data", env = "FNHOST_DATA_DIR")]
    data_dir: PathBuf,
    /// Deploy every `*.wasm` in this directory at start, named after the file (same bytes: no-op).
    #[arg(long)]
    deploy_dir: Option<PathBuf>,
    /// Default fuel per call.
    #[arg(long)]
    fuel: Option<u64>,
    /// Default deadline per call, in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Default linear memory cap per instance, in MiB.
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Calls running at once, in total; more get `busy`.
    #[arg(long)]
    max_concurrent_calls: Option<u32>,
    /// Calls running at once per module name; more get `busy`.
    #[arg(long)]
    max_calls_per_module: Option<u32>,
    /// A module whose compile takes longer than this is refused (milliseconds).
    #[arg(long)]
    compile_timeout_ms: Option<u64>,
    /// Requests one JSON-RPC batch (or XML-RPC multicall) may hold.
    #[arg(long)]
    max_batch_len: Option<usize>,
    /// Answers of one batch (or multicall), all together, in MiB; members past it are answered
    /// `payload_too_large`.
    #[arg(long)]
    max_batch_response_mib: Option<usize>,
    /// Also serve newline-delimited JSON-RPC 2.0 over plain TCP on this address (off by default).
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// TCP: close a connection idle for this long (milliseconds).
    #[arg(long, default_value_t = TcpLimits::DEFAULT_IDLE_MS)]
    tcp_idle_timeout_ms: u64,
    /// TCP: a request line must arrive, and its answer be written, within this (milliseconds).
    #[arg(long, default_value_t = TcpLimits::DEFAULT_REQUEST_MS)]
    tcp_request_timeout_ms: u64,
    /// TCP: connections open at once; more get `busy` and are closed.
    #[arg(long, default_value_t = TcpLimits::DEFAULT_MAX_CONNECTIONS)]
    tcp_max_connections: usize,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Deploy {
            file,
            name,
            fuel,
            timeout_ms,
            memory_mib,
            remote,
        } => client::deploy(
            &remote,
            &file,
            &name,
            LimitOverrides {
                fuel,
                timeout_ms,
                memory_mib,
            },
        ),
        Command::Call {
            method,
            args,
            params,
            remote,
        } => client::call(&remote, &method, &args, params.as_deref()),
        Command::List { remote } => client::list(&remote),
        Command::Remove { name, remote } => client::remove(&remote, &name),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let mut config = Config::new(&args.data_dir);
    config.admin_token = std::env::var("FNHOST_ADMIN_TOKEN").ok();
    let defaults = LimitOverrides {
        fuel: args.fuel,
        timeout_ms: args.timeout_ms,
        memory_mib: args.memory_mib,
    };
    config.defaults = defaults
        .resolve(&config.defaults, &config.maxima)
        .map_err(|e| anyhow::anyhow!("{}", e.message))
        .context("bad default limits")?;
    if let Some(n) = args.max_concurrent_calls {
        anyhow::ensure!(n > 0, "--max-concurrent-calls must be above 0");
        config.max_concurrent_calls = n;
    }
    if let Some(n) = args.max_calls_per_module {
        anyhow::ensure!(n > 0, "--max-calls-per-module must be above 0");
        config.max_calls_per_module = n;
    }
    if let Some(ms) = args.compile_timeout_ms {
        anyhow::ensure!(ms > 0, "--compile-timeout-ms must be above 0");
        config.compile_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(n) = args.max_batch_len {
        anyhow::ensure!(n > 0, "--max-batch-len must be above 0");
        config.max_batch_len = n;
    }
    if let Some(mib) = args.max_batch_response_mib {
        anyhow::ensure!(mib > 0, "--max-batch-response-mib must be above 0");
        config.max_batch_response_bytes = mib.saturating_mul(1 << 20);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let state = fnhost::App::start(config)
            .await
            .with_context(|| format!("cannot start with data dir {}", args.data_dir.display()))?;
        if let Some(dir) = &args.deploy_dir {
            client::deploy_dir(&state, dir).await?;
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let tcp = match args.tcp {
            None => None,
            Some(tcp_addr) => {
                let tcp_listener = tokio::net::TcpListener::bind(tcp_addr)
                    .await
                    .with_context(|| format!("cannot listen on {tcp_addr} (--tcp)"))?;
                println!("fnhost tcp listening on {}", tcp_listener.local_addr()?);
                Some(tokio::spawn(fnhost::rpc::tcp::serve(
                    tcp_listener,
                    state.clone(),
                    TcpLimits {
                        idle: std::time::Duration::from_millis(args.tcp_idle_timeout_ms),
                        request: std::time::Duration::from_millis(args.tcp_request_timeout_ms),
                        max_connections: args.tcp_max_connections.max(1),
                    },
                    stopped.clone(),
                )))
            }
        };
        match &state.admin.path {
            Some(path) => println!("admin token: {}", path.display()),
            None => println!("admin token: from FNHOST_ADMIN_TOKEN"),
        }
        // Tests and scripts read this line to find the port.
        println!("fnhost listening on http://{addr}");
        tracing::info!(%addr, modules = state.registry.list().len(), "serving");
        let mut http_stop = stopped;
        fnhost::run(listener, state, async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        })
        .await?;
        if let Some(tcp) = tcp {
            let _ = tcp.await;
        }
        tracing::info!("stopped");
        Ok(std::process::ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
