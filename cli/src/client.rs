//! The client commands: talk to a running host over its HTTP API.
//!
//! `FNHOST_URL` (default `http://127.0.0.1:7878`) and `FNHOST_ADMIN_TOKEN` say where and who.
//! Server errors are printed as the server phrased them, with their code.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use fnhost::config::LimitOverrides;
use serde_json::{Value, json};

/// Where the host is.
#[derive(Args, Clone)]
pub struct Remote {
    /// The host's base URL.
    #[arg(long, env = "FNHOST_URL", default_value = "http://127.0.0.1:7878")]
    url: String,
    /// The admin token, for deploy and remove.
    #[arg(long, env = "FNHOST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Remote {
    fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build()
            .into()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    fn token(&self) -> Result<String> {
        self.token
            .clone()
            .context("this command needs the admin token: set FNHOST_ADMIN_TOKEN or pass --token")
    }
}

/// Reads a response as JSON; a non-2xx status becomes an error carrying the server's message.
/// POSTs `body` as JSON to `url` with the admin token (or deploy key); the answer's JSON, or
/// the host's error as this command's.
fn post_json(remote: &Remote, url: &str, body: &Value) -> Result<Value> {
    let response = remote
        .agent()
        .post(url)
        .header("Authorization", &format!("Bearer {}", remote.token()?))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body)?.as_slice())
        .with_context(|| format!("cannot reach {url}"))?;
    Ok(read(response)?.1)
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .context("cannot read the response")?;
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("the host answered {status} with non-JSON: {text}"))?
    };
    if !(200..300).contains(&status) {
        let message = value["error"]["message"].as_str().unwrap_or(&text);
        let kind = value["error"]["kind"].as_str().unwrap_or("error");
        bail!("{message} ({kind}, HTTP {status})");
    }
    Ok((status, value))
}

fn print(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn deploy(
    remote: &Remote,
    file: &Path,
    name: &str,
    limits: LimitOverrides,
    access: Option<&str>,
    allow_from: &[String],
) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut url = remote.url(&format!("/v1/functions/{name}"));
    let query: Vec<String> = [
        ("fuel", limits.fuel),
        ("timeout_ms", limits.timeout_ms),
        ("memory_mib", limits.memory_mib),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
    .chain(access.map(|a| format!("access={a}")))
    .chain((!allow_from.is_empty()).then(|| format!("allow_from={}", allow_from.join(","))))
    .collect();
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let response = remote
        .agent()
        .put(&url)
        .header("Authorization", &format!("Bearer {}", remote.token()?))
        .header("Content-Type", "application/wasm")
        .send(&bytes[..])
        .with_context(|| format!("cannot reach {url}"))?;
    let (status, value) = read(response)?;
    let verb = if status == 201 {
        "deployed"
    } else {
        "unchanged"
    };
    eprintln!(
        "{verb}: {name} version {} sha256 {}",
        value["version"],
        value["sha256"].as_str().unwrap_or("?")
    );
    print(&value)?;
    Ok(ExitCode::SUCCESS)
}

/// Builds params from ARGS: each is JSON if it parses, else a string.
fn params_from_args(args: &[String]) -> Value {
    Value::Array(
        args.iter()
            .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
            .collect(),
    )
}

/// The params of a call: `--params` JSON (an array or an object), else the ARGS.
pub fn params(args: &[String], params: Option<&str>) -> Result<Value> {
    Ok(match params {
        Some(p) => {
            let v: Value = serde_json::from_str(p).context("--params is not valid JSON")?;
            if !v.is_array() && !v.is_object() {
                bail!("--params must be a JSON array or object");
            }
            v
        }
        None => params_from_args(args),
    })
}

/// The exact bytes of version `version` (`current` or a number) of `name`, with deploy
/// rights.
pub fn fetch_module(remote: &Remote, name: &str, version: &str) -> Result<Vec<u8>> {
    let url = remote.url(&format!("/v1/functions/{name}/versions/{version}/module"));
    let mut response = remote
        .agent()
        .get(&url)
        .header("Authorization", &format!("Bearer {}", remote.token()?))
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        read(response)?;
        bail!("{url} answered without a module");
    }
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .context("cannot read the module")?;
    eprintln!("fetched {name}@{version}: {} bytes", bytes.len());
    Ok(bytes)
}

