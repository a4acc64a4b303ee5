//! The `fnhost` command: parse the command line, then either serve ([`serve`]) or act as a
//! client of a running host ([`client`]). This crate is the only place that uses `anyhow`,
//! clap, an HTTP client and a log subscriber: errors print their cause chain, never a
//! backtrace. The host itself is the `fnhost` library.

mod args;
mod client;
mod dev;
mod guest;
mod serve;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Runs the command line of this process.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(*args),
        Command::Config(args::ConfigCommand::Check { file }) => serve::check(&file),
        Command::Deploy {
            file,
            name,
            limits,
            access,
            allow_from,
            remote,
        } => client::deploy(
            &remote,
            &file,
            &name,
            limits.overrides(),
            access.as_deref(),
            &allow_from,
        ),
        Command::Call {
            method,
            args,
            params,
            key,
            remote,
        } => client::call(&remote, &method, &args, params.as_deref(), key.as_deref()),
        Command::List { remote } => client::list(&remote),
        Command::Remove { name, remote } => client::remove(&remote, &name),
        Command::Rollback { name, to, remote } => client::rollback(&remote, &name, to.as_deref()),
        Command::Logs {
            name,
            follow,
            limit,
            remote,
        } => client::logs(&remote, &name, follow, limit),
        Command::New { name, sdk } => guest::new(&name, sdk.as_deref()),
        Command::Run(args) => guest::run(args),
        Command::Inspect { file, json } => guest::inspect(&file, json),
        Command::Dev(args) => dev::dev(args),
        Command::Keys(command) => client::keys(command),
        Command::Audit {
            since,
            limit,
            remote,
        } => client::audit(&remote, since, limit),
        Command::CompileWorker {
            settings,
            engine_key,
        } => Ok(ExitCode::from(
            fnhost::sandbox::worker::worker_main(&settings, &engine_key) as u8,
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
