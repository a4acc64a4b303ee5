//! The spine (issue 2): deploy the examples to the real binary and call every function;
//! tokens, versions, restarts, isolation, refusals, and the hand-written ABI guest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fnhost_tests::{EXAMPLES, Host, TOKEN, fixture, guest, host_with_examples};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn every_example_function_answers_by_position_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());

    assert_eq!(host.result("math.add", json!([7, 3])), json!(10));
    assert_eq!(host.result("math.add", json!({"x": 7, "y": 3})), json!(10));
    assert_eq!(host.result("math.subtract", json!([7, 3])), json!(4));
    assert_eq!(
        host.result("math.subtract", json!({"y": 3, "x": 7})),
        json!(4)
    );
    assert_eq!(host.result("math.multiply", json!([7, 3])), json!(21));
    assert_eq!(
        host.result("math.multiply", json!({"x": 7, "y": 3})),
        json!(21)
    );
    let q = host.result("math.divide", json!([7, 2])).as_f64().unwrap();
    assert_eq!(q, 3.5);
    let q = host
        .result("math.divide", json!({"x": 1, "y": 4}))
        .as_f64()
        .unwrap();
    assert_eq!(q, 0.25);

    let any = json!({"a": [1, 2.5, "three", null, true], "b": {"c": {}}});
    assert_eq!(host.result("echo.echo", any.clone()), any);
    assert_eq!(host.result("echo.echo", json!([1, "x"])), json!([1, "x"]));
    // More than the SDK's 256 KiB allocation arena (guest-sdk/sdk/src/alloc.rs): the guest's
    // allocator hands over to memory.grow and the answer is still exact.
    let big: Vec<Value> = (0..12_000)
        .map(|i| json!(format!("item {i:045}")))
        .collect();
    assert!(serde_json::to_vec(&big).unwrap().len() > 600 << 10);
    assert_eq!(host.result("echo.echo", json!(big.clone())), json!(big));

    let everyone = host.result("directory.search", json!({}));
    assert!(everyone.as_array().unwrap().len() >= 5, "{everyone}");
    let smiths = host.result("directory.search", json!({"last_name": "Smith"}));
    let smiths = smiths.as_array().unwrap();
    assert!(smiths.len() >= 2, "{smiths:?}");
    assert!(smiths.iter().all(|p| p["last_name"] == "Smith"));
    let one = &smiths[0];
    let by_all = host.result(
        "directory.search",
        json!({"last_name": "Smith", "first_name": one["first_name"]}),
    );
    assert!(by_all.as_array().unwrap().contains(one));
    let positional = host.result("directory.search", json!([one["number"], "Smith"]));
    assert_eq!(positional, json!([one]));

    assert_eq!(host.result("burn.burn", json!([1000])), json!(1000));
    assert_eq!(host.result("burn.burn", json!({"n": 1000})), json!(1000));
    assert_eq!(host.result("counter.next", json!([])), json!(1));
    assert_eq!(host.result("counter.next", json!({})), json!(1));
}

#[test]
fn deploy_answers_name_sha256_and_methods_with_docs() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let bytes = guest("math");
    let (status, v) = host.deploy_with("math", "", &bytes, Some(TOKEN));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["name"], "math");
    assert_eq!(v["version"], 1);
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    let methods = v["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for m in ["math.add", "math.subtract", "math.multiply", "math.divide"] {
        assert!(names.contains(&m), "{names:?}");
    }
    let add = methods.iter().find(|m| m["name"] == "math.add").unwrap();
    assert!(
        !add["doc"].as_str().unwrap().is_empty(),
        "add has no doc: {add}"
    );
    let params: Vec<&str> = add["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["x", "y"]);

    let (status, listing) = host.get("/v1/functions");
    assert_eq!(status, 200);
    assert_eq!(listing["functions"][0]["name"], "math");
    let (status, detail) = host.get("/v1/functions/math");
    assert_eq!(status, 200);
    assert_eq!(detail["limits"]["fuel"], 50_000_000);
    assert_eq!(detail["limits"]["timeout_ms"], 1_000);
    assert_eq!(detail["limits"]["memory_bytes"], 64 << 20);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 1);
    assert_eq!(host.get("/healthz").0, 200);
}

#[test]
fn divide_by_zero_is_the_guests_error_not_a_trap() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("math", &guest("math"));
    let e = host.error("math.divide", json!([1, 0]));
    assert_eq!(e["code"], -32010, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("division by zero"),
        "{e}"
    );
    assert_eq!(e["data"]["kind"], "guest_error");
    assert_eq!(e["data"]["module"], "math");
    assert_eq!(e["data"]["function"], "divide");
}