pub fn call(
    remote: &Remote,
    method: &str,
    args: &[String],
    params: Option<&str>,
    key: Option<&str>,
) -> Result<ExitCode> {
    let params = self::params(args, params)?;
    let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let url = remote.url("/rpc");
    let mut post = remote
        .agent()
        .post(&url)
        .header("Content-Type", "application/json");
    if let Some(key) = key {
        post = post.header("Authorization", &format!("Bearer {key}"));
    }
    let response = post
        .send(serde_json::to_vec(&request)?.as_slice())
        .with_context(|| format!("cannot reach {url}"))?;
    let mut response = response;
    let text = response
        .body_mut()
        .read_to_string()
        .context("cannot read the response")?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("not a JSON-RPC answer: {text}"))?;
    if let Some(error) = value.get("error") {
        eprintln!(
            "error {}: {}",
            error["code"],
            error["message"].as_str().unwrap_or("?")
        );
        if let Some(data) = error.get("data") {
            eprintln!("{}", serde_json::to_string_pretty(data)?);
        }
        return Ok(ExitCode::FAILURE);
    }
    print(&value["result"])?;
    Ok(ExitCode::SUCCESS)
}

pub fn list(remote: &Remote) -> Result<ExitCode> {
    let url = remote.url("/v1/functions");
    let response = remote
        .agent()
        .get(&url)
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let (_, value) = read(response)?;
    let empty = Vec::new();
    let functions = value["functions"].as_array().unwrap_or(&empty);
    if functions.is_empty() {
        eprintln!("no modules deployed");
    }
    for f in functions {
        let methods: Vec<&str> = f["methods"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{:<24} v{:<4} {:.12}  {:<11} {}",
            f["name"].as_str().unwrap_or("?"),
            f["version"],
            f["sha256"].as_str().unwrap_or("?"),
            f["status"].as_str().unwrap_or("?"),
            methods.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(remote: &Remote, name: &str) -> Result<ExitCode> {
    let url = remote.url(&format!("/v1/functions/{name}"));
    let response = remote
        .agent()
        .delete(&url)
        .header("Authorization", &format!("Bearer {}", remote.token()?))
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let (_, value) = read(response)?;
    eprintln!("removed {name} ({} versions)", value["versions"]);
    Ok(ExitCode::SUCCESS)
}

/// Deploys every `*.wasm` in `dir` under its file stem (used by `serve --deploy-dir`).
pub async fn deploy_dir(app: &fnhost::AppState, dir: &Path) -> Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("bad file name {}", path.display()))?
            .to_owned();
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        match app
            .registry
            .deploy(&name, Arc::from(bytes), LimitOverrides::default())
            .await
        {
            Ok(fnhost::registry::Deployed::Created(e)) => {
                tracing::info!(
                    name,
                    version = e.current().version,
                    "deployed from --deploy-dir"
                )
            }
            Ok(fnhost::registry::Deployed::Unchanged(_)) => {
                tracing::info!(name, "already deployed (same bytes)")
            }
            Err(e) => bail!("cannot deploy {}: {}", path.display(), e.message),
        }
    }
    Ok(())
}

