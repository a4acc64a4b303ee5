//! Hostile guests (issue 3): every fixture in `tests/fixtures/` with the exact error class it
//! must produce; after each, the host is healthy and a normal function answers correctly.

use std::time::{Duration, Instant};

use fnhost_tests::{Host, TOKEN, fixture, guest};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// What a case must do.
enum Expect {
    /// The upload is refused with this HTTP status and kind; the message contains the text.
    Refused(u16, &'static str, &'static str),
    /// The upload succeeds; the call fails with this code and kind; the message contains the text.
    Fails(i64, &'static str, &'static str),
    /// The upload succeeds and the call returns this result.
    Returns(Value),
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    query: &'static str,
    params: Value,
    expect: Expect,
}

fn case(name: &'static str, query: &'static str, params: Value, expect: Expect) -> Case {
    Case {
        name,
        bytes: fixture(name),
        query,
        params,
        expect,
    }
}

/// A module defining `n` trivial functions besides the ABI exports.
fn many_functions(n: usize) -> Vec<u8> {
    let mut wat = String::from(
        "(module (memory (export \"memory\") 1)\
         (func (export \"fnhost_alloc\") (param i32) (result i32) (i32.const 1024))\
         (func (export \"fnhost_call_f\") (param i32 i32) (result i64) (i64.const 0))",
    );
    for i in 0..n {
        wat.push_str(&format!("(func (result i32) (i32.const {i}))"));
    }
    wat.push_str("(@custom \"fnhost.functions\" \"{\\\"abi\\\":1,\\\"name\\\":\\\"f\\\"}\"))");
    wat::parse_str(wat).unwrap()
}

fn assert_healthy(host: &mut Host, after: &str) {
    assert!(
        host.is_alive(),
        "the host died after {after}:\n{}",
        host.log()
    );
    let (status, health) = host.get("/healthz");
    assert_eq!(status, 200, "after {after}: {health}");
    assert_eq!(health["panics"], 0, "after {after}");
    assert_eq!(
        host.result("math.add", json!([20, 22])),
        json!(42),
        "after {after}"
    );
}

