//! The guest author's commands: `fnhost new` (a ready crate), `fnhost run` (one call in
//! process, under the host's own validation, sandbox, limits and errors), `fnhost inspect`
//! (what an upload would accept or refuse).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use fnhost::config::LimitOverrides;
use fnhost::context::CallContext;
use fnhost::error::Kind;
use serde_json::{Value, json};

use crate::args::RunArgs;

/// The SDK of the checkout this binary was built from, when it is still there.
fn default_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/sdk");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().ok())
        .flatten()
}

/// `fnhost new NAME`: a guest crate that builds for wasm32 with `cargo build --release`, tests
/// natively with `cargo t`, and deploys as NAME.
pub fn new(name: &str, sdk: Option<&Path>) -> Result<ExitCode> {
    fnhost::registry::validate_name(name).map_err(|e| anyhow!("{}", e.message))?;
    let dir = Path::new(name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or remove it",
            dir.display()
        );
    }
    let sdk = match sdk {
        Some(p) => p
            .canonicalize()
            .with_context(|| format!("the SDK path {} does not exist", p.display()))?,
        None => default_sdk().ok_or_else(|| {
            anyhow!(
                "cannot find the fnhost guest SDK: pass --sdk PATH (or set FNHOST_SDK) to the \
                 guest-sdk/sdk folder of an fnhost checkout"
            )
        })?,
    };
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "{} is not the guest SDK: it has no Cargo.toml",
            sdk.display()
        );
    }
    let host = env!("FNHOST_HOST_TARGET");
    let lib = name.replace('-', "_");
    let files: [(&str, String); 5] = [
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
# cdylib: the .wasm fnhost runs; rlib: `cargo t` tests the functions natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
fnhost-guest = {{ path = "{sdk}" }}

# Guests are small: size over speed, one codegen unit with LTO so unused code goes, no
# unwinding (a panic is a trap anyway), no symbol names. See the SDK's docs/GUESTS.md.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A crate of its own, even when created inside another workspace.
[workspace]
"#,
                sdk = sdk.display()
            ),
        ),
        (
            ".cargo/config.toml",
            format!(
                r#"# `cargo build --release` builds the guest for fnhost:
#   target/wasm32-unknown-unknown/release/{lib}.wasm
[build]
target = "wasm32-unknown-unknown"

# The functions are plain Rust: `cargo t` runs their tests natively.
[alias]
t = "test --target {host}"
"#
            ),
        ),
        (
            "src/lib.rs",
            format!(
                r#"//! `{name}`: functions fnhost serves as `{name}.greet` and `{name}.divide`.

use fnhost_guest::{{Error, export}};

/// Greets someone by name; excitedly if asked.
#[export]
pub fn greet(name: String, excited: Option<bool>) -> String {{
    let mark = if excited.unwrap_or(false) {{ "!" }} else {{ "." }};
    format!("Hello, {{name}}{{mark}}")
}}

/// Divides x by y. Dividing by zero is an error the caller sees, not a crash.
#[export]
pub fn divide(x: f64, y: f64) -> Result<f64, Error> {{
    if y == 0.0 {{
        return Err(Error::new("division by zero"));
    }}
    Ok(x / y)
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn greets() {{
        assert_eq!(greet("Ann".into(), None), "Hello, Ann.");
        assert_eq!(greet("Ann".into(), Some(true)), "Hello, Ann!");
    }}

    #[test]
    fn divides_and_refuses_zero() {{
        assert_eq!(divide(7.0, 2.0).unwrap(), 3.5);
        assert!(divide(1.0, 0.0).is_err());
    }}
}}
"#
            ),
        ),
        (".gitignore", "/target\n".to_owned()),
        (
            "README.md",
            format!(
                r#"# {name}

An fnhost guest: plain Rust functions, served as `{name}.greet` and `{name}.divide`.

```sh
cargo t                                    # the tests, natively
cargo build --release                      # -> target/wasm32-unknown-unknown/release/{lib}.wasm
fnhost run target/wasm32-unknown-unknown/release/{lib}.wasm greet Ann   # one call, locally
fnhost dev                                 # rebuild and redeploy on every save
fnhost deploy target/wasm32-unknown-unknown/release/{lib}.wasm --name {name}
fnhost call {name}.divide 7 2
```

Building needs the wasm target once: `rustup target add wasm32-unknown-unknown`.
"#
            ),
        ),
    ];
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "created {name}/ (SDK: {})\n  cd {name} && cargo t && cargo build --release && fnhost run \
         target/wasm32-unknown-unknown/release/{lib}.wasm greet Ann",
        sdk.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What `fnhost run` exits with: the call's result, the guest's own error, the call failing in
