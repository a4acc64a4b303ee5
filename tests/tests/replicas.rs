//! Stateless replicas over a real PostgreSQL, behind a real nginx (round robin), with the real
//! binary: a deploy through one replica is served by all within a second, a key revoked on one
//! is refused by the others, a replica killed leaves the others serving, and a PostgreSQL
//! restart stops deploys (503) but not calls, after which everything catches up.
//! (host/tests/replicas.rs checks the same logic in process, without a database.)

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fnhost_tests::pg::PgServer;
use fnhost_tests::{Host, TOKEN};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");
const BY_HAND: &str = include_str!("../fixtures/abi_by_hand.wat");

/// The hand-written guest answering `answer` (two digits: the data's length is fixed).
fn by_hand(answer: u32) -> Vec<u8> {
    assert!((10..100).contains(&answer));
    wat::parse_str(BY_HAND.replace("42", &answer.to_string())).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// One JSON-RPC call to `url`: the answer, or `null` when the transport failed.
fn call(url: &str, method: &str, key: Option<&str>) -> Value {
    let mut req = agent().post(format!("{url}/rpc"));
    if let Some(k) = key {
        req = req.header("Authorization", &format!("Bearer {k}"));
    }
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).to_string();
    match req.send(body.as_str()) {
        Ok(mut r) => serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
            .unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn admin(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .body(body.to_vec())
        .unwrap();
    match agent().run(req) {
        Ok(mut r) => (
            r.status().as_u16(),
            serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or(Value::Null),
        ),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// Calls through `url` until `n` answers in a row satisfy `check` (so, behind round robin,
/// every replica gave one); returns how long that took. Fails after `within`.
fn until_all(
    url: &str,
    method: &str,
    key: Option<&str>,
    n: usize,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut in_a_row = 0;
    let mut last = Value::Null;
    while in_a_row < n {
        assert!(
            start.elapsed() < within,
            "{method} via {url}: {in_a_row} of {n} in a row after {within:?}; last {last}"
        );
        last = call(url, method, key);
        if check(&last) {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    start.elapsed()
}

fn answers(n: u64) -> impl Fn(&Value) -> bool {
    move |v| v["result"]["answer"] == n
}

/// A private nginx on 127.0.0.1, round robin over `upstreams`; stopped when dropped.
struct Nginx {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstreams: &[&Host]) -> Nginx {
        let bin = std::env::var("FNHOST_NGINX").unwrap_or_else(|_| "nginx".into());
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = upstreams
            .iter()
            .map(|h| format!("    server {} max_fails=1 fail_timeout=30s;\n", h.addr()))
            .collect();
        let p = dir.path().display();
        let root = if is_root() { "user root;\n" } else { "" };
        let conf = format!(
            "{root}worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
               upstream fnhost {{\n{servers}  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 16m;\n\
                 location / {{\n      proxy_pass http://fnhost;\n      proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n      proxy_connect_timeout 1s;\n\
                   proxy_next_upstream error timeout;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nginx ({bin}): {e}; scripts/nginx.sh finds it")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                log(dir.path())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            url,
            _dir: dir,
        }
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Drop for Nginx {
    /// SIGTERM first: the master stops its workers (a SIGKILLed master would leave them
    /// running, holding the port); SIGKILL only if it has not exited within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn replicas_behind_nginx_serve_every_change_within_a_second() {
    let server = PgServer::shared();
    let url = server.url(&server.create_database());
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas: Vec<Host> = dirs
        .iter()
        .map(|d| Host::start(BIN, d.path(), &["--store", &url]))
        .collect();
    let nginx = Nginx::start(&replicas.iter().collect::<Vec<_>>());
    let second = Duration::from_secs(1);

    // Deploy through one; every replica serves it (6 in a row through round robin).
    let (status, v) = admin(
        &replicas[0].url,
        "PUT",
        "/v1/functions/byhand",
        &by_hand(42),
    );
    assert_eq!(status, 201, "{v}");
    let took = until_all(&nginx.url, "byhand.answer", None, 6, second, answers(42));
    eprintln!("first version on every replica after {took:?}");
    // A new version through another; the first version is gone everywhere within a second.
    let (status, v) = admin(
        &replicas[1].url,
        "PUT",
        "/v1/functions/byhand",
        &by_hand(17),
    );
    assert_eq!((status, v["version"].clone()), (201, json!(2)), "{v}");
    let took = until_all(&nginx.url, "byhand.answer", None, 6, second, answers(17));
    eprintln!("second version on every replica after {took:?}");
    // A rollback through the third.
    let (status, _) = admin(
        &replicas[2].url,
        "POST",
        "/v1/functions/byhand/rollback",
        b"",
    );
    assert_eq!(status, 200);
    until_all(&nginx.url, "byhand.answer", None, 6, second, answers(42));

    // Keys: created on one, honoured by all; revoked on another, refused by all.
    let (status, _) = admin(
        &replicas[0].url,
        "PUT",
        "/v1/functions/private?access=key",
        &by_hand(55),
    );
    assert_eq!(status, 201);
    let spec = json!({"name": "client", "role": "invoke", "scope": ["private"]}).to_string();
    let (status, key) = admin(&replicas[0].url, "POST", "/v1/keys", spec.as_bytes());
    assert_eq!(status, 201, "{key}");
    let (id, secret) = (key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    until_all(
        &nginx.url,
        "private.answer",
        Some(secret),
        6,
        second,
        answers(55),
    );
    let (status, _) = admin(&replicas[1].url, "DELETE", &format!("/v1/keys/{id}"), b"");
    assert_eq!(status, 200);
    let took = until_all(&nginx.url, "private.answer", Some(secret), 6, second, |v| {
        v["error"]["code"] == -32040
    });
    eprintln!("revocation on every replica after {took:?}");

    // SIGKILL one replica under a steady load through nginx (two clients calling back to
    // back): nginx passes new calls to the others; only a call in flight on the killed replica
    // may fail, so at most one per client.
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (url, stop) = (nginx.url.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, 0u32);
                while !stop.load(Ordering::Relaxed) {
                    if answers(42)(&call(&url, "byhand.answer", None)) {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    replicas.pop().unwrap().kill();
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load
        .into_iter()
        .map(|t| t.join().unwrap())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    eprintln!("SIGKILL under load through nginx: {ok} calls answered, {failed} failed");
    assert!(ok > 20, "the load did not run: {ok} answered");
    assert!(
        failed <= 2,
        "{failed} calls failed: more than were in flight"
    );
    for _ in 0..30 {
        assert!(answers(42)(&call(&nginx.url, "byhand.answer", None)));
    }
    for r in &replicas {
        let (status, v) = admin(&r.url, "GET", "/readyz", b"");
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["store"], "shared");
    }
}

#[test]
fn a_postgres_restart_stops_deploys_not_calls_and_replicas_catch_up() {
    let server = PgServer::start();
    let url = server.url(&server.create_database());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Host::start(BIN, d1.path(), &["--store", &url]);
    let b = Host::start(BIN, d2.path(), &["--store", &url]);
    let (status, _) = admin(&a.url, "PUT", "/v1/functions/byhand", &by_hand(42));
    assert_eq!(status, 201);
    until_all(
        &b.url,
        "byhand.answer",
        None,
        1,
        Duration::from_secs(1),
        answers(42),
    );

    server.stop();
    // Calls are served from memory.
    for host in [&a, &b] {
        for _ in 0..10 {
            assert!(answers(42)(&call(&host.url, "byhand.answer", None)));
        }
    }
    // A deploy fails, clearly and soon, and changes nothing.
    let started = Instant::now();
    let (status, v) = admin(&a.url, "PUT", "/v1/functions/byhand", &by_hand(17));
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["kind"], "store_unavailable", "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(answers(42)(&call(&a.url, "byhand.answer", None)));
    // Readiness tells a load balancer.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = admin(&b.url, "GET", "/readyz", b"");
        if status == 503 {
            assert_eq!(v["ready"], false);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still ready with the store down: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    server.start_again();
    // Deploys work again (the pool reconnects), and the other replica catches up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = admin(&a.url, "PUT", "/v1/functions/byhand", &by_hand(17));
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deploys still fail: {status} {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    until_all(
        &b.url,
        "byhand.answer",
        None,
        1,
        Duration::from_secs(10),
        answers(17),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    for host in [&a, &b] {
        loop {
            let (status, v) = admin(&host.url, "GET", "/readyz", b"");
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "not ready again: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
