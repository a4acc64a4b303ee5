//! Hostile guests (issue 3): every fixture in `tests/fixtures/` with the exact error class it
//! must produce; after each, the host is healthy and a normal function answers correctly.

use std::time::{Duration, Instant};

use fnhost_tests::{Host, TOKEN, fixture, guest, slow_to_compile};
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
            "abi_future",
            "",
            json!([]),
            Refused(422, "bad_module", "ABI v3"),
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
    const BUDGET: Duration = Duration::from_millis(2_000);
    let dir = tempfile::tempdir().unwrap();
    // math is deployed under the default budget; the restarted host loads it from its stored
    // artifact, so the tight budget below never applies to it.
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("math", &guest("math"));
    host.kill();
    let mut host = Host::start(
        BIN,
        dir.path(),
        &["--compile-timeout-ms", &BUDGET.as_millis().to_string()],
    );
    assert_eq!(host.result("math.add", json!([1, 2])), json!(3));

    let slow = slow_to_compile(10, 2_000);
    assert!(slow.len() < 64 << 10, "{} bytes", slow.len());
    let url = host.url.clone();
    let started = Instant::now();
    let deployer = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .put(format!("{url}/v1/functions/slow"))
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .send(&slow[..])
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (status, body, started.elapsed())
    });
    // Call math.add over and over while the deploy is in flight.
    let mut answered = Vec::new();
    let mut i = 0;
    while !deployer.is_finished() && started.elapsed() < Duration::from_secs(60) {
        assert_eq!(
            host.result("math.add", json!([i, 1])),
            json!(i + 1),
            "call {i}"
        );
        answered.push(started.elapsed());
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, v, refused_at) = deployer.join().unwrap();
    // Calls answered all through the compile: in its second half too, when the upload had long
    // been received and the compiler was busy.
    let during = answered
        .iter()
        .filter(|t| **t >= BUDGET / 2 && **t < refused_at)
        .count();
    assert!(
        during >= 3,
        "only {during} of {} calls answered between {:?} and the refusal at {refused_at:?}: \
         {answered:?}",
        answered.len(),
        BUDGET / 2
    );
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["kind"], "bad_module", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than the budget"),
        "{v}"
    );
    // Refused when the budget ran out, not when the compile would have ended.
    assert!(
        refused_at >= BUDGET && refused_at < BUDGET + Duration::from_secs(15),
        "refused after {refused_at:?}"
    );
    assert_eq!(host.get("/v1/functions/slow").0, 404);
    assert!(host.is_alive());
    assert_eq!(host.result("math.multiply", json!([6, 7])), json!(42));

    // The compile ran in a worker process, killed at the budget: its slot is free again. Two
    // more bombs back to back are each refused within the budget plus a second, the host's
    // memory stays small (the workers' does not count, and is capped), and a normal deploy
    // right after is not kept waiting.
    for name in ["slow2", "slow3"] {
        let asked = Instant::now();
        let (status, v) = host.deploy_with(name, "", &slow_to_compile(10, 2_000), Some(TOKEN));
        let took = asked.elapsed();
        assert_eq!(
            (status, v["error"]["kind"].as_str()),
            (422, Some("bad_module")),
            "{v}"
        );
        assert!(
            took < BUDGET + Duration::from_secs(1),
            "{name} refused after {took:?}"
        );
    }
    let asked = Instant::now();
    let (status, v) = host.deploy_with("echo", "", &guest("echo"), Some(TOKEN));
    assert_eq!(status, 201, "{v}");
    assert!(
        asked.elapsed() < BUDGET,
        "the deploy waited {:?}",
        asked.elapsed()
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", host.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(
        peak_kib < 400 << 10,
        "the host's peak RSS was {} MiB through three compile bombs",
        peak_kib >> 10
    );
    assert_eq!(host.result("math.add", json!([2, 2])), json!(4));
    assert!(host.log().contains("compile exceeded its time budget"));
}

/// A host that runs at most two calls at once, one per module, with `math` deployed.
fn host_with_two_call_slots() -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        BIN,
        dir.path(),
        &["--max-concurrent-calls", "2", "--max-calls-per-module", "1"],
    );
    host.deploy("math", &guest("math"));
    (dir, host)
}

#[test]
fn past_the_concurrency_bounds_callers_get_busy_at_once() {
    let (_dir, host) = host_with_two_call_slots();
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

/// Sends one JSON-RPC call from its own thread; the answer and when it came, from `started`.
fn call_in_background(
    url: &str,
    method: &str,
    started: Instant,
) -> std::thread::JoinHandle<(Value, Duration)> {
    let (url, method) = (url.to_owned(), method.to_owned());
    std::thread::spawn(move || {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []});
        let mut r = ureq::post(format!("{url}/rpc"))
            .send(body.to_string())
            .unwrap();
        let v = serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap();
        (v, started.elapsed())
    })
}

#[test]
fn past_the_host_wide_bound_every_module_gets_busy_at_once() {
    let (_dir, host) = host_with_two_call_slots();
    // Two names, one long call each: both host-wide slots taken, neither module over its own.
    for name in ["spin", "spin2"] {
        let (status, v) = host.deploy_with(
            name,
            "?fuel=10000000000&timeout_ms=3000",
            &fixture("loop_forever"),
            Some(TOKEN),
        );
        assert_eq!(status, 201, "{v}");
    }
    let started = Instant::now();
    let spinners = [
        call_in_background(&host.url, "spin.spin", started),
        call_in_background(&host.url, "spin2.spin", started),
    ];

    // A third module, with a free slot of its own, is refused for the host's bound. (Until the
    // spinners' requests have arrived it still answers; they take their slots within moments.)
    let (e, waited, busy_at) = loop {
        let asked = Instant::now();
        let r = host.call("math.add", json!([1, 2]));
        let waited = asked.elapsed();
        if r.get("error").is_some() {
            break (r["error"].clone(), waited, started.elapsed());
        }
        assert_eq!(r["result"], 3, "{r}");
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "two long calls are running and math.add was never refused"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(e["code"], -32006, "{e}");
    assert_eq!(e["data"]["kind"], "busy", "{e}");
    assert_eq!(e["data"]["scope"], "host", "{e}");
    assert_eq!(e["data"]["limit"], 2, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 2 calls"),
        "{e}"
    );
    // At once: not queued behind the spinners, which run until their 3 s deadline.
    assert!(waited < Duration::from_secs(1), "busy took {waited:?}");
    for s in spinners {
        let (v, done) = s.join().unwrap();
        assert_eq!(v["error"]["code"], -32001, "{v}");
        assert!(
            done > busy_at,
            "a long call ended at {done:?}, before busy was answered at {busy_at:?}"
        );
    }
    // Both slots are free again: calls answer, to every module.
    assert_eq!(host.result("math.add", json!([1, 2])), json!(3));
    let (_, detail) = host.get("/v1/functions/math");
    assert_eq!(
        detail["usage"]["add"]["errors_by_kind"]["busy"], 1,
        "{detail}"
    );
}