#[test]
fn every_hostile_fixture_gets_its_error_class_and_the_host_stays_healthy() {
    use Expect::*;
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(BIN, dir.path(), &[]);
    host.deploy("math", &guest("math"));

    let cases = vec![
        case(
            "loop_forever",
            "",
            json!([]),
            Fails(-32000, "out_of_fuel", "fuel"),
        ),
        case(
            "loop_forever",
            "?fuel=10000000000&timeout_ms=300",
            json!([]),
            Fails(-32001, "deadline_exceeded", "300 ms"),
        ),
        case(
            "start_loop",
            "",
            json!([]),
            Fails(-32000, "out_of_fuel", "fuel"),
        ),
        case(
            "memory_grow_bomb",
            "",
            json!([]),
            Fails(-32002, "memory_limit", "64 MiB"),
        ),
        case(
            "memory_declared_huge",
            "",
            json!([]),
            Refused(422, "memory_limit", "above the host's cap"),
        ),
        case(
            "memory_above_function_cap",
            "?memory_mib=1",
            json!([]),
            Fails(-32002, "memory_limit", "limit is 1 MiB"),
        ),
        case(
            "deep_recursion",
            "",
            json!([]),
            Fails(-32003, "stack_overflow", "stack"),
        ),
        case(
            "huge_table",
            "",
            json!([]),
            Refused(422, "memory_limit", "table of 10000000 elements"),
        ),
        case(
            "table_grow_bomb",
            "",
            json!([]),
            Fails(-32002, "memory_limit", "table"),
        ),
        case(
            "unreachable",
            "",
            json!([]),
            Fails(-32004, "guest_trap", "unreachable"),
        ),
        case(
            "int_div_zero",
            "",
            json!([]),
            Fails(-32004, "guest_trap", "divide by zero"),
        ),
        case(
            "result_ptr_oob",
            "",
            json!([]),
            Fails(-32005, "bad_guest_output", "outside"),
        ),
        case(
            "result_len_huge",
            "",
            json!([]),
            Fails(-32005, "bad_guest_output", "above the result limit"),
        ),
        case(
            "result_bad_utf8",
            "",
            json!([]),
            Fails(-32005, "bad_guest_output", "UTF-8"),
        ),
        case(
            "result_bad_json",
            "",
            json!([]),
            Fails(-32005, "bad_guest_output", "not valid JSON"),
        ),
        case(
            "result_bad_status",
            "",
            json!([]),
            Fails(-32005, "bad_guest_output", "status 7"),
        ),
        case(
            "alloc_returns_zero",
            "",
            json!([1]),
            Fails(-32005, "bad_guest_output", "fnhost_alloc returned 0"),
        ),
        case(
            "log_out_of_bounds",
            "",
            json!([]),
            Fails(-32004, "guest_trap", "outside the guest's memory"),
        ),
        case("log_flood", "", json!([]), Returns(Value::Null)),
        case(
            "import_env_system",
            "",
            json!([]),
            Refused(422, "bad_module", "`env.system`"),
        ),
        case(
            "no_abi",
            "",
            json!([]),
            Refused(422, "bad_module", "declares no fnhost ABI version"),
        ),
        case(
            "abi_v2",
            "",
            json!([]),
            Refused(422, "bad_module", "ABI v2"),
        ),
        case(
            "wrong_export_type",
            "",
            json!([]),
            Refused(422, "bad_module", "fnhost_call_f"),
        ),
        case(
            "two_memories",
            "",
            json!([]),
            Refused(422, "bad_module", "2 memories"),
        ),
        Case {
            name: "thirty_thousand_functions",
            bytes: many_functions(30_000),
            query: "",
            params: json!([]),
            expect: Refused(422, "bad_module", "above the host's cap of 20000"),
        },
        Case {
            name: "garbage_bytes",
            bytes: b"\x00asm\x01\x00\x00\x00\xff\xff\xff garbage".to_vec(),
            query: "",
            params: json!([]),
            expect: Refused(422, "bad_module", "not a valid WebAssembly module"),
        },
        Case {
            name: "empty_upload",
            bytes: Vec::new(),
            query: "",
            params: json!([]),
            expect: Refused(422, "bad_module", "empty"),
        },
    ];
    assert!(cases.len() >= 15);

    for (i, c) in cases.into_iter().enumerate() {
        let name = format!("h{i}");
        let what = format!("{} ({name})", c.name);
        let (status, v) = host.deploy_with(&name, c.query, &c.bytes, Some(TOKEN));
        match c.expect {
            Refused(want_status, kind, text) => {
                assert_eq!(status, want_status, "{what}: {v}");
                assert_eq!(v["error"]["kind"], kind, "{what}: {v}");
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains(text), "{what}: {msg:?} lacks {text:?}");
                assert_eq!(
                    host.get(&format!("/v1/functions/{name}")).0,
                    404,
                    "{what} was stored"
                );
            }
            Fails(code, kind, text) => {
                assert_eq!(status, 201, "{what}: {v}");
                let method = v["methods"][0]["name"].as_str().unwrap().to_owned();
                let e = host.error(&method, c.params.clone());
                assert_eq!(e["code"], code, "{what}: {e}");
                assert_eq!(e["data"]["kind"], kind, "{what}: {e}");
                assert_eq!(e["data"]["module"], name.as_str(), "{what}: {e}");
                assert_eq!(
                    e["data"]["function"], v["methods"][0]["function"],
                    "{what}: {e}"
                );
                assert!(e["data"]["digest"].is_string(), "{what}: {e}");
                let msg = e["message"].as_str().unwrap();
                assert!(msg.contains(text), "{what}: {msg:?} lacks {text:?}");
            }
            Returns(want) => {
                assert_eq!(status, 201, "{what}: {v}");
                assert_eq!(
                    host.result(&format!("{name}.f"), c.params.clone()),
                    want,
                    "{what}"
                );
            }
        }
        assert_healthy(&mut host, &what);
    }

    // An oversized upload is refused from its announced length, before it is read.
    let (status, v) = host.deploy_declaring("huge", 17 << 20);
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["kind"], "payload_too_large");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("16777216 bytes"),
        "{v}"
    );
    assert_healthy(&mut host, "oversized upload");

    // The log flood reached the log at most 100 times, and the rest was counted.
    let log = host.log_when(|l| l.contains("guest log lines dropped"));
    let floods = log.lines().filter(|l| l.contains("flood")).count();
    assert!((1..=101).contains(&floods), "{floods} flood lines");
    assert!(log.contains("guest log lines dropped"), "no drop warning");
    // Traps name their kind.
    let e = host.error("h9.f", json!([]));
    assert_eq!(e["data"]["trap"], "UnreachableCodeReached");
    let e = host.error("h10.f", json!([]));
    assert_eq!(e["data"]["trap"], "IntegerDivisionByZero");
    // Limits are named in data.
    let e = host.error("h0.spin", json!([]));
    assert_eq!(e["data"]["limit"], 50_000_000);
    let e = host.error("h3.f", json!([]));
    assert_eq!(e["data"]["limit_bytes"], 64 << 20);
}

#[test]
fn a_slow_compile_is_refused_within_its_budget_and_calls_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(BIN, dir.path(), &["--compile-timeout-ms", "1"]);
    let (status, v) = host.deploy_with("math", "", &guest("math"), Some(TOKEN));
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than the budget"),
        "{v}"
    );
    assert_eq!(host.get("/v1/functions/math").0, 404);
    assert!(host.is_alive());
}

#[test]
fn past_the_concurrency_bounds_callers_get_busy_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        BIN,
        dir.path(),
        &["--max-concurrent-calls", "2", "--max-calls-per-module", "1"],
    );
    host.deploy("math", &guest("math"));
    let (status, _) = host.deploy_with(
        "spin",
        "?fuel=10000000000&timeout_ms=1500",
        &fixture("loop_forever"),
        Some(TOKEN),
    );
    assert_eq!(status, 201);
    let url = host.url.clone();
    let spinner = std::thread::spawn(move || {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"spin.spin","params":[]});
        let mut r = ureq::post(format!("{url}/rpc"))
            .send(body.to_string())
            .unwrap();
        serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    // The module's one slot is taken: a second spin is busy at once, scope "module".
    let started = Instant::now();
    let e = host.error("spin.spin", json!([]));
    assert_eq!(e["code"], -32006, "{e}");
    assert_eq!(e["data"]["scope"], "module");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "busy was not immediate"
    );
    // Other modules still run.
    assert_eq!(host.result("math.add", json!([1, 2])), json!(3));
    assert_eq!(spinner.join().unwrap()["error"]["code"], -32001);
}
