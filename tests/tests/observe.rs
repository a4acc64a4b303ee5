//! Seeing and steering a running host, against the real binary: `/metrics` read by Python's
//! own Prometheus client, request ids end to end (guest log lines included), live guest logs
//! with a reader that stalls, and rollback by version and by digest through the API and the CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fnhost_tests::{Host, TOKEN, fixture, guest, http_from};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// `GET path` with the admin token: status and JSON body.
fn admin_get(host: &Host, path: &str) -> (u16, Value) {
    let mut r = agent()
        .get(format!("{}{path}", host.url))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn rollback(host: &Host, name: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().post(format!("{}/v1/functions/{name}/rollback", host.url));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.send(body).unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

/// The samples of an OpenMetrics text, parsed by `prometheus_client`'s strict OpenMetrics
/// parser: `[name, labels, value]` each.
fn parse_metrics(text: &str) -> Vec<(String, Value, f64)> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus client refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples
}

fn sample(samples: &[(String, Value, f64)], name: &str, labels: Value) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == labels)
        .map(|(_, _, v)| *v)
}

#[test]
fn metrics_are_openmetrics_that_a_real_client_parses() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("math", &guest("math"));
    for i in 0..3 {
        assert_eq!(host.result("math.add", json!([i, 1])), json!(i + 1));
    }
    host.error("math.divide", json!([1, 0]));
    // Unknown methods: counted once as unknown, never as labels.
    host.error("math.nope", json!([]));
    host.error("ghost-module.f", json!([]));
    host.error("nodot", json!([]));

    let mut r = agent().get(format!("{}/metrics", host.url)).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ctype = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = r.body_mut().read_to_string().unwrap();
    let s = parse_metrics(&text);

    let add = json!({"module": "math", "function": "add"});
    assert_eq!(
        sample(
            &s,
            "fnhost_calls_total",
            json!({"module": "math", "function": "add", "outcome": "ok"})
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &s,
            "fnhost_calls_total",
            json!({"module": "math", "function": "divide", "outcome": "guest_error"})
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&s, "fnhost_call_duration_seconds_count", add.clone()),
        Some(3.0)
    );
    assert_eq!(sample(&s, "fnhost_call_fuel_count", add.clone()), Some(3.0));
    assert!(sample(&s, "fnhost_call_fuel_sum", add).unwrap() > 0.0);
    assert_eq!(
        sample(&s, "fnhost_unknown_method_calls_total", json!({})),
        Some(3.0)
    );
    assert_eq!(
        sample(&s, "fnhost_deploys_total", json!({"outcome": "created"})),
        Some(1.0)
    );
    assert_eq!(sample(&s, "fnhost_modules", json!({})), Some(1.0));
    assert_eq!(
        sample(&s, "fnhost_calls_in_flight", json!({})),
        Some(0.0),
        "nothing runs while we scrape"
    );
    for gauge in ["fnhost_long_calls_running", "fnhost_long_calls_waiting"] {
        assert_eq!(sample(&s, gauge, json!({})), Some(0.0), "{gauge}\n{text}");
    }
    assert!(sample(&s, "fnhost_compile_duration_seconds_count", json!({})).unwrap() >= 1.0);
    assert!(sample(&s, "fnhost_open_connections", json!({"transport": "http"})).unwrap() >= 1.0);
    for (_, labels, _) in &s {
        let text = labels.to_string();
        assert!(
            !text.contains("nope") && !text.contains("ghost"),
            "a caller grew the label set: {text}"
        );
    }
}

