//! Test harness: start the real `fnhost` binary on 127.0.0.1:0 with a temp data dir, talk to it
//! over HTTP, read its log, kill it.
//!
//! Integration tests live in `tests/tests/*.rs`; each passes the binary's path
//! (`env!("CARGO_BIN_EXE_fnhost-under-test")`) to [`Host::start`].

pub mod pg;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The admin token every test host runs with.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// A running `fnhost serve`.
pub struct Host {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<String>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn read(mut r: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON answer {text:?}: {e}"))
    };
    (status, value)
}

impl Host {
    /// Starts `bin serve` on an ephemeral port with `data_dir`, plus `extra` arguments.
    pub fn start(bin: &str, data_dir: &Path, extra: &[&str]) -> Host {
        Self::start_wrapped(&[], bin, data_dir, extra)
    }

    /// Like [`Host::start`], run through `wrapper` (e.g. `["prlimit", "--nofile=1024:1024", "--"]`).
    pub fn start_wrapped(wrapper: &[&str], bin: &str, data_dir: &Path, extra: &[&str]) -> Host {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("FNHOST_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                seen.lock().unwrap().push(line.clone());
                if let Some(url) = line.strip_prefix("fnhost listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("fnhost did not start; its log:\n{}", log.lock().unwrap());
            }
        };
        Host {
            child,
            url,
            data_dir: data_dir.to_owned(),
            log,
            stdout: lines,
        }
    }

    /// The rest of the first stdout line that starts with `prefix` (e.g. the TCP address).
    pub fn stdout_after(&self, prefix: &str) -> Option<String> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
    }

    /// Everything the host has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once `ready` holds for it, or after 10 s whatever it is then (the caller's assert
    /// then shows it). The log arrives through a reader thread, so a line the host wrote before
    /// answering may still be on its way when the answer is.
    pub fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if ready(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. `HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// `host:port` of the HTTP listener.
    pub fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_owned()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits at most `within` for the process to exit; its exit status, or
    /// `None` if it was still running (it is then killed when the `Host` drops).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id (for /proc readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        read(agent().get(format!("{}{path}", self.url)).call().unwrap())
    }

    /// `PUT /v1/functions/{name}{query}` with `token` (None: no Authorization header).
    pub fn deploy_with(
        &self,
        name: &str,
        query: &str,
        bytes: &[u8],
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = agent().put(format!("{}/v1/functions/{name}{query}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        read(req.send(bytes).unwrap())
    }

    /// Announces a `len`-byte upload without sending it, as a client streaming a huge file
    /// would, and returns the server's early answer (status and JSON body).
    pub fn deploy_declaring(&self, name: &str, len: usize) -> (u16, Value) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "PUT /v1/functions/{name} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        // The server may answer and close before taking all of this.
        let _ = s.write_all(&vec![0u8; 64 << 10]);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        (
            status,
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }

    /// Deploys with the right token and asserts success (201 or 200).
    pub fn deploy(&self, name: &str, bytes: &[u8]) -> Value {
        let (status, v) = self.deploy_with(name, "", bytes, Some(TOKEN));
        assert!(
            status == 201 || status == 200,
            "deploy {name}: {status} {v}"
        );
        v
    }

    pub fn delete(&self, name: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = agent().delete(format!("{}/v1/functions/{name}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        read(req.call().unwrap())
    }

    /// POSTs a raw body to `/rpc`; returns status, body text and the usage headers.
    pub fn rpc_raw(&self, body: &str) -> (u16, String) {
        let mut r = agent()
            .post(format!("{}/rpc", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    /// Sends one request and returns the whole response object.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (status, text) = self.rpc_raw(&body.to_string());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Calls and returns `result`, failing the test on an error response.
    pub fn result(&self, method: &str, params: Value) -> Value {
        let r = self.call(method, params);
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }

    /// Calls and returns `error`, failing the test on success.
    pub fn error(&self, method: &str, params: Value) -> Value {
        let r = self.call(method, params);
        assert!(r.get("result").is_none(), "{method} should fail: {r}");
        r["error"].clone()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes of an example guest from `functions/`, built by `build.rs`.
pub fn guest(name: &str) -> Vec<u8> {
    let path = Path::new(env!("FNHOST_GUEST_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `.wat` fixture from `tests/fixtures/`, assembled.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// Starts a host in `dir` with every example deployed.
pub fn host_with_examples(bin: &str, dir: &Path) -> Host {
    let host = Host::start(bin, dir, &[]);
    for name in EXAMPLES {
        host.deploy(name, &guest(name));
    }
    host
}

/// A TCP connection to `addr` from the local address `from` (any of 127.0.0.0/8 works on
/// loopback: "another client").
pub fn connect_from(from: &str, addr: &str) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// One HTTP/1.1 request from `from` (closing the connection after it): status and body.
pub fn http_from(
    from: &str,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = connect_from(from, addr);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A module Cranelift takes many seconds to compile although it is small (tens of KiB): `depth`
/// nested loops, each with a back edge, carrying `locals` values around every one of them. The
/// compile time grows much faster than the nesting (100 × 100: 0.2 s, 100 × 1000: 6 s); 10 ×
/// 2000 takes over 30 s on a 2-core test machine, its memory staying near 100 MiB.
pub fn slow_to_compile(locals: usize, depth: usize) -> Vec<u8> {
    let mut wat = String::from(
        "(module (memory (export \"memory\") 1)\
         (func (export \"fnhost_alloc\") (param i32) (result i32) (i32.const 1024))\
         (func (export \"fnhost_call_f\") (param i32 i32) (result i64)",
    );
    wat.push_str(&" (local i64)".repeat(locals));
    // Locals 0 and 1 are the params.
    let local = |i: usize| i % locals + 2;
    for d in 0..depth {
        let l = local(d);
        wat.push_str(&format!(
            " loop (local.set {l} (i64.mul (local.get {l}) (i64.const 3)))"
        ));
    }
    for d in 0..depth {
        wat.push_str(&format!(
            " (br_if 0 (i64.eqz (local.get {}))) end",
            local(d)
        ));
    }
    wat.push_str(" (i64.const 0)");
    for l in 0..locals {
        wat.push_str(&format!(" (i64.add (local.get {}))", local(l)));
    }
    wat.push_str(")(@custom \"fnhost.functions\" \"{\\\"abi\\\":1,\\\"name\\\":\\\"f\\\"}\"))");
    wat::parse_str(wat).unwrap()
}