/// `fnhost keys create|list|revoke`.
pub fn keys(command: crate::args::KeysCommand) -> Result<ExitCode> {
    use crate::args::KeysCommand;
    match command {
        KeysCommand::Create {
            name,
            role,
            scope,
            expires_at,
            rate_per_s,
            max_fuel,
            max_memory_mib,
            max_timeout_ms,
            remote,
        } => {
            let mut body = json!({"name": name, "role": role, "scope": scope});
            for (k, v) in [
                ("rate_per_s", rate_per_s.map(u64::from)),
                ("max_fuel", max_fuel),
                ("max_memory_mib", max_memory_mib),
                ("max_timeout_ms", max_timeout_ms),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if let Some(t) = expires_at {
                body["expires_at"] = json!(t);
            }
            let url = remote.url("/v1/keys");
            let value = post_json(&remote, &url, &body)?;
            eprintln!(
                "created {} ({}); its secret is shown this once:",
                value["id"].as_str().unwrap_or("?"),
                value["role"].as_str().unwrap_or("?")
            );
            println!("{}", value["secret"].as_str().unwrap_or("?"));
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { remote } => {
            let url = remote.url("/v1/keys");
            let response = remote
                .agent()
                .get(&url)
                .header("Authorization", &format!("Bearer {}", remote.token()?))
                .call()
                .with_context(|| format!("cannot reach {url}"))?;
            let (_, value) = read(response)?;
            print(&value["keys"])?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { id, remote } => {
            let url = remote.url(&format!("/v1/keys/{id}"));
            let response = remote
                .agent()
                .delete(&url)
                .header("Authorization", &format!("Bearer {}", remote.token()?))
                .call()
                .with_context(|| format!("cannot reach {url}"))?;
            read(response)?;
            eprintln!("revoked {id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `fnhost audit`: one line per entry.
pub fn audit(remote: &Remote, since: u64, limit: usize) -> Result<ExitCode> {
    let url = remote.url(&format!("/v1/audit?since={since}&limit={limit}"));
    let response = remote
        .agent()
        .get(&url)
        .header("Authorization", &format!("Bearer {}", remote.token()?))
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    let (_, value) = read(response)?;
    for e in value["entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let text = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
        println!(
            "{:>5} {} {:<22} {:<15} {:<10} {:<20} {:<18} {}",
            e["seq"],
            text("time"),
            text("actor"),
            text("client"),
            text("action"),
            text("target"),
            text("outcome"),
            text("detail")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `fnhost rollback NAME [--to V]`.
pub fn rollback(remote: &Remote, name: &str, to: Option<&str>) -> Result<ExitCode> {
    let url = remote.url(&format!("/v1/functions/{name}/rollback"));
    let body = match to {
        None => json!({}),
        Some(v) => match v.parse::<u64>() {
            Ok(n) => json!({ "to": n }),
            Err(_) => json!({ "to": v }),
        },
    };
    let value = post_json(remote, &url, &body)?;
    let versions = value["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let from = versions
        .iter()
        .rev()
        .skip(1)
        .find(|v| v["sha256"] == value["sha256"])
        .map_or_else(|| "?".to_owned(), |v| v["version"].to_string());
    eprintln!(
        "rolled back: {name} version {} (the bytes of version {from}) sha256 {}",
        value["version"],
        value["sha256"].as_str().unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}

/// One log line as `fnhost logs` prints it.
fn print_line(line: &Value) {
    println!(
        "{} {:<5} {}.{} [{}] {}",
        line["time"].as_str().unwrap_or("?"),
        line["level"].as_str().unwrap_or("?"),
        line["module"].as_str().unwrap_or(""),
        line["function"].as_str().unwrap_or("?"),
        line["request_id"].as_str().unwrap_or("?"),
        line["message"].as_str().unwrap_or("")
    );
}

/// `fnhost logs NAME [-f]`.
pub fn logs(remote: &Remote, name: &str, follow: bool, limit: usize) -> Result<ExitCode> {
    use std::io::BufRead;
    let query = if follow { "&follow=1" } else { "" };
    let url = remote.url(&format!("/v1/functions/{name}/logs?limit={limit}{query}"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {}", remote.token()?))
        .call()
        .with_context(|| format!("cannot reach {url}"))?;
    if !follow || !response.status().is_success() {
        let (_, value) = read(response)?;
        for line in value["lines"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let mut line = line.clone();
            line["module"] = json!(name);
            print_line(&line);
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Server-sent events: `event: line|lost`, then `data: {...}`.
    let reader = std::io::BufReader::new(response.body_mut().as_reader());
    let mut event = String::new();
    for text in reader.lines() {
        let text = text.context("the log stream broke")?;
        if let Some(e) = text.strip_prefix("event: ") {
            event = e.to_owned();
        } else if let Some(data) = text.strip_prefix("data: ") {
            let mut value: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            match event.as_str() {
                "lost" => eprintln!("({} lines lost: this reader fell behind)", value["lost"]),
                _ => {
                    value["module"] = json!(name);
                    print_line(&value);
                }
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    }
    Ok(ExitCode::SUCCESS)
}
