//! JSON-RPC 2.0 in full (issue 4): the specification's examples mapped onto the example
//! functions, introspection (`system.listMethods`, `rpc.discover`), usage reporting, and the
//! newline-delimited TCP transport.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fnhost_tests::{Host, TOKEN, fixture, host_with_examples};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

/// Sends `body`, returns the parsed answer (Null when there was no body).
fn post(host: &Host, body: &str) -> Value {
    let (status, text) = host.rpc_raw(body);
    if text.is_empty() {
        assert_eq!(status, 204);
        return Value::Null;
    }
    parse(&text)
}

/// Sorts a batch answer by id so comparisons do not depend on order.
fn by_id(v: Value) -> Vec<Value> {
    let mut items = v.as_array().unwrap().clone();
    items.sort_by_key(|i| i["id"].to_string());
    items
}

#[test]
fn the_specification_examples_on_the_example_functions() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());

    // rpc call with positional parameters
    assert_eq!(
        post(
            &host,
            r#"{"jsonrpc":"2.0","method":"math.subtract","params":[42,23],"id":1}"#
        ),
        json!({"jsonrpc":"2.0","result":19,"id":1})
    );
    assert_eq!(
        post(
            &host,
            r#"{"jsonrpc":"2.0","method":"math.subtract","params":[23,42],"id":2}"#
        ),
        json!({"jsonrpc":"2.0","result":-19,"id":2})
    );
    // rpc call with named parameters (the spec's minuend/subtrahend are our x/y)
    assert_eq!(
        post(
            &host,
            r#"{"jsonrpc":"2.0","method":"math.subtract","params":{"y":23,"x":42},"id":3}"#
        ),
        json!({"jsonrpc":"2.0","result":19,"id":3})
    );
    assert_eq!(
        post(
            &host,
            r#"{"jsonrpc":"2.0","method":"math.subtract","params":{"x":42,"y":23},"id":4}"#
        ),
        json!({"jsonrpc":"2.0","result":19,"id":4})
    );
    // a notification; one for a method that does not exist is silent too
    assert_eq!(
        post(
            &host,
            r#"{"jsonrpc":"2.0","method":"echo.echo","params":[1,2,3,4,5]}"#
        ),
        Value::Null
    );
    assert_eq!(
        post(&host, r#"{"jsonrpc":"2.0","method":"foobar"}"#),
        Value::Null
    );
    // rpc call of non-existent method
    let v = post(&host, r#"{"jsonrpc":"2.0","method":"foobar","id":"1"}"#);
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32601), json!("1"))
    );
    // rpc call with invalid JSON
    let v = post(
        &host,
        r#"{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]"#,
    );
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32700), Value::Null)
    );
    // rpc call with invalid Request object
    let v = post(&host, r#"{"jsonrpc":"2.0","method":1,"params":"bar"}"#);
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32600), Value::Null)
    );
    // rpc call Batch, invalid JSON
    let v = post(
        &host,
        r#"[{"jsonrpc":"2.0","method":"math.add","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method""#,
    );
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32700), Value::Null)
    );
    // rpc call with an empty Array
    let v = post(&host, "[]");
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32600), Value::Null)
    );
    // rpc call with an invalid Batch (but not empty)
    let v = post(&host, "[1]");
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        (v[0]["error"]["code"].clone(), v[0]["id"].clone()),
        (json!(-32600), Value::Null)
    );
    // rpc call with invalid Batch
    let v = post(&host, "[1,2,3]");
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|i| i["error"]["code"] == -32600)
    );
    // rpc call Batch, mixed
    let v = post(
        &host,
        r#"[
        {"jsonrpc":"2.0","method":"math.add","params":[1,2],"id":"1"},
        {"jsonrpc":"2.0","method":"echo.echo","params":[7]},
        {"jsonrpc":"2.0","method":"math.subtract","params":[42,23],"id":"2"},
        {"foo":"boo"},
        {"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"},
        {"jsonrpc":"2.0","method":"directory.search","params":{"last_name":"Nobody"},"id":"9"}
    ]"#,
    );
    let items = by_id(v);
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(items[0], json!({"jsonrpc":"2.0","result":3,"id":"1"}));
    assert_eq!(items[1], json!({"jsonrpc":"2.0","result":19,"id":"2"}));
    assert_eq!(items[2]["error"]["code"], -32601);
    assert_eq!(items[2]["id"], "5");
    assert_eq!(items[3], json!({"jsonrpc":"2.0","result":[],"id":"9"}));
    assert_eq!(
        (items[4]["error"]["code"].clone(), items[4]["id"].clone()),
        (json!(-32600), Value::Null)
    );
    // rpc call Batch (all notifications)
    assert_eq!(
        post(
            &host,
            r#"[{"jsonrpc":"2.0","method":"echo.echo","params":[1,2,4]},{"jsonrpc":"2.0","method":"echo.echo","params":[7]}]"#
        ),
        Value::Null
    );
}

