//! Graceful shutdown against the real binary: SIGTERM stops accepting, lets every call in
//! flight (on HTTP and on the TCP transport) get its answer, closes idle connections at once,
//! and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fnhost_tests::{Host, TOKEN, guest};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// Rounds of `burn.burn` that take a good fraction of a second: long enough to still be
/// running when SIGTERM lands, well inside the deadline given at deploy.
const LONG_BURN: u64 = 150_000_000;

/// A host with the TCP transport and `burn` deployed with room for a long call.
fn host(dir: &std::path::Path) -> (Host, String) {
    let host = Host::start(BIN, dir, &["--tcp", "127.0.0.1:0"]);
    let (status, v) = host.deploy_with(
        "burn",
        "?fuel=9000000000&timeout_ms=20000",
        &guest("burn"),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{v}");
    let tcp = host.stdout_after("fnhost tcp listening on ").unwrap();
    (host, tcp)
}

/// Waits until the host reports `n` calls in flight.
fn wait_in_flight(host: &Host, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.get("/healthz").1["calls_in_flight"] != n {
        assert!(Instant::now() < deadline, "the call never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn burn_line(id: u64) -> String {
    format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": id, "method": "burn.burn", "params": [LONG_BURN]})
    )
}

#[test]
fn a_tcp_call_in_flight_at_sigterm_gets_its_answer_before_the_host_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, tcp) = host(dir.path());
    let mut stream = TcpStream::connect(&tcp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(burn_line(1).as_bytes()).unwrap();
    wait_in_flight(&host, 1);

    let signalled = Instant::now();
    let status = host.terminate(Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "exit status {status}");

    // The answer was written before the process went away, and then the connection closed.
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(answer["result"], LONG_BURN, "{answer}");
    let mut rest = String::new();
    assert_eq!(reader.read_to_string(&mut rest).unwrap(), 0, "{rest}");
    let log = host.log();
    assert!(log.contains("draining connections"), "{log}");
    assert!(
        signalled.elapsed() < Duration::from_secs(25),
        "drain is bounded"
    );
}

#[test]
fn an_http_call_in_flight_at_sigterm_gets_its_answer_and_idle_connections_close() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, tcp) = host(dir.path());
    let addr = host.url.trim_start_matches("http://").to_owned();
    // An idle keep-alive HTTP connection and an idle TCP one must not hold the shutdown up.
    let mut idle_http = TcpStream::connect(&addr).unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"burn.burn","params":[1]}"#;
    write!(
        idle_http,
        "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 12];
    idle_http.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let idle_tcp = TcpStream::connect(&tcp).unwrap();

    let mut busy = TcpStream::connect(&addr).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "burn.burn", "params": [LONG_BURN]})
        .to_string();
    write!(
        busy,
        "POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    wait_in_flight(&host, 1);

    let status = host.terminate(Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "exit status {status}");
    let mut answer = String::new();
    busy.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("\"result\":{LONG_BURN}")),
        "{answer}"
    );
    drop((idle_http, idle_tcp));
}

#[test]
fn an_idle_host_exits_0_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, tcp) = host(dir.path());
    let _idle = TcpStream::connect(&tcp).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let status = host.terminate(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an idle host took {:?} to stop",
        started.elapsed()
    );
}
