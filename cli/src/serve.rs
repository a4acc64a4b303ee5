//! `fnhost serve`: flags over the config file → [`Config`], logging, then the library's
//! server until SIGTERM or SIGINT; SIGHUP reads the file again and applies what a running
//! host can change. `fnhost config check FILE` validates a file without starting anything.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use fnhost::Config;
use fnhost::config::{ConfigError, TlsFiles};
use fnhost::server::{Server, shutdown_signal};

use crate::args::ServeArgs;

/// Reads a config file: TOML whose keys are `serve`'s flags in snake_case. The error names
/// the file, the line and the key.
fn read_file(path: &Path) -> Result<ServeArgs> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// The settings in force: the flags over the config file, when there is one.
fn settings(flags: &ServeArgs) -> Result<ServeArgs> {
    Ok(match &flags.config {
        Some(path) => flags.clone().over(read_file(path)?),
        None => flags.clone(),
    })
}

/// Overwrites `slot` with the setting's value when it was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Names a setting both ways: `max_batch_len (--max-batch-len)`.
fn named(e: ConfigError) -> anyhow::Error {
    match e.flag.strip_prefix("--") {
        Some(flag) => anyhow!("{} ({}): {}", flag.replace('-', "_"), e.flag, e.message),
        None => anyhow!("{}: {}", e.flag, e.message),
    }
}

/// The config the settings describe, validated.
fn config(args: &ServeArgs) -> Result<Config> {
    let mut config = Config::new(
        args.data_dir
            .clone()
            .unwrap_or_else(|| "fnhost-data".into()),
    );
    set(&mut config.listen, args.listen);
    config.tcp_listen = args.tcp;
    config.store_url = args.store.clone();
    config.admin_token = std::env::var("FNHOST_ADMIN_TOKEN").ok();
    let defaults = &mut config.defaults;
    set(&mut defaults.fuel, args.fuel);
    set(&mut defaults.timeout_ms, args.timeout_ms);
    set(
        &mut defaults.memory_bytes,
        args.memory_mib.map(|m| m.saturating_mul(1 << 20)),
    );
    let ms = |v: Option<u64>| v.map(Duration::from_millis);
    set(&mut config.max_concurrent_calls, args.max_concurrent_calls);
    set(&mut config.max_calls_per_module, args.max_calls_per_module);
    set(&mut config.max_batch_len, args.max_batch_len);
    set(&mut config.tcp_max_connections, args.tcp_max_connections);
    set(&mut config.compile_timeout, ms(args.compile_timeout_ms));
    set(&mut config.tcp_idle_timeout, ms(args.tcp_idle_timeout_ms));
    set(
        &mut config.tcp_request_timeout,
        ms(args.tcp_request_timeout_ms),
    );
    set(&mut config.header_timeout, ms(args.header_timeout_ms));
    set(&mut config.body_timeout, ms(args.body_timeout_ms));
    set(&mut config.idle_timeout, ms(args.idle_timeout_ms));
    set(&mut config.write_timeout, ms(args.write_timeout_ms));
    set(
        &mut config.max_batch_response_bytes,
        args.max_batch_response_mib
            .map(|m| m.saturating_mul(1 << 20)),
    );
    config.max_connections = args.max_connections;
    config.max_connections_per_ip = args.max_connections_per_ip;
    config.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        }),
        (None, None) if args.tls_client_ca.is_some() => {
            return Err(anyhow!(
                "tls_client_ca (--tls-client-ca): needs --tls-cert and --tls-key"
            ));
        }
        (None, None) => None,
        _ => {
            return Err(anyhow!(
                "tls_cert and tls_key (--tls-cert, --tls-key) go together"
            ));
        }
    };
    config.tcp_tls = args.tcp_tls.unwrap_or(false);
    if let Some(access) = &args.default_access {
        config.default_access = access
            .parse()
            .map_err(|why: String| anyhow!("default_access (--default-access): {why}"))?;
    }
    config.public_rate_per_s = args.public_rate_per_s;
    set(
        &mut config.compile_memory_bytes,
        args.compile_memory_mib.map(|m| m.saturating_mul(1 << 20)),
    );
    config.metrics_listen = args.metrics_listen;
    // Each compile runs in this same binary, re-executed as a worker.
    config.compile_worker = fnhost::sandbox::worker::current_exe();
    let rule = |flag, items: &[String]| {
        fnhost::net::parse_rule(flag, items).map_err(|(flag, why)| anyhow!("{flag}: {why}"))
    };
    config.allow_from = rule("allow_from (--allow-from)", &args.allow_from)?;
    config.admin_allow_from = rule(
        "admin_allow_from (--admin-allow-from)",
        &args.admin_allow_from,
    )?;
    config.trusted_proxies = rule("trusted_proxy (--trusted-proxy)", &args.trusted_proxy)?;
    if !args.metrics_allow_from.is_empty() {
        config.metrics_allow_from = rule(
            "metrics_allow_from (--metrics-allow-from)",
            &args.metrics_allow_from,
        )?;
    }
    config.validate().map_err(named)?;
    Ok(config)
}