#[test]
fn ids_of_every_kind_are_echoed_and_params_are_checked_against_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    for id in [r#""abc""#, "0", "-7", "1.5", "null", r#""""#] {
        let body = format!(r#"{{"jsonrpc":"2.0","method":"math.add","params":[1,1],"id":{id}}}"#);
        let v = post(&host, &body);
        assert_eq!(v["id"], parse(id), "{v}");
        assert_eq!(v["result"], 2);
    }
    let e = host.error("math.add", json!({"x": 1, "z": 2}));
    assert_eq!(e["code"], -32602);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown parameter `z`"),
        "{e}"
    );
    assert_eq!(e["data"]["param"], "z");
    let e = host.error("math.add", json!({"x": 1}));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("missing required parameter `y`"),
        "{e}"
    );
    let e = host.error("math.add", json!([1, "two"]));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("`y` must be an integer, got a string"),
        "{e}"
    );
    let e = host.error("directory.search", json!({"nickname": "x"}));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("`number`, `last_name`, `first_name`"),
        "{e}"
    );
    // Optional params may be left out or null.
    assert!(
        host.result("directory.search", json!([null, "Smith"]))
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
}

#[test]
fn list_methods_and_discover_describe_every_deployed_method() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    let methods = host.result("system.listMethods", json!([]));
    let methods: Vec<&str> = methods
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for m in [
        "math.add",
        "math.divide",
        "echo.echo",
        "directory.search",
        "burn.burn",
        "counter.next",
    ] {
        assert!(methods.contains(&m), "{methods:?}");
    }
    assert!(methods.contains(&"system.listMethods"));
    assert_eq!(
        host.result("system.methodHelp", json!(["math.add"])),
        host_doc(&host, "math", "add")
    );
    assert_eq!(
        host.result("system.methodSignature", json!(["math.add"])),
        json!([["int", "int", "int"]])
    );

    let doc = host.result("rpc.discover", json!([]));
    assert!(doc["openrpc"].as_str().unwrap().starts_with("1."), "{doc}");
    assert_eq!(doc["info"]["title"], "fnhost");
    assert!(doc["info"]["version"].is_string());
    let listed = doc["methods"].as_array().unwrap();
    let (_, functions) = host.get("/v1/functions");
    let deployed: usize = functions["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["methods"].as_array().unwrap().len())
        .sum();
    assert_eq!(listed.len(), deployed);
    for m in listed {
        let name = m["name"].as_str().unwrap();
        let (module, function) = name.split_once('.').unwrap();
        assert_eq!(m["description"], host_doc(&host, module, function), "{m}");
        assert!(
            m["params"].is_array() && m["result"]["schema"].is_object(),
            "{m}"
        );
        for p in m["params"].as_array().unwrap() {
            assert!(
                p["name"].is_string() && p["schema"].is_object() && p["required"].is_boolean(),
                "{p}"
            );
        }
    }
    let add = listed.iter().find(|m| m["name"] == "math.add").unwrap();
    assert_eq!(add["params"][0]["schema"]["type"], "integer");
    assert_eq!(add["result"]["schema"]["type"], "integer");
    assert_eq!(host.error("rpc.nothing", json!([]))["code"], -32601);
}