#[test]
fn bad_params_and_unknown_methods_are_standard_errors() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("math", &guest("math"));
    let e = host.error("math.add", json!({"x": 1}));
    assert_eq!(e["code"], -32602, "{e}");
    assert!(e["message"].as_str().unwrap().contains('y'), "{e}");
    let e = host.error("math.add", json!({"x": 1, "y": 2, "z": 3}));
    assert_eq!(e["code"], -32602, "{e}");
    let e = host.error("math.add", json!(["a", 2]));
    assert_eq!(e["code"], -32602, "{e}");
    let e = host.error("math.pow", json!([1, 2]));
    assert_eq!(
        (e["code"].clone(), e["data"]["reason"].clone()),
        (json!(-32601), json!("function_not_found"))
    );
    let e = host.error("nomodule.f", json!([]));
    assert_eq!(
        (e["code"].clone(), e["data"]["reason"].clone()),
        (json!(-32601), json!("module_not_found"))
    );
    let (status, text) = host.rpc_raw("{not json");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32700), Value::Null)
    );
}

#[test]
fn burn_runs_out_of_fuel_while_a_concurrent_add_answers() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("math", &guest("math"));
    // Enough fuel and time that the burn lasts a while, so the adds run while it does.
    let (status, v) = host.deploy_with(
        "burn",
        "?fuel=3000000000&timeout_ms=20000",
        &guest("burn"),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{v}");

    let started = Instant::now();
    let url = host.url.clone();
    let burner = std::thread::spawn(move || {
        let body = json!({"jsonrpc":"2.0","id":9,"method":"burn.burn","params":[u64::MAX / 2]});
        let mut r = ureq::post(format!("{url}/rpc"))
            .send(body.to_string())
            .unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (v, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut adds_done = Vec::new();
    for i in 0..5 {
        assert_eq!(host.result("math.add", json!([i, 1])), json!(i + 1));
        adds_done.push(started.elapsed());
    }
    let (burn, burn_done) = burner.join().unwrap();
    assert_eq!(burn["error"]["code"], -32000, "{burn}");
    assert_eq!(burn["error"]["data"]["kind"], "out_of_fuel");
    assert_eq!(burn["error"]["data"]["limit"], 3_000_000_000u64);
    assert!(
        adds_done.iter().all(|t| *t < burn_done),
        "math.add waited for burn: adds at {adds_done:?}, burn done at {burn_done:?}"
    );
}

#[test]
fn deploys_without_the_right_token_are_401_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let bytes = guest("math");
    for token in [None, Some("wrong-token"), Some("")] {
        let (status, v) = host.deploy_with("math", "", &bytes, token);
        assert_eq!(status, 401, "{token:?}: {v}");
        assert_eq!(v["error"]["kind"], "unauthorized");
    }
    assert_eq!(host.get("/v1/functions/math").0, 404);
    assert_eq!(files_in(&dir.path().join("modules")), 0);
    assert_eq!(files_in(&dir.path().join("names")), 0);
    assert_eq!(host.error("math.add", json!([1, 2]))["code"], -32601);

    host.deploy("math", &bytes);
    assert_eq!(host.delete("math", None).0, 401);
    assert_eq!(host.delete("math", Some("nope")).0, 401);
    assert_eq!(host.result("math.add", json!([1, 2])), json!(3));
}

#[test]
fn bad_names_are_400_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    for name in ["Math", "9lives", "a.b", "system", "rpc", &"a".repeat(64)] {
        let (status, v) = host.deploy_with(name, "", &guest("math"), Some(TOKEN));
        assert_eq!(status, 400, "{name}: {v}");
        assert_eq!(v["error"]["kind"], "bad_name");
    }
    assert_eq!(files_in(&dir.path().join("modules")), 0);
}

#[test]
fn identical_bytes_are_a_no_op_and_new_bytes_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let first = host.deploy_with("f", "", &guest("math"), Some(TOKEN));
    assert_eq!(first.0, 201);
    let again = host.deploy_with("f", "", &guest("math"), Some(TOKEN));
    assert_eq!(again.0, 200, "{}", again.1);
    assert_eq!(again.1["version"], 1);
    assert_eq!(again.1["sha256"], first.1["sha256"]);
    assert_eq!(again.1["deployed_at"], first.1["deployed_at"]);

    let second = host.deploy_with("f", "", &guest("echo"), Some(TOKEN));
    assert_eq!(second.0, 201);
    assert_eq!(second.1["version"], 2);
    let (_, detail) = host.get("/v1/functions/f");
    let history = detail["versions"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["sha256"], first.1["sha256"]);
    assert_eq!(history[1]["sha256"], second.1["sha256"]);
    assert_eq!(host.result("f.echo", json!([5])), json!([5]));
    assert_eq!(host.error("f.add", json!([1, 2]))["code"], -32601);
}