/// `fnhost config check FILE`.
pub fn check(file: &Path) -> Result<ExitCode> {
    let config = config(&read_file(file)?)?;
    if let Some(tls) = &config.tls {
        fnhost::server::tls::Tls::load(tls).map_err(|e| anyhow!("the TLS files: {e}"))?;
    }
    println!("{}: ok", file.display());
    Ok(ExitCode::SUCCESS)
}

/// Log lines on stderr: text (coloured for a terminal only) or one JSON object per line.
fn init_logging(format: Option<&str>) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.unwrap_or("text") {
        "text" => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        "json" => builder.json().with_current_span(true).init(),
        other => {
            return Err(anyhow!(
                "log_format (--log-format): {other:?} is neither `text` nor `json`"
            ));
        }
    }
    Ok(())
}

pub fn serve(flags: ServeArgs) -> Result<ExitCode> {
    let args = settings(&flags)?;
    init_logging(args.log_format.as_deref())?;
    let config = config(&args)?;
    // Before any other thread exists: growing the fd table later stalls a request.
    fnhost::server::raise_open_files();
    match fnhost::server::reserve_fd_table() {
        Ok(entries) => tracing::debug!(entries, "file-descriptor table reserved"),
        Err(e) => tracing::warn!(error = %e, "cannot reserve the file-descriptor table"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let state = fnhost::App::start(config)
            .await
            .with_context(|| format!("cannot start with data dir {}", data_dir.display()))?;
        if let Some(dir) = &args.deploy_dir {
            crate::client::deploy_dir(&state, dir).await?;
        }
        let server = Server::bind(state.clone()).await?;
        let addr = server.http_addr()?;
        if let Some(tcp) = server.tcp_addr() {
            println!("fnhost tcp listening on {}", tcp?);
        }
        if let Some(metrics) = server.metrics_addr() {
            println!("fnhost metrics listening on http://{}", metrics?);
        }
        match &state.admin.path {
            Some(path) => println!("admin token: {}", path.display()),
            None => println!("admin token: from FNHOST_ADMIN_TOKEN"),
        }
        let scheme = if state.tls.is_some() { "https" } else { "http" };
        // Tests and scripts read this line to find the port.
        println!("fnhost listening on {scheme}://{addr}");
        tracing::info!(%addr, modules = state.registry.list().len(), "serving");
        let reloader = tokio::spawn(reload_on_sighup(state.clone(), flags));
        if let Some(tls) = &state.tls {
            tls.watch();
        }
        server.run(shutdown_signal()).await;
        reloader.abort();
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// On every SIGHUP: the flags over the config file, read again; a file that does not parse or
/// validate changes nothing and says why.
async fn reload_on_sighup(app: fnhost::AppState, flags: ServeArgs) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the config will not reload");
        return;
    };
    while hangup.recv().await.is_some() {
        match settings(&flags).and_then(|args| config(&args)) {
            Ok(config) => match app.reload(&config).await {
                Ok(restart) if restart.is_empty() => {}
                Ok(restart) => tracing::warn!(?restart, "some changes need a restart"),
                Err(e) => {
                    tracing::error!(error = %named(e), "config NOT reloaded; nothing changed")
                }
            },
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                "config NOT reloaded; nothing changed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["fnhost", "serve"];
        argv.extend_from_slice(flags);
        match crate::args::Cli::parse_from(argv).command {
            crate::args::Command::Serve(args) => *args,
            _ => unreachable!(),
        }
    }

    fn parsed(f: &[&str]) -> Result<Config> {
        config(&flags(f))
    }

    #[test]
    fn no_flags_is_the_library_default() {
        let c = parsed(&[]).unwrap();
        let d = Config::new("fnhost-data");
        assert_eq!(c.defaults, d.defaults);
        assert_eq!(c.max_batch_len, d.max_batch_len);
        assert_eq!(c.tcp_idle_timeout, d.tcp_idle_timeout);
        assert_eq!(c.header_timeout, d.header_timeout);
        assert_eq!(c.tcp_listen, None);
        assert_eq!(c.listen, d.listen);
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
            "--allow-from",
            "10.0.0.0/8,127.0.0.1",
            "--allow-from",
            "::1",
            "--header-timeout-ms",
            "1500",
        ])
        .unwrap();
        assert_eq!(c.defaults.fuel, 7);
        assert_eq!(c.defaults.memory_bytes, 3 << 20);
        assert_eq!(c.tcp_max_connections, 5);
        assert_eq!(c.max_batch_response_bytes, 2 << 20);
        assert_eq!(c.allow_from.len(), 3);
        assert_eq!(c.header_timeout, Duration::from_millis(1500));
        assert!(c.tcp_listen.is_some());
        let e = parsed(&["--tcp-max-connections", "0"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "tcp_max_connections (--tcp-max-connections): must be above 0"
        );
        let e = parsed(&["--fuel", "0"]).unwrap_err().to_string();
        assert!(e.starts_with("fuel (--fuel)"), "{e}");
        let e = parsed(&["--allow-from", "10.0.0.0/99"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("allow_from (--allow-from)"), "{e}");
        let e = parsed(&["--tcp-tls"]).unwrap_err().to_string();
        assert!(e.contains("--tcp-tls"), "{e}");
    }

    #[test]
    fn a_file_equal_to_the_flags_gives_the_same_config_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fnhost.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nfuel = 7\nmemory_mib = 3\ntcp = \"127.0.0.1:0\"\n\
             allow_from = [\"10.0.0.0/8\", \"127.0.0.1\"]\nheader_timeout_ms = 1500\ntcp_tls = false\n",
        )
        .unwrap();
        let from_file =
            config(&settings(&flags(&["--config", path.to_str().unwrap()])).unwrap()).unwrap();
        let from_flags = parsed(&[
            "--listen",
            "127.0.0.1:9999",
            "--fuel",
            "7",
            "--memory-mib",
            "3",
            "--tcp",
            "127.0.0.1:0",
            "--allow-from",
            "10.0.0.0/8",
            "--allow-from",
            "127.0.0.1",
            "--header-timeout-ms",
            "1500",
        ])
        .unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{from_flags:?}"));
        let over = config(
            &settings(&flags(&["--config", path.to_str().unwrap(), "--fuel", "9"])).unwrap(),
        )
        .unwrap();
        assert_eq!(over.defaults.fuel, 9, "the flag wins");
        assert_eq!(over.defaults.memory_bytes, 3 << 20, "the file fills in");
    }

    #[test]
    fn a_bad_key_or_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "fuel = 7\nmax_batch_lenn = 3\n").unwrap();
        let e = format!("{:#}", check(&path).unwrap_err());
        assert!(e.contains("max_batch_lenn") && e.contains("line 2"), "{e}");
        std::fs::write(&path, "max_batch_len = 0\n").unwrap();
        let e = format!("{:#}", check(&path).unwrap_err());
        assert_eq!(e, "max_batch_len (--max-batch-len): must be above 0");
        std::fs::write(&path, "fuel = \"lots\"\n").unwrap();
        let e = format!("{:#}", check(&path).unwrap_err());
        assert!(e.contains("fuel") && e.contains("line 1"), "{e}");
        std::fs::write(&path, "fuel = 7\n").unwrap();
        assert!(check(&path).is_ok());
    }
}
