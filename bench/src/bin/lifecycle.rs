//! `lifecycle`: start-up and deploy benchmarks against the real `fnhost` binary.
//!
//! Grows one data dir to each module count in `--counts` (default 1,100,1000), deploying
//! distinct copies of `math.wasm` (each with its own custom section, so its own sha256 and its
//! own compile) over HTTP. At every count it stops the server and starts it again, timing
//! process spawn → `/healthz` answering 200, then the first call to every deployed module
//! (`mNNNN.add`, each over one keep-alive connection on loopback, so each includes one HTTP
//! round trip). Every deploy is timed too: `PUT` sent → the first successful call to the new
//! module. Prints one table.
//!
//! With `--store URL` (PostgreSQL) the modules live in the database, and every restart is a
//! *cold replica*: a new, empty data dir, so no artifact cache — what a replica added to a fleet
//! pays (each first call loads the bytes from the database and compiles them, unless the
//! background loader got there first).
//!
//! With `--data-dir DIR` the data dir is kept (and reused: the modules already in it count as
//! deployed), so the start-up and first-call rows can be measured again, e.g. for two builds,
//! without deploying 1,000 modules each time.
//!
//! Usage: `lifecycle --fnhost PATH [--counts 1,100,1000] [--server-cpu N] [--store URL]
//! [--data-dir DIR] [--rounds N]` (`--rounds`: start-up and first calls measured N times at
//! each count, each round a new start).
//! The guest comes from `FNHOST_GUEST_DIR` or `target/guests/wasm32-unknown-unknown/guest`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fnhost_bench::{Percentiles, guest_bytes, ms, us, with_custom_section};