#[test]
fn limits_above_the_host_maximum_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let (status, v) = host.deploy_with("m", "?fuel=99999999999999", &guest("math"), Some(TOKEN));
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["kind"], "bad_limits");
    let (status, v) = host.deploy_with("m", "?fule=1", &guest("math"), Some(TOKEN));
    assert_eq!(status, 400, "{v}");
    let (status, v) = host.deploy_with(
        "m",
        "?memory_mib=8&timeout_ms=250",
        &guest("math"),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["limits"]["memory_bytes"], 8 << 20);
    assert_eq!(v["limits"]["timeout_ms"], 250);
}

/// `key=value` fields of a tracing log line, quotes taken off the values.
fn log_fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k, v.trim_matches('"')))
        .collect()
}

/// The digests of the `module loaded` lines in `log`, by where they came from.
fn loaded_from(log: &str) -> HashMap<String, Vec<String>> {
    let mut from: HashMap<String, Vec<String>> = HashMap::new();
    for line in log.lines().filter(|l| l.contains("module loaded")) {
        let fields = log_fields(line);
        let (Some(source), Some(digest)) = (fields.get("from"), fields.get("digest")) else {
            panic!("a `module loaded` line without `from` or `digest`: {line}");
        };
        from.entry((*source).to_owned())
            .or_default()
            .push((*digest).to_owned());
    }
    from
}

#[test]
fn a_killed_host_restarts_with_every_function_callable() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let digests: std::collections::BTreeMap<&str, String> = EXAMPLES
        .iter()
        .map(|name| {
            let digest = host.deploy(name, &guest(name))["sha256"]
                .as_str()
                .unwrap()
                .to_owned();
            (*name, digest)
        })
        .collect();
    host.deploy("math2", &guest("math"));
    host.kill();

    let host = Host::start(BIN, dir.path(), &[]);
    // Every example, every function.
    assert_eq!(host.result("math.add", json!([7, 3])), json!(10));
    assert_eq!(host.result("math.subtract", json!([7, 3])), json!(4));
    assert_eq!(
        host.result("math.multiply", json!({"x": 7, "y": 3})),
        json!(21)
    );
    assert_eq!(host.result("math.divide", json!([7, 2])), json!(3.5));
    assert_eq!(host.result("math2.multiply", json!([7, 3])), json!(21));
    assert_eq!(host.result("echo.echo", json!({"k": 1})), json!({"k": 1}));
    let smiths = host.result("directory.search", json!({"last_name": "Smith"}));
    assert!(smiths.as_array().unwrap().len() >= 2, "{smiths}");
    assert!(
        smiths
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["last_name"] == "Smith"),
        "{smiths}"
    );
    assert_eq!(host.result("burn.burn", json!({"n": 5000})), json!(5000));
    assert_eq!(host.result("counter.next", json!([])), json!(1));
    let (_, listing) = host.get("/v1/functions");
    assert_eq!(
        listing["functions"].as_array().unwrap().len(),
        EXAMPLES.len() + 1
    );
    // Every module came from its stored artifact (at its first call or from the background
    // loader): nothing was compiled again.
    let all_loaded = |log: &str| {
        let from = loaded_from(log);
        digests
            .values()
            .all(|d| from.get("artifact").is_some_and(|a| a.contains(d)))
    };
    let log = host.log_when(all_loaded);
    let from = loaded_from(&log);
    assert!(
        all_loaded(&log),
        "not every module was loaded from its artifact: {from:?}\n{log}"
    );
    assert_eq!(
        from.get("compile"),
        None,
        "recompiled after a restart:\n{log}"
    );
    assert_eq!(
        from.keys().collect::<Vec<_>>(),
        ["artifact"],
        "unknown `from`: {from:?}"
    );

    // Removing one name keeps the other that shares its bytes.
    assert_eq!(host.delete("math", Some(TOKEN)).0, 200);
    assert_eq!(host.result("math2.add", json!([1, 1])), json!(2));
    host.kill();

    let host = Host::start(BIN, dir.path(), &[]);
    assert_eq!(host.error("math.add", json!([1, 1]))["code"], -32601);
    assert_eq!(host.result("math2.add", json!([1, 1])), json!(2));
    // math2 still has the artifact of the bytes it shares with the removed math.
    let math_loaded = |l: &str| {
        loaded_from(l)
            .get("artifact")
            .is_some_and(|a| a.contains(&digests["math"]))
    };
    let log = host.log_when(math_loaded);
    let from = loaded_from(&log);
    assert!(math_loaded(&log), "{from:?}\n{log}");
    assert_eq!(
        from.get("compile"),
        None,
        "recompiled after a restart:\n{log}"
    );
}