/// the sandbox, or the host refusing (bad module, bad arguments, no such function).
fn exit_for(kind: Kind) -> u8 {
    match kind {
        Kind::GuestError | Kind::InvalidParams => 1,
        Kind::OutOfFuel
        | Kind::DeadlineExceeded
        | Kind::MemoryLimit
        | Kind::StackOverflow
        | Kind::GuestTrap
        | Kind::BadGuestOutput => 2,
        _ => 3,
    }
}

/// The module's bytes and the name to run it under: a file, or `NAME[@VERSION]` fetched from
/// the host at `--url` with deploy rights.
fn module_bytes(args: &RunArgs) -> Result<(String, Vec<u8>)> {
    let path = Path::new(&args.target);
    if args.target.ends_with(".wasm") || path.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(|s| s.to_ascii_lowercase().replace('_', "-"))
            .filter(|s| fnhost::registry::validate_name(s).is_ok())
            .unwrap_or_else(|| "local".to_owned());
        return Ok((stem, bytes));
    }
    let (name, version) = args
        .target
        .split_once('@')
        .unwrap_or((args.target.as_str(), "current"));
    fnhost::registry::validate_name(name).map_err(|e| anyhow!("{}", e.message))?;
    let bytes = crate::client::fetch_module(&args.remote, name, version)?;
    Ok((name.to_owned(), bytes))
}

/// `fnhost run FILE.wasm|NAME@V FUNCTION [ARGS...]`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let (name, bytes) = module_bytes(&args)?;
    let params = crate::client::params(&args.args, args.params.as_deref())?;
    let params = serde_json::to_vec(&params)?;
    let overrides: LimitOverrides = args.limits.overrides();
    let data = tempfile::tempdir().context("cannot make a temporary directory")?;
    let mut config = fnhost::Config::new(data.path());
    config.admin_token = Some("fnhost-run".into());
    config.max_concurrent_calls = 1;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let app =
            fnhost::App::start_with_store(config, Arc::new(fnhost::store::MemoryStore::new()))
                .await
                .context("cannot start the sandbox")?;
        if let Err(e) = app
            .registry
            .deploy(&name, Arc::from(bytes), overrides)
            .await
        {
            return Ok::<_, anyhow::Error>(Report::refused(e));
        }
        let method = format!("{name}.{}", args.function);
        let outcome =
            fnhost::rpc::dispatch(&app, &CallContext::in_process(), &method, &params).await;
        let logs = app
            .registry
            .get(&name)
            .map(|e| e.logs.recent(usize::MAX))
            .unwrap_or_default()
            .iter()
            .map(|l| l.to_json())
            .collect();
        Ok(Report::of(outcome, logs))
    })?;
    report.print(args.json);
    Ok(ExitCode::from(report.exit))
}

/// What one local call came to.
struct Report {
    json: Value,
    exit: u8,
}

impl Report {
    fn refused(e: fnhost::error::Error) -> Self {
        Self {
            exit: exit_for(e.kind),
            json: json!({ "refused": e.to_rpc_object() }),
        }
    }