const TOKEN: &str = "fnhost-bench-admin-token";

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// SIGTERM (graceful: fnhost finishes in-flight requests), then SIGKILL after 5 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Starts fnhost on `data_dir` and returns it with the time from spawn to `/healthz` = 200.
fn start(
    fnhost: &Path,
    data_dir: &Path,
    cpu: Option<&str>,
    store: Option<&str>,
) -> Result<(Server, Duration)> {
    let addr = free_port()?;
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu]).arg(fnhost);
            c
        }
        None => Command::new(fnhost),
    };
    cmd.arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .args(store.map(|url| ["--store", url]).into_iter().flatten())
        .env("FNHOST_ADMIN_TOKEN", TOKEN)
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", fnhost.display()))?;
    let mut server = Server { child, addr };
    let url = format!("http://{addr}/healthz");
    let http = agent();
    loop {
        // A cheap connect first, so polling does not pay ureq's error path every time.
        if TcpStream::connect(addr).is_ok()
            && let Ok(r) = http.get(&url).call()
            && r.status() == 200
        {
            return Ok((server, t0.elapsed()));
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("fnhost exited before serving: {status}");
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("fnhost did not answer /healthz within 600 s");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn call_add(http: &ureq::Agent, addr: SocketAddr, module: &str) -> Result<bool> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{module}.add","params":[2,3]}}"#);
    let mut r = http
        .post(&format!("http://{addr}/rpc"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())?;
    let text = r.body_mut().read_to_string()?;
    Ok(text.contains("\"result\":5"))
}

fn module_name(i: usize) -> String {
    format!("m{i:04}")
}

fn main() -> Result<()> {
    let mut fnhost = PathBuf::from("target/release/fnhost");
    let mut counts = vec![1usize, 100, 1000];
    let mut cpu: Option<String> = None;
    let mut store: Option<String> = None;
    let mut keep: Option<PathBuf> = None;
    let mut rounds = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fnhost" => fnhost = args.next().context("--fnhost PATH")?.into(),
            "--counts" => {
                counts = args
                    .next()
                    .context("--counts N,N,..")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--server-cpu" => cpu = Some(args.next().context("--server-cpu N")?),
            "--store" => store = Some(args.next().context("--store URL")?),
            "--data-dir" => keep = Some(PathBuf::from(args.next().context("--data-dir DIR")?)),
            "--rounds" => rounds = args.next().context("--rounds N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    counts.sort_unstable();
    let math = guest_bytes("math")?;
    let temp = tempfile::tempdir()?;
    let data = match &keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => temp.path().to_owned(),
    };
    let http = agent();

    let mut deploy_times = Vec::new();
    let mut rows = Vec::new();
    let (mut server, _) = start(&fnhost, &data, cpu.as_deref(), store.as_deref())?;
    // Names are deployed in order, so a kept data dir's count says which are there.
    let mut deployed = serde_json::from_str::<serde_json::Value>(
        &http
            .get(&format!("http://{}/healthz", server.addr))
            .call()?
            .body_mut()
            .read_to_string()?,
    )?["modules"]
        .as_u64()
        .unwrap_or(0) as usize;
    let mut replica_dirs = Vec::new();
    for &count in &counts {
        while deployed < count {
            let name = module_name(deployed);
            let bytes = with_custom_section(&math, "fnhost-bench", name.as_bytes());
            let t0 = Instant::now();
            let mut r = http
                .put(&format!("http://{}/v1/functions/{name}", server.addr))
                .header("Authorization", &format!("Bearer {TOKEN}"))
                .header("Content-Type", "application/wasm")
                .send(&bytes[..])?;
            let status = r.status();
            if status != 201 {
                bail!(
                    "deploying {name} answered {status}: {}",
                    r.body_mut().read_to_string()?
                );
            }
            while !call_add(&http, server.addr, &name)? {
                if t0.elapsed() > Duration::from_secs(60) {
                    bail!("{name} not callable 60 s after its deploy");
                }
            }
            deploy_times.push(t0.elapsed());
            deployed += 1;
        }
        for _ in 0..rounds {
            drop(server);
            let dir = if store.is_some() {
                // A cold replica: nothing local.
                replica_dirs.push(tempfile::tempdir()?);
                replica_dirs
                    .last()
                    .map(|d| d.path().to_owned())
                    .unwrap_or_default()
            } else {
                data.clone()
            };
            let (restarted, serving) = start(&fnhost, &dir, cpu.as_deref(), store.as_deref())?;
            server = restarted;
            let health = http
                .get(&format!("http://{}/healthz", server.addr))
                .call()?
                .body_mut()
                .read_to_string()?;
            let fresh = agent();
            let mut first_calls = Vec::with_capacity(count);
            for i in 0..count {
                let name = module_name(i);
                let t = Instant::now();
                if !call_add(&fresh, server.addr, &name)? {
                    bail!("first call to {name}.add after a restart failed");
                }
                first_calls.push(t.elapsed());
            }
            // Which first calls were slowest, and when (the module's place in the sweep).
            let mut slowest: Vec<(Duration, usize)> =
                first_calls.iter().copied().zip(0..).collect();
            slowest.sort_unstable_by(|a, b| b.cmp(a));
            eprintln!(
                "{count} modules, slowest first calls: {}",
                slowest
                    .iter()
                    .take(8)
                    .map(|(t, i)| format!("{} {} µs", module_name(*i), us(*t)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let first = Percentiles::new(first_calls);
            // A second round: the same calls once every module has been used.
            let mut second = Vec::with_capacity(count);
            for i in 0..count {
                let t = Instant::now();
                call_add(&fresh, server.addr, &module_name(i))?;
                second.push(t.elapsed());
            }
            let second = Percentiles::new(second);
            rows.push(format!(
                "| {count} | {} | {} | {} | {} | {} | {} | `{}` |",
                ms(serving),
                us(first.p50()),
                us(first.p99()),
                us(first.max()),
                us(second.p50()),
                us(second.p99()),
                health.trim()
            ));
        }
    }
    drop(server);

    println!(
        "\nstart-up (math.wasm copies, {} bytes each + a custom section)\n",
        math.len()
    );
    println!(
        "| modules | spawn → /healthz 200 (ms) | first call p50 (µs) | first call p99 (µs) | first call max (µs) | second call p50 (µs) | second call p99 (µs) | /healthz |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    let all = Percentiles::new(deploy_times.clone());
    let first100 = Percentiles::new(deploy_times.iter().take(100).copied().collect());
    println!(
        "\ndeploy: PUT sent → first successful call ({} bytes)\n",
        math.len()
    );
    println!("| deploys | p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---|---|---|");
    println!(
        "| first {} | {} | {} | {} |",
        first100.len(),
        ms(first100.p50()),
        ms(first100.p99()),
        ms(first100.max())
    );
    println!(
        "| all {} | {} | {} | {} |",
        all.len(),
        ms(all.p50()),
        ms(all.p99()),
        ms(all.max())
    );
    Ok(())
}