#[test]
fn metrics_are_for_allowed_addresses_or_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &["--metrics-allow-from", "127.0.0.1/32"]);
    let addr = host.addr();
    let (status, _) = http_from("127.0.0.1", &addr, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    let (status, body) = http_from("127.0.0.2", &addr, "GET", "/metrics", &[], b"");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("127.0.0.2"),
        "the refusal names the address: {body}"
    );
    // Calls from that address are still served: only the metrics are closed to it.
    let (status, _) = http_from("127.0.0.2", &addr, "GET", "/healthz", &[], b"");
    assert_eq!(status, 200);

    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = host
        .stdout_after("fnhost metrics listening on ")
        .expect("the metrics address is printed");
    assert_eq!(
        host.get("/metrics").0,
        404,
        "/metrics leaves the main listener when it has its own"
    );
    let mut r = agent()
        .get(format!("{}/metrics", metrics.trim()))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.body_mut().read_to_string().unwrap();
    assert!(text.contains("fnhost_modules"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[test]
fn request_ids_come_back_and_reach_the_guest_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &["--log-format", "json"]);
    host.deploy("chatty", &fixture("log_each_call"));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "chatty.f", "params": []}).to_string();
    let send = |id: Option<&str>| {
        let mut req = agent().post(format!("{}/rpc", host.url));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let r = req.send(body.as_str()).unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.headers()
            .get("x-request-id")
            .expect("every answer carries a request id")
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(send(Some("deploy-42.retry:1")), "deploy-42.retry:1");
    // Too long, or with characters a log line should not carry: replaced, not echoed.
    let long = "a".repeat(65);
    for bad in [long.as_str(), "two words", "x\"}{"] {
        let got = send(Some(bad));
        assert_ne!(got, bad);
        assert!(!got.is_empty());
    }
    let generated = send(None);
    assert!(!generated.is_empty());
    assert_ne!(generated, send(None), "generated ids are distinct");

    let (status, logs) = admin_get(&host, "/v1/functions/chatty/logs");
    assert_eq!(status, 200, "{logs}");
    let lines = logs["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 6, "{logs}");
    assert_eq!(lines[0]["request_id"], "deploy-42.retry:1");
    assert_eq!(lines[0]["function"], "f");
    assert_eq!(lines[0]["message"], "called");
    assert_eq!(lines[0]["level"], "info");
    assert_eq!(lines[4]["request_id"], generated.as_str());

    // The host's own log: JSON lines, the guest's line among them with the request id.
    let log = host.log_when(|l| l.contains("deploy-42.retry:1"));
    let mut found = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("--log-format json wrote a non-JSON line {line:?}: {e}"));
        if line.contains("called") && line.contains("deploy-42.retry:1") {
            found = true;
            let _ = v;
        }
    }
    assert!(
        found,
        "no guest line with its request id in the host log:\n{log}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--log-format", "yaml"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--log-format"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A follower of `name`'s logs on a raw connection: the answer's head has been read.
fn follow(host: &Host, name: &str, recv_buffer: Option<usize>) -> BufReader<std::net::TcpStream> {
    let addr = host.addr();
    let stream = match recv_buffer {
        None => std::net::TcpStream::connect(&addr).unwrap(),
        Some(size) => {
            use socket2::{Domain, Socket, Type};
            let sa: std::net::SocketAddr = addr.parse().unwrap();
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(size).unwrap();
            socket.connect(&sa.into()).unwrap();
            socket.into()
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut s = stream;
    write!(
        s,
        "GET /v1/functions/{name}/logs?follow=1&limit=0 HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    reader
}

/// Reads the stream until an event of `kind` arrives; returns its data.
fn next_event(reader: &mut BufReader<std::net::TcpStream>, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut event = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("the stream ended before an `{kind}` event");
        }
        // Chunked framing: sizes and blank lines are not ours.
        let line = line.trim_end();
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ")
            && event == kind
        {
            return serde_json::from_str(data).unwrap();
        }
    }
    panic!("no `{kind}` event within 30 s");
}

#[test]
fn logs_follow_and_a_stalled_reader_loses_lines_not_calls() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("chatty", &fixture("log_each_call"));
    host.deploy("flood", &fixture("log_flood"));

    let mut reader = follow(&host, "chatty", None);
    host.result("chatty.f", json!([]));
    let line = next_event(&mut reader, "line");
    assert_eq!(line["message"], "called");

    // A follower that never reads, with a tiny receive window.
    let mut stalled = follow(&host, "flood", Some(4096));
    // 20 batches of 50 calls, each call logging its cap of 100 lines: 100,000 lines, far
    // beyond what the follower's buffers and sockets hold.
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "flood.f", "params": []}))
        .collect();
    let batch = Value::Array(batch).to_string();
    let started = Instant::now();
    for _ in 0..20 {
        let (status, text) = host.rpc_raw(&batch);
        assert_eq!(status, 200);
        let answers: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert!(
            answers
                .iter()
                .all(|a| a["result"].is_null() && a.get("error").is_none())
        );
    }
    // A generous bound: a blocked sink would stop the calls for good, not slow them.
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "calls waited for a stalled log reader: {:?}",
        started.elapsed()
    );
    assert_eq!(host.result("chatty.f", json!([])), Value::Null);
    // When the reader wakes up it is told how many lines it lost.
    let lost = next_event(&mut stalled, "lost");
    assert!(lost["lost"].as_u64().unwrap() > 0, "{lost}");

    // Lines and limit without follow; unknown names and bad parameters are clear errors.
    let (status, v) = admin_get(&host, "/v1/functions/flood/logs?limit=3");
    assert_eq!(status, 200);
    assert_eq!(v["lines"].as_array().unwrap().len(), 3);
    let (status, v) = admin_get(&host, "/v1/functions/nobody/logs");
    assert_eq!(status, 404, "{v}");
    let (status, v) = admin_get(&host, "/v1/functions/flood/logs?limit=many");
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("limit"),
        "{v}"
    );
    let (status, _) = host.get("/v1/functions/flood/logs");
    assert_eq!(status, 401, "logs need deploy rights");

    // The CLI prints the recent lines.
    let out = Command::new(BIN)
        .args(["logs", "chatty", "--limit", "5"])
        .env("FNHOST_URL", &host.url)
        .env("FNHOST_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("called").count(), 2, "{text}");
}