fn host_doc(host: &Host, module: &str, function: &str) -> Value {
    let (_, detail) = host.get(&format!("/v1/functions/{module}"));
    let m = detail["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["function"] == function)
        .unwrap()
        .clone();
    assert!(
        !m["doc"].as_str().unwrap().is_empty(),
        "{module}.{function} has no doc"
    );
    m["doc"].clone()
}

#[test]
fn usage_shows_in_headers_error_data_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    let mut r = ureq::post(format!("{}/rpc", host.url))
        .send(r#"{"jsonrpc":"2.0","id":1,"method":"burn.burn","params":[10000]}"#)
        .unwrap();
    let fuel: u64 = r.headers()["x-fnhost-fuel-used"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(fuel > 10_000, "{fuel}");
    let _: u64 = r.headers()["x-fnhost-elapsed-us"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        parse(&r.body_mut().read_to_string().unwrap())["result"],
        10000
    );

    let e = host.error("math.divide", json!([1, 0]));
    assert!(e["data"]["fuel_used"].as_u64().unwrap() > 0, "{e}");
    assert!(e["data"]["elapsed_ms"].as_f64().is_some(), "{e}");
    host.result("math.add", json!([1, 2]));
    host.result("math.add", json!([3, 4]));
    host.error("math.add", json!(["x", 4]));

    let (_, detail) = host.get("/v1/functions/math");
    let usage = &detail["usage"];
    assert_eq!(usage["add"]["calls"], 3, "{usage}");
    assert_eq!(usage["add"]["errors"], 1);
    assert_eq!(usage["add"]["errors_by_kind"]["invalid_params"], 1);
    assert_eq!(usage["divide"]["errors_by_kind"]["guest_error"], 1);
    assert!(usage["add"]["fuel_used"].as_u64().unwrap() > 0);
}

/// `usage.{function}.{field}` of `module` on `GET /v1/functions/{module}` (0 when absent).
fn usage_of(host: &Host, module: &str, function: &str, field: &str) -> u64 {
    let (status, detail) = host.get(&format!("/v1/functions/{module}"));
    assert_eq!(status, 200, "{detail}");
    detail["usage"][function][field].as_u64().unwrap_or(0)
}

/// Waits (up to 10 s) for `usage.{function}.calls` of `module` to reach `want`; returns it.
fn calls_reach(host: &Host, module: &str, function: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = usage_of(host, module, function, "calls");
        if calls >= want || Instant::now() > deadline {
            return calls;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn notifications_are_executed_though_never_answered() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    host.deploy("byhand", &fixture("abi_by_hand"));
    assert_eq!(usage_of(&host, "math", "add", "calls"), 0);
    assert_eq!(usage_of(&host, "math", "multiply", "calls"), 0);

    // A single notification: 204, no body, and the call ran.
    let (status, text) = host.rpc_raw(r#"{"jsonrpc":"2.0","method":"math.add","params":[1,2]}"#);
    assert_eq!((status, text.as_str()), (204, ""));
    assert_eq!(calls_reach(&host, "math", "add", 1), 1);
    // A failing one ran too, and its failure was counted.
    let (status, _) = host.rpc_raw(r#"{"jsonrpc":"2.0","method":"math.divide","params":[1,0]}"#);
    assert_eq!(status, 204);
    assert_eq!(calls_reach(&host, "math", "divide", 1), 1);
    let (_, detail) = host.get("/v1/functions/math");
    assert_eq!(
        detail["usage"]["divide"]["errors_by_kind"]["guest_error"], 1,
        "{detail}"
    );
    // A batch of notifications only: every member ran.
    let (status, text) = host.rpc_raw(
        r#"[{"jsonrpc":"2.0","method":"math.multiply","params":[2,3]},
            {"jsonrpc":"2.0","method":"math.multiply","params":{"x":4,"y":5}},
            {"jsonrpc":"2.0","method":"math.add","params":[5,6]}]"#,
    );
    assert_eq!((status, text.as_str()), (204, ""));
    assert_eq!(calls_reach(&host, "math", "multiply", 2), 2);
    assert_eq!(calls_reach(&host, "math", "add", 2), 2);
    // Notifications mixed into a batch run; only the requests with an id are answered.
    let v = post(
        &host,
        r#"[{"jsonrpc":"2.0","method":"math.multiply","params":[2,3]},
            {"jsonrpc":"2.0","method":"math.add","params":[1,1],"id":7}]"#,
    );
    assert_eq!(v, json!([{"jsonrpc":"2.0","result":2,"id":7}]));
    assert_eq!(calls_reach(&host, "math", "multiply", 3), 3);
    // The guest really ran: its log line reaches the host's log.
    let (status, _) = host.rpc_raw(r#"{"jsonrpc":"2.0","method":"byhand.answer"}"#);
    assert_eq!(status, 204);
    let log = host.log_when(|l| l.contains("hello from WAT"));
    assert!(log.contains("hello from WAT"), "{log}");
    assert_eq!(calls_reach(&host, "byhand", "answer", 1), 1);
    // Nothing counted twice, nothing lost.
    assert_eq!(usage_of(&host, "math", "add", "calls"), 3);
    assert_eq!(usage_of(&host, "math", "add", "errors"), 0);
}

#[test]
fn batch_members_run_concurrently() {
    const N: usize = 4;
    const TIMEOUT_MS: u64 = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    // Fuel enough that only the deadline stops it.
    let (status, v) = host.deploy_with(
        "spin",
        &format!("?fuel=10000000000&timeout_ms={TIMEOUT_MS}"),
        &fixture("loop_forever"),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{v}");
    let batch: Vec<Value> = (0..N)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "spin.spin", "params": []}))
        .collect();
    let started = Instant::now();
    let v = post(&host, &Value::Array(batch).to_string());
    let took = started.elapsed();
    let items = v.as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(items.len(), N, "{v}");
    let mut ids: Vec<u64> = items.iter().map(|i| i["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..N as u64).collect::<Vec<_>>());
    for item in items {
        assert_eq!(item["error"]["code"], -32001, "{item}");
        assert_eq!(item["error"]["data"]["limit_ms"], TIMEOUT_MS, "{item}");
    }
    // One after another they would take N × the deadline; side by side, about one deadline.
    let serial = Duration::from_millis(TIMEOUT_MS * N as u64);
    assert!(
        took < Duration::from_millis(TIMEOUT_MS * (N as u64 - 1)),
        "the batch of {N} took {took:?}; in series it would take {serial:?}"
    );
}

fn tcp_host(dir: &std::path::Path, extra: &[&str]) -> (Host, String) {
    let mut args = vec!["--tcp", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let host = Host::start(BIN, dir, &args);
    host.deploy("math", &fnhost_tests::guest("math"));
    let addr = host
        .stdout_after("fnhost tcp listening on ")
        .expect("no tcp address printed");
    (host, addr)
}

#[test]
fn tcp_transport_answers_lines_batches_and_skips_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let (_host, addr) = tcp_host(dir.path(), &[]);
    let stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();

    writer
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"math.add\",\"params\":[7,3]}\n")
        .unwrap();
    reader.read_line(&mut line).unwrap();
    assert_eq!(parse(&line), json!({"jsonrpc":"2.0","id":1,"result":10}));

    // A notification gets no line; the next request's answer is the next line.
    writer
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"math.add\",\"params\":[1,1]}\n\n")
        .unwrap();
    writer
        .write_all(b"[{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"math.multiply\",\"params\":{\"x\":6,\"y\":7}},{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"nope.x\"}]\n")
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    let items = by_id(parse(&line));
    assert_eq!(items[0]["result"], 42);
    assert_eq!(items[1]["error"]["code"], -32601);

    writer.write_all(b"{oops\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(parse(&line)["error"]["code"], -32700);
}

#[test]
fn tcp_closes_slow_idle_and_oversized_clients_and_caps_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (host, addr) = tcp_host(
        dir.path(),
        &[
            "--tcp-idle-timeout-ms",
            "300",
            "--tcp-request-timeout-ms",
            "300",
            "--tcp-max-connections",
            "2",
        ],
    );
    let read_all = |mut s: TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    // Idle: closed without a word.
    let idle = TcpStream::connect(&addr).unwrap();
    assert_eq!(read_all(idle), "");
    // Slow: half a request, then nothing; closed with an error line.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"{\"jsonrpc\":\"2.0\",").unwrap();
    let out = read_all(slow);
    assert_eq!(parse(&out)["error"]["code"], -32600, "{out}");
    // Oversized: a line past the request limit (1 MiB) is refused and the connection closed.
    let mut big = TcpStream::connect(&addr).unwrap();
    let chunk = vec![b' '; 2 << 20];
    let _ = big.write_all(&chunk);
    let out = read_all(big);
    assert_eq!(parse(&out)["error"]["code"], -32044, "{out}");
    // Cap: two open connections, the third is told the host is busy.
    let a = TcpStream::connect(&addr).unwrap();
    let b = TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let c = TcpStream::connect(&addr).unwrap();
    let out = read_all(c);
    assert_eq!(parse(&out)["error"]["code"], -32006, "{out}");
    drop((a, b));
    // And the HTTP side never noticed.
    assert_eq!(host.result("math.add", json!([1, 2])), json!(3));
}
