//! The `fnhost` CLI client commands and curl, against the real binary.

use std::process::{Command, Output};

use fnhost_tests::{Host, TOKEN, guest};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

fn fnhost(host: &Host, args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("FNHOST_URL", &host.url)
        .env_remove("FNHOST_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("FNHOST_ADMIN_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn deploy_call_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    let wasm = dir.path().join("math.wasm");
    std::fs::write(&wasm, guest("math")).unwrap();
    let wasm = wasm.to_str().unwrap();

    let out = fnhost(&host, &["deploy", wasm, "--name", "math"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("admin token"),
        "{}",
        text(&out.stderr)
    );

    let out = fnhost(&host, &["deploy", wasm, "--name", "math"], Some("wrong"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unauthorized"),
        "{}",
        text(&out.stderr)
    );

    let out = fnhost(
        &host,
        &["deploy", wasm, "--name", "math", "--fuel", "1000000"],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["limits"]["fuel"], 1_000_000);

    let out = fnhost(&host, &["call", "math.add", "7", "3"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "10");

    let out = fnhost(
        &host,
        &["call", "math.add", "--params", r#"{"x": 2, "y": 5}"#],
        None,
    );
    assert_eq!(text(&out.stdout).trim(), "7");

    let out = fnhost(&host, &["call", "math.divide", "1", "0"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("-32010") && text(&out.stderr).contains("division by zero"));

    let out = fnhost(&host, &["call", "math.add", "--params", "not json"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--params is not valid JSON"),
        "{}",
        text(&out.stderr)
    );

    let out = fnhost(&host, &["list"], None);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("math") && text(&out.stdout).contains("math.add"));

    let out = fnhost(&host, &["remove", "math"], Some(TOKEN));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = fnhost(&host, &["remove", "math"], Some(TOKEN));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no module named `math`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_wrong_token_on_a_large_upload_is_always_answered_401_never_a_broken_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    // math with a 200 KB custom section: larger than the socket buffers, so the host answers
    // while the upload is still being written.
    let mut bytes = guest("math");
    let payload = vec![b'x'; 200 << 10];
    let name = b"padding";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    bytes.push(0);
    let mut len = section.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        bytes.push(if len == 0 { byte } else { byte | 0x80 });
        if len == 0 {
            break;
        }
    }
    bytes.extend_from_slice(&section);
    let wasm = dir.path().join("big.wasm");
    std::fs::write(&wasm, &bytes).unwrap();
    for attempt in 0..30 {
        let out = fnhost(
            &host,
            &["deploy", wasm.to_str().unwrap(), "--name", "big"],
            Some("wrong"),
        );
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("unauthorized") && !err.contains("cannot reach"),
            "attempt {attempt}: {err}"
        );
    }
}

#[test]
fn unreachable_host_is_a_clear_error_without_backtrace() {
    let out = Command::new(BIN)
        .args(["call", "math.add", "1", "2"])
        .env("FNHOST_URL", "http://127.0.0.1:9")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: cannot reach http://127.0.0.1:9/rpc"),
        "{err}"
    );
    assert!(!err.contains("stack backtrace"), "{err}");
}

#[test]
fn serve_deploys_a_directory_at_start_and_curl_calls_it() {
    let dir = tempfile::tempdir().unwrap();
    let wasm_dir = dir.path().join("wasm");
    std::fs::create_dir(&wasm_dir).unwrap();
    std::fs::write(wasm_dir.join("math.wasm"), guest("math")).unwrap();
    let data = dir.path().join("data");
    let host = Host::start(BIN, &data, &["--deploy-dir", wasm_dir.to_str().unwrap()]);
    let out = Command::new("curl")
        .args(["-s", &format!("{}/rpc", host.url), "-d"])
        .arg(r#"{"jsonrpc":"2.0","id":1,"method":"math.add","params":[7,3]}"#)
        .output();
    let Ok(out) = out else {
        panic!("curl is needed for this test (apt-get install curl)");
    };
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!({"jsonrpc":"2.0","id":1,"result":10}));
    drop(host);
    // Starting again with the same directory is a no-op deploy: still version 1.
    let host = Host::start(BIN, &data, &["--deploy-dir", wasm_dir.to_str().unwrap()]);
    assert_eq!(host.get("/v1/functions/math").1["version"], 1);
}