#[test]
fn a_module_whose_bytes_no_longer_match_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let v = host.deploy("math", &guest("math"));
    host.deploy("echo", &guest("echo"));
    host.kill();

    let sha = v["sha256"].as_str().unwrap();
    let path = dir.path().join("modules").join(format!("{sha}.wasm"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let host = Host::start(BIN, dir.path(), &[]);
    let e = host.error("math.add", json!([1, 2]));
    assert_eq!(e["code"], -32007, "{e}");
    let log = host.log_when(|l| l.contains("do not match their sha256"));
    assert!(log.contains("do not match their sha256"), "{log}");
    assert!(log.contains("math"));
    assert_eq!(host.result("echo.echo", json!([1])), json!([1]));
    let (_, detail) = host.get("/v1/functions/math");
    assert_eq!(detail["status"], "unavailable");
    // Deploying the right bytes again heals it.
    assert_eq!(
        host.deploy_with("math", "", &guest("math"), Some(TOKEN)).0,
        201
    );
    assert_eq!(host.result("math.add", json!([1, 2])), json!(3));
}

#[test]
fn every_call_gets_a_fresh_instance() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("counter", &guest("counter"));
    host.deploy("wcounter", &fixture("global_counter"));
    for _ in 0..5 {
        assert_eq!(host.result("counter.next", json!([])), json!(1));
        assert_eq!(host.result("wcounter.next", json!([])), json!(1));
    }
}

#[test]
fn a_module_importing_env_system_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let (status, v) = host.deploy_with("evil", "", &fixture("import_env_system"), Some(TOKEN));
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["kind"], "bad_module");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("env.system"),
        "{v}"
    );
    assert_eq!(v["error"]["data"]["import"], "env.system");
    assert_eq!(files_in(&dir.path().join("modules")), 0);
    assert_eq!(host.get("/v1/functions/evil").0, 404);
}

#[test]
fn a_module_for_another_abi_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let (status, v) = host.deploy_with("future", "", &fixture("abi_future"), Some(TOKEN));
    assert_eq!(status, 422, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("v3") && msg.contains("v1 and v2"), "{msg}");
}

#[test]
fn the_wat_guest_written_from_the_abi_doc_works() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("byhand", &fixture("abi_by_hand"));
    assert_eq!(
        host.result("byhand.answer", json!([])),
        json!({"answer": 42})
    );
    let any = json!({"deep": [1, {"x": "y"}]});
    assert_eq!(host.result("byhand.echo_raw", any.clone()), any);
    let e = host.error("byhand.refuse", json!([]));
    assert_eq!(e["code"], 7, "{e}");
    assert_eq!(e["message"], "refused by hand");
    // The guest's log line reaches the host's log, naming module and function.
    let said =
        |l: &str| l.contains("hello from WAT") && l.contains("byhand") && l.contains("answer");
    let log = host.log_when(|log| log.lines().any(said));
    assert!(log.lines().any(said), "{log}");
}

/// ABI v1 and v2 modules are served side by side, and both survive a restart (the SDK's
/// examples are v2; `abi_by_hand` is v1). A v2 guest that asks for its params outside its
/// memory traps, naming the range; the host stays up.
#[test]
fn abi_v1_and_v2_modules_are_served_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(BIN, dir.path(), &[]);
    host.deploy("v1", &fixture("abi_by_hand"));
    host.deploy("v2", &fixture("abi_v2_by_hand"));
    host.deploy("math", &guest("math"));
    let any = json!({"deep": [1, {"x": "y"}], "s": "\u{e9}"});
    for _ in 0..2 {
        assert_eq!(host.result("v1.echo_raw", any.clone()), any);
        assert_eq!(host.result("v2.echo_raw", any.clone()), any);
        assert_eq!(host.result("v2.echo_raw", json!([])), json!([]));
        assert_eq!(host.result("math.add", json!([2, 3])), json!(5));
        let e = host.error("v2.bad_ptr", json!(["0123456789abcdef"]));
        assert_eq!(
            (e["code"].as_i64(), e["data"]["kind"].as_str()),
            (Some(-32004), Some("guest_trap")),
            "{e}"
        );
        let message = e["message"].as_str().unwrap_or_default();
        assert!(message.contains("65526..65546"), "{e}");
        host.kill();
        host = Host::start(BIN, dir.path(), &[]);
    }
}

#[test]
fn an_infinite_loop_is_stopped_and_the_host_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(BIN, dir.path(), &[]);
    host.deploy("spin", &fixture("loop_forever"));
    host.deploy("math", &guest("math"));
    let e = host.error("spin.spin", json!([]));
    assert_eq!(e["code"], -32000, "{e}");
    let (status, v) = host.deploy_with(
        "slow",
        "?fuel=10000000000&timeout_ms=200",
        &fixture("loop_forever"),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{v}");
    let started = Instant::now();
    let e = host.error("slow.spin", json!([]));
    assert_eq!(e["code"], -32001, "{e}");
    assert_eq!(e["data"]["limit_ms"], 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(host.is_alive());
    assert_eq!(host.result("math.add", json!([2, 2])), json!(4));
}