    fn of(
        outcome: Result<fnhost::sandbox::CallOutput, fnhost::error::Error>,
        logs: Vec<Value>,
    ) -> Self {
        match outcome {
            Ok(out) => Self {
                exit: 0,
                json: json!({
                    "result": serde_json::from_str::<Value>(out.result.get()).unwrap_or(Value::Null),
                    "fuel_used": out.fuel_used,
                    "elapsed_us": out.elapsed.as_micros() as u64,
                    "peak_memory_bytes": out.peak_memory_bytes,
                    "logs": logs,
                }),
            },
            Err(e) => Self {
                exit: exit_for(e.kind),
                json: json!({
                    "error": e.to_rpc_object(),
                    "fuel_used": e.data["fuel_used"],
                    "elapsed_us": e.data["elapsed_ms"].as_f64().map(|ms| (ms * 1000.0) as u64),
                    "logs": logs,
                }),
            },
        }
    }

    fn print(&self, as_json: bool) {
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_default()
            );
            return;
        }
        let j = &self.json;
        if let Some(refused) = j.get("refused") {
            eprintln!(
                "refused ({}): {}",
                refused["data"]["kind"].as_str().unwrap_or("?"),
                refused["message"].as_str().unwrap_or("?")
            );
            return;
        }
        for line in j["logs"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            eprintln!(
                "log {:<5} {}: {}",
                line["level"].as_str().unwrap_or("?"),
                line["function"].as_str().unwrap_or("?"),
                line["message"].as_str().unwrap_or("")
            );
        }
        match j.get("error") {
            None => println!(
                "{}",
                serde_json::to_string_pretty(&j["result"]).unwrap_or_default()
            ),
            Some(e) => eprintln!(
                "error {} ({}): {}",
                e["code"],
                e["data"]["kind"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            ),
        }
        if j["fuel_used"].is_null() {
            return; // refused before running: nothing was spent
        }
        let peak = j["peak_memory_bytes"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |b| format!("{} KiB", b >> 10));
        eprintln!(
            "fuel {}  time {} µs  peak memory {peak}",
            j["fuel_used"], j["elapsed_us"]
        );
    }
}

/// `fnhost inspect FILE.wasm`: what an upload would accept or refuse, and why.
pub fn inspect(file: &Path, as_json: bool) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let digest = fnhost::digest::Digest::of(&bytes);
    let data = tempfile::tempdir()?;
    let config = fnhost::Config::new(data.path());
    let sandbox = fnhost::sandbox::Sandbox::new(&config)?;
    let checked = sandbox.inspect(&bytes).and_then(|inspected| {
        // The full validation and compile an upload does.
        sandbox.compile(digest, &bytes).map(|_| inspected)
    });
    let report = match &checked {
        Ok(i) => json!({
            "accepted": true,
            "sha256": digest.to_hex(),
            "size": bytes.len(),
            "abi": i.abi.version(),
            "imports": i.imports,
            "defined_functions": i.defined_functions,
            "functions": i.functions,
        }),
        Err(e) => json!({
            "accepted": false,
            "sha256": digest.to_hex(),
            "size": bytes.len(),
            "error": e.to_rpc_object(),
        }),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &checked {
            Ok(i) => {
                println!(
                    "accepted: ABI v{}, {} bytes, sha256 {}",
                    i.abi.version(),
                    bytes.len(),
                    digest
                );
                println!(
                    "imports: {}",
                    if i.imports.is_empty() {
                        "none".to_owned()
                    } else {
                        i.imports.join(", ")
                    }
                );
                for f in &i.functions {
                    let params: Vec<String> = f
                        .params
                        .iter()
                        .map(|p| {
                            let ty = fnhost::rpc::system::xmlrpc_type(&p.schema);
                            let optional = if p.required { "" } else { "?" };
                            format!("{}{optional}: {ty}", p.name)
                        })
                        .collect();
                    let result = fnhost::rpc::system::xmlrpc_type(&f.result);
                    let doc = f.doc.lines().next().unwrap_or("");
                    let raw = if f.raw { " (raw params)" } else { "" };
                    println!(
                        "  {}({}) -> {result}{raw}  {doc}",
                        f.name,
                        params.join(", ")
                    );
                }
            }
            Err(e) => println!("refused ({}): {}", e.kind.name(), e.message),
        }
    }
    Ok(if checked.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
