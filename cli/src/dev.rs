//! `fnhost dev [DIR]`: the guest author's loop. Builds the crate for wasm32, deploys it to a
//! host (a local one with a temporary store, unless `--url` names one), prints compiler
//! errors, upload refusals and the new methods, optionally makes a call, then waits for the
//! next save (file events debounced) and does it again. Stops on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::args::DevArgs;

/// A local host for the session, killed when dropped.
struct LocalHost {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for LocalHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const LOCAL_TOKEN: &str = "fnhost-dev-local-token";

fn start_local() -> Result<LocalHost> {
    let exe = std::env::current_exe().context("cannot find this fnhost binary")?;
    let data = tempfile::tempdir().context("cannot make a temporary store")?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("FNHOST_ADMIN_TOKEN", LOCAL_TOKEN)
        .env("RUST_LOG", "warn,fnhost::guest=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start a local host")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("fnhost listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow!("the local host did not start"))?;
    eprintln!("dev: local host at {url} (temporary store)");
    Ok(LocalHost {
        child,
        url,
        _data: data,
    })
}

/// The crate's package name and the `.wasm` a release build makes.
fn locate(dir: &Path) -> Result<(String, PathBuf)> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "{} is not a cargo crate: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let manifest = dir.canonicalize()?.join("Cargo.toml");
    let package = meta["packages"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(&manifest))
                .or_else(|| p.first())
        })
        .ok_or_else(|| anyhow!("no package in {}", dir.display()))?;
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let target = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let wasm = target
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    Ok((name, wasm))
}

/// `cargo build --release --target wasm32-unknown-unknown`; the compiler's messages go to the
/// terminal as they come.
fn build(dir: &Path) -> bool {
    eprintln!("dev: building...");
    Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--color",
            "always",
        ])
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Deploys and says what came of it; `true` when the new version serves.
fn deploy(url: &str, token: &str, name: &str, wasm: &Path) -> bool {
    let bytes = match std::fs::read(wasm) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("dev: cannot read {}: {e}", wasm.display());
            return false;
        }
    };
    let answer = agent()
        .put(format!("{url}/v1/functions/{name}"))
        .header("Authorization", &format!("Bearer {token}"))
        .send(&bytes[..]);
    let mut response = match answer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dev: cannot reach {url}: {e}");
            return false;
        }
    };
    let status = response.status().as_u16();
    let v = json_body(response.body_mut());
    match status {
        200 | 201 => {
            let methods: Vec<&str> = v["methods"]
                .as_array()
                .map(|m| m.iter().filter_map(|m| m["name"].as_str()).collect())
                .unwrap_or_default();
            let what = if status == 201 {
                "deployed"
            } else {
                "unchanged"
            };
            eprintln!(
                "dev: {what} {name} version {} ({} bytes): {}",
                v["version"],
                bytes.len(),
                methods.join(", ")
            );
            true
        }
        _ => {
            eprintln!(
                "dev: the upload was refused ({}): {}",
                v["error"]["kind"].as_str().unwrap_or("?"),
                v["error"]["message"].as_str().unwrap_or("?")
            );
            false
        }
    }
}

/// A JSON answer's body; `null` when it is not JSON.
fn json_body(body: &mut ureq::Body) -> Value {
    body.read_to_string()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// `--call "greet Ann"`: the function, then positional params (JSON, or strings).
fn call(url: &str, name: &str, spec: &str) {
    let mut words = spec.split_whitespace();
    let Some(function) = words.next() else { return };
    let args: Vec<String> = words.map(str::to_owned).collect();
    let params = crate::client::params(&args, None).unwrap_or(Value::Null);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": format!("{name}.{function}"), "params": params});
    match agent()
        .post(format!("{url}/rpc"))
        .send(serde_json::to_vec(&body).unwrap_or_default().as_slice())
    {
        Ok(mut r) => {
            let v = json_body(r.body_mut());
            match v.get("error") {
                Some(e) => eprintln!(
                    "dev: {name}.{function} -> error {}: {}",
                    e["code"],
                    e["message"].as_str().unwrap_or("?")
                ),
                None => println!("dev: {name}.{function} -> {}", v["result"]),
            }
        }
        Err(e) => eprintln!("dev: the call failed: {e}"),
    }
}

/// `fnhost dev [DIR]`.
pub fn dev(args: DevArgs) -> Result<ExitCode> {
    use notify_debouncer_mini::{DebounceEventResult, new_debouncer, notify::RecursiveMode};
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let (package, wasm) = locate(&dir)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| package.replace('_', "-"));
    fnhost::registry::validate_name(&name).map_err(|e| anyhow!("--name: {}", e.message))?;
    let local;
    let (url, token) = match &args.url {
        Some(url) => (
            url.trim_end_matches('/').to_owned(),
            args.token
                .clone()
                .context("--url needs the admin token (or a deploy key): FNHOST_ADMIN_TOKEN")?,
        ),
        None => {
            local = start_local()?;
            (local.url.clone(), LOCAL_TOKEN.to_owned())
        }
    };
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(Duration::from_millis(300), tx)
        .context("cannot watch the crate for changes")?;
    let watcher = debouncer.watcher();
    watcher
        .watch(&dir.join("src"), RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", dir.join("src").display()))?;
    watcher
        .watch(&dir.join("Cargo.toml"), RecursiveMode::NonRecursive)
        .context("cannot watch Cargo.toml")?;
    eprintln!("dev: watching {} (Ctrl-C stops)", dir.display());
    loop {
        if build(&dir)
            && deploy(&url, &token, &name, &wasm)
            && let Some(spec) = &args.call
        {
            call(&url, &name, spec);
        }
        eprintln!("dev: waiting for changes...");
        // The first batch of changes after the build; drop events the build itself caused
        // (target/ is not watched, but editors write several files at once).
        match rx.recv() {
            Ok(_) => while rx.recv_timeout(Duration::from_millis(100)).is_ok() {},
            Err(_) => return Ok(ExitCode::SUCCESS),
        }
    }
}
