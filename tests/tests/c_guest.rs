//! A guest written in C (`functions/cmath`, with `guest-sdk/c/fnhost.h` and no Rust) on the real
//! host: it passes the upload checks and answers by position and by name, with its own errors,
//! invalid params it finds itself, exact numbers and log lines.
//!
//! The module is built here, by `functions/cmath/build.sh`, not in `build.rs`: that script needs
//! clang and wasm-ld (it installs Debian's `clang` and `lld` when they are missing), and only
//! this test should depend on a C toolchain, not every build of the test crate. It is built
//! once per test binary, into this crate's temporary target directory.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use fnhost_tests::Host;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// cmath.wasm, built by its build script.
fn cmath() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cmath.wasm");
        let status = Command::new("bash")
            .arg(root.join("functions/cmath/build.sh"))
            .arg(&out)
            .status()
            .expect("cannot run functions/cmath/build.sh");
        assert!(
            status.success(),
            "functions/cmath/build.sh failed: it needs clang and lld (apt-get install clang lld)"
        );
        std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))
    })
}

/// A host with cmath deployed as `cmath`.
fn host(dir: &Path) -> Host {
    let host = Host::start(BIN, dir, &[]);
    let deployed = host.deploy("cmath", cmath());
    assert_eq!(deployed["name"], "cmath", "{deployed}");
    host
}

#[test]
fn the_c_guest_passes_the_upload_checks_with_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    let (status, detail) = host.get("/v1/functions/cmath");
    assert_eq!(status, 200, "{detail}");
    let methods = detail["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cmath.divide", "cmath.mean", "cmath.scale", "cmath.greet"]
    );
    assert_eq!(
        methods[0]["doc"],
        "Divides x by y.\n\nDividing by zero is an error, not a trap."
    );
    assert_eq!(
        methods[2]["params"][1],
        json!({"name": "factor", "required": false, "schema": {"type": "number"}})
    );
}

#[test]
fn params_by_position_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    assert_eq!(host.result("cmath.divide", json!([1, 4])), json!(0.25));
    assert_eq!(
        host.result("cmath.divide", json!({"y": 4, "x": 1})),
        json!(0.25)
    );
    assert_eq!(host.result("cmath.mean", json!([[1, 2, 3, 4]])), json!(2.5));
    assert_eq!(
        host.result("cmath.mean", json!({"values": [-1.5, 1.5]})),
        json!(0.0)
    );
    // An optional parameter left out, given as null, and given.
    assert_eq!(
        host.result("cmath.scale", json!([[1, 2.5]])),
        json!([1.0, 2.5])
    );
    assert_eq!(
        host.result("cmath.scale", json!({"values": [1, 2.5], "factor": null})),
        json!([1.0, 2.5])
    );
    assert_eq!(
        host.result("cmath.scale", json!({"factor": -2, "values": [1, 2.5]})),
        json!([-2.0, -5.0])
    );
    assert_eq!(host.result("cmath.scale", json!([[]])), json!([]));
    // Strings (escapes in, escapes out) and booleans.
    assert_eq!(
        host.result("cmath.greet", json!(["Ann"])),
        json!("Hello, Ann.")
    );
    assert_eq!(
        host.result(
            "cmath.greet",
            json!({"name": "b\"ob\u{e9}\n", "shout": true})
        ),
        json!("HELLO, B\"OB\u{e9}\n!")
    );
    assert_eq!(
        host.result(
            "cmath.greet",
            json!({"shout": false, "name": "Zo\u{1f600}"})
        ),
        json!("Hello, Zo\u{1f600}.")
    );
}

#[test]
fn numbers_come_back_exact() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    for x in [
        -444576.91823344317,
        0.1,
        1e-7,
        123456789012345680.0,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -0.0,
        1e21,
        2.5e-5,
    ] {
        let back = host.result("cmath.divide", json!([x, 1]));
        let back = back.as_f64().unwrap_or_else(|| panic!("{x:?} -> {back}"));
        assert_eq!(back.to_bits(), x.to_bits(), "{x:?} came back as {back:?}");
    }
    // Many random ones, the check, through scale's array.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let xs: Vec<f64> = (0..64)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            f64::from_bits(state)
        })
        .filter(|x| x.is_finite())
        .collect();
    let back = host.result("cmath.scale", json!([xs]));
    let back: Vec<f64> = back
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(back.len(), xs.len());
    for (b, x) in back.iter().zip(&xs) {
        assert_eq!(b.to_bits(), x.to_bits(), "{x:?} came back as {b:?}");
    }
}

#[test]
fn guest_errors_with_and_without_a_code_and_the_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    let e = host.error("cmath.divide", json!({"x": 1, "y": 0}));
    assert_eq!(e["code"], -32010, "{e}");
    assert_eq!(e["message"], "division by zero", "{e}");
    assert_eq!(e["data"]["kind"], "guest_error", "{e}");
    assert_eq!(e["data"]["function"], "divide", "{e}");
    let log = host.log_when(|l| l.contains("division by zero refused"));
    assert!(
        log.contains("cmath.divide: division by zero refused"),
        "{log}"
    );

    // A code outside JSON-RPC's reserved range is kept, and the data travels along.
    let e = host.error("cmath.mean", json!([[]]));
    assert_eq!(e["code"], 4001, "{e}");
    assert_eq!(e["message"], "the mean of no values is undefined", "{e}");
    assert_eq!(e["data"]["guest_data"], json!({"count": 0}), "{e}");
}

#[test]
fn invalid_params_found_by_the_host_and_by_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(dir.path());
    // Top level: the host checks against the metadata before running the guest.
    for params in [
        json!([1]),
        json!({"x": 1}),
        json!(["a", 1]),
        json!({"x": 1, "y": 2, "z": 3}),
        json!([1, 2, 3]),
    ] {
        let e = host.error("cmath.divide", params.clone());
        assert_eq!(e["code"], -32602, "{params} -> {e}");
    }
    // Inside an array: only the guest knows, and says which parameter (status 2).
    let e = host.error("cmath.mean", json!([[1, "two"]]));
    assert_eq!(e["code"], -32602, "{e}");
    assert_eq!(e["data"]["param"], "values", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("expected an array of numbers"),
        "{e}"
    );
    let e = host.error("cmath.greet", json!([["Ann"]]));
    assert_eq!(
        (e["code"].clone(), e["data"]["param"].clone()),
        (json!(-32602), json!("name")),
        "{e}"
    );
}