#[test]
fn rollback_by_version_and_digest_through_the_api_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let math = guest("math");
    let v1 = host.deploy("calc", &math);
    let v2 = host.deploy("calc", &guest("echo"));
    assert_eq!(v2["version"], 2);
    assert!(host.call("calc.add", json!([1, 2])).get("error").is_some());

    // Nothing given: the version before the current one, as a new history entry.
    let (status, v) = rollback(&host, "calc", "", Some(TOKEN));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 3);
    assert_eq!(v["sha256"], v1["sha256"]);
    assert_eq!(host.result("calc.add", json!([1, 2])), json!(3));

    let (status, v) = rollback(&host, "calc", r#"{"to": 2}"#, Some(TOKEN));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["version"].clone(), v["sha256"].clone()),
        (json!(4), v2["sha256"].clone())
    );
    let sha = v1["sha256"].as_str().unwrap();
    let (status, v) = rollback(
        &host,
        "calc",
        &json!({ "to": sha }).to_string(),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 5);
    assert_eq!(host.result("calc.add", json!([2, 2])), json!(4));

    // Clear refusals, nothing changed by them.
    let (status, v) = rollback(&host, "calc", r#"{"to": 99}"#, Some(TOKEN));
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("99"),
        "{v}"
    );
    let (status, v) = rollback(&host, "calc", r#"{"to": "zz"}"#, Some(TOKEN));
    assert_eq!(status, 400, "{v}");
    let (status, v) = rollback(&host, "calc", r#"{"to": 1}"#, None);
    assert_eq!(status, 401, "{v}");
    let (status, v) = rollback(&host, "nothing-here", "", Some(TOKEN));
    assert_eq!(status, 404, "{v}");
    let (_, shown) = host.get("/v1/functions/calc");
    assert_eq!(shown["version"], 5, "{shown}");

    // The exact bytes of a version, for `fnhost run NAME@V`.
    let r = agent()
        .get(format!("{}/v1/functions/calc/versions/1/module", host.url))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut bytes = Vec::new();
    r.into_body().into_reader().read_to_end(&mut bytes).unwrap();
    assert!(bytes == math, "version 1's bytes come back unchanged");

    let cli = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("FNHOST_URL", &host.url)
            .env("FNHOST_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let out = cli(&["rollback", "calc", "--to", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(host.call("calc.add", json!([1, 2])).get("error").is_some());
    let out = cli(&["rollback", "calc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host.result("calc.add", json!([1, 2])), json!(3));
    let out = cli(&["rollback", "calc", "--to", "77"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("77"));

    // A restart serves the rolled-back version from the stored history.
    drop(host);
    let host = Host::start(BIN, dir.path(), &[]);
    let (_, shown) = host.get("/v1/functions/calc");
    assert_eq!(shown["version"], 7, "{shown}");
    assert_eq!(host.result("calc.add", json!([1, 2])), json!(3));
}
