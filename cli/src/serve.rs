//! `fnhost serve`: flags → [`Config`], logging, then the library's server until SIGTERM or
//! SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use fnhost::Config;
use fnhost::server::{Server, shutdown_signal};

use crate::args::ServeArgs;

/// Overwrites `slot` with the flag's value when it was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// The config the flags describe; [`Config::validate`] (run by `App::start`) names a bad one.
fn config(args: &ServeArgs) -> Config {
    let mut config = Config::new(&args.data_dir);
    config.listen = args.listen;
    config.tcp_listen = args.tcp;
    config.admin_token = std::env::var("FNHOST_ADMIN_TOKEN").ok();
    let defaults = &mut config.defaults;
    let limits = args.limits;
    defaults.fuel = limits.fuel.unwrap_or(defaults.fuel);
    defaults.timeout_ms = limits.timeout_ms.unwrap_or(defaults.timeout_ms);
    defaults.memory_bytes = limits
        .memory_mib
        .map_or(defaults.memory_bytes, |m| m.saturating_mul(1 << 20));
    let ms = Duration::from_millis;
    set(&mut config.max_concurrent_calls, args.max_concurrent_calls);
    set(&mut config.max_calls_per_module, args.max_calls_per_module);
    set(&mut config.max_batch_len, args.max_batch_len);
    set(&mut config.tcp_max_connections, args.tcp_max_connections);
    set(&mut config.compile_timeout, args.compile_timeout_ms.map(ms));
    set(
        &mut config.tcp_idle_timeout,
        args.tcp_idle_timeout_ms.map(ms),
    );
    set(
        &mut config.tcp_request_timeout,
        args.tcp_request_timeout_ms.map(ms),
    );
    set(
        &mut config.max_batch_response_bytes,
        args.max_batch_response_mib
            .map(|m| m.saturating_mul(1 << 20)),
    );
    config
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let config = config(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let state = fnhost::App::start(config)
            .await
            .with_context(|| format!("cannot start with data dir {}", args.data_dir.display()))?;
        if let Some(dir) = &args.deploy_dir {
            crate::client::deploy_dir(&state, dir).await?;
        }
        let server = Server::bind(state.clone()).await?;
        let addr = server.http_addr()?;
        if let Some(tcp) = server.tcp_addr() {
            println!("fnhost tcp listening on {}", tcp?);
        }
        match &state.admin.path {
            Some(path) => println!("admin token: {}", path.display()),
            None => println!("admin token: from FNHOST_ADMIN_TOKEN"),
        }
        // Tests and scripts read this line to find the port.
        println!("fnhost listening on http://{addr}");
        tracing::info!(%addr, modules = state.registry.list().len(), "serving");
        server.run(shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parsed(flags: &[&str]) -> Config {
        let mut argv = vec!["fnhost", "serve"];
        argv.extend_from_slice(flags);
        match crate::args::Cli::parse_from(argv).command {
            crate::args::Command::Serve(args) => config(&args),
            _ => unreachable!(),
        }
    }

    #[test]
    fn no_flags_is_the_library_default() {
        let c = parsed(&[]);
        let d = Config::new("fnhost-data");
        assert_eq!(c.defaults, d.defaults);
        assert_eq!(c.max_batch_len, d.max_batch_len);
        assert_eq!(c.tcp_idle_timeout, d.tcp_idle_timeout);
        assert_eq!(c.tcp_listen, None);
    }

    #[test]
    fn each_flag_lands_in_its_setting_and_a_bad_one_is_named() {
        let c = parsed(&[
            "--fuel",
            "7",
            "--memory-mib",
            "3",
            "--tcp",
            "127.0.0.1:0",
            "--tcp-max-connections",
            "5",
            "--max-batch-response-mib",
            "2",
        ]);
        assert_eq!(c.defaults.fuel, 7);
        assert_eq!(c.defaults.memory_bytes, 3 << 20);
        assert_eq!(c.tcp_max_connections, 5);
        assert_eq!(c.max_batch_response_bytes, 2 << 20);
        assert!(c.tcp_listen.is_some());
        let e = parsed(&["--tcp-max-connections", "0"])
            .validate()
            .unwrap_err();
        assert_eq!(e.flag, "--tcp-max-connections");
        let e = parsed(&["--fuel", "0"]).validate().unwrap_err();
        assert_eq!(e.flag, "--fuel");
    }
}
