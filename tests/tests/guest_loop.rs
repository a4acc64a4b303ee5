//! The guest author's loop with the real binary and a real cargo: `fnhost new` scaffolds a
//! crate that builds, `fnhost run` makes one call locally under the host's limits (exit codes
//! tell the outcome), `fnhost inspect` says what an upload would do, and `fnhost dev` rebuilds
//! and redeploys on every save.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fnhost_tests::{Host, TOKEN, fixture, guest};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// Scaffolded crates share one target dir, so a rerun does not rebuild their dependencies.
fn scaffold_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target")
}

fn fnhost(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .env_remove("FNHOST_SDK")
        .env_remove("FNHOST_URL")
        .env_remove("FNHOST_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

#[test]
fn run_exit_codes_tell_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("math.wasm"), guest("math")).unwrap();
    for name in ["loop_forever", "no_abi", "memory_grow_bomb", "unreachable"] {
        std::fs::write(d.join(format!("{name}.wasm")), fixture(name)).unwrap();
    }

    let out = fnhost(d, &["run", "math.wasm", "add", "40", "2"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "42");
    assert!(text(&out.stderr).contains("fuel"), "{}", text(&out.stderr));

    let out = fnhost(
        d,
        &[
            "run",
            "math.wasm",
            "add",
            "--json",
            "--params",
            r#"{"x": 1, "y": 2}"#,
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], 3);
    assert!(v["fuel_used"].as_u64().unwrap() > 0, "{v}");
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 0, "{v}");

    // The guest's own error, and arguments the function does not take: 1.
    let out = fnhost(d, &["run", "math.wasm", "divide", "1", "0"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("guest_error"),
        "{}",
        text(&out.stderr)
    );
    let out = fnhost(d, &["run", "math.wasm", "add", "one", "two"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));

    // The sandbox stopped it: 2, under the limits given on the command line.
    let out = fnhost(
        d,
        &["run", "loop_forever.wasm", "spin", "--fuel", "1000000"],
    );
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("out_of_fuel"),
        "{}",
        text(&out.stderr)
    );
    let out = fnhost(
        d,
        &["run", "memory_grow_bomb.wasm", "f", "--memory-mib", "8"],
    );
    assert_eq!(code(&out), 2, "{}", text(&out.stderr));

    // Refused before running: 3.
    let out = fnhost(d, &["run", "no_abi.wasm", "f"]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
    let out = fnhost(d, &["run", "math.wasm", "no_such_function"]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let out = fnhost(d, &["run", "missing.wasm", "f"]);
    assert_ne!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("missing.wasm"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_replays_a_stored_version() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("calc", &guest("math"));
    host.deploy("calc", &guest("echo"));
    let run = |target: &str, token: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(["run", target, "add", "1", "2"])
            .env("FNHOST_URL", &host.url)
            .env_remove("FNHOST_ADMIN_TOKEN");
        if let Some(t) = token {
            c.env("FNHOST_ADMIN_TOKEN", t);
        }
        c.output().unwrap()
    };
    let out = run("calc@1", Some(TOKEN));
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "3");
    // The current version (echo) has no `add`.
    let out = run("calc", Some(TOKEN));
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let out = run("calc@9", Some(TOKEN));
    assert_ne!(code(&out), 0);
    assert!(text(&out.stderr).contains('9'), "{}", text(&out.stderr));
    let out = run("calc@1", None);
    assert_ne!(code(&out), 0);
    assert!(text(&out.stderr).contains("token"), "{}", text(&out.stderr));
}

#[test]
fn inspect_says_what_an_upload_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("math.wasm"), guest("math")).unwrap();
    std::fs::write(d.join("two.wasm"), fixture("two_memories")).unwrap();
    std::fs::write(d.join("env.wasm"), fixture("import_env_system")).unwrap();

    let out = fnhost(d, &["inspect", "math.wasm"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains("accepted: ABI v2"), "{t}");
    assert!(t.contains("add(x: int, y: int) -> int"), "{t}");

    let out = fnhost(d, &["inspect", "two.wasm", "--json"]);
    assert_eq!(code(&out), 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accepted"], false);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("memor"),
        "{v}"
    );

    let out = fnhost(d, &["inspect", "env.wasm"]);
    assert_eq!(code(&out), 1);
    let t = text(&out.stdout);
    assert!(t.starts_with("refused ("), "{t}");
    assert!(t.contains("env"), "the refusal names the import: {t}");
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(rx: &mpsc::Receiver<String>, what: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(what) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {what:?} within {within:?}; saw {seen:#?}");
}

#[test]
fn new_then_build_run_and_dev_redeploys_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = fnhost(d, &["new", "greeter"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let out = fnhost(d, &["new", "greeter"]);
    assert_ne!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    let out = fnhost(d, &["new", "Not A Name"]);
    assert_ne!(code(&out), 0);
    let out = fnhost(d, &["new", "other", "--sdk", "/nonexistent/sdk"]);
    assert_ne!(code(&out), 0);
    assert!(
        text(&out.stderr).contains("/nonexistent/sdk"),
        "{}",
        text(&out.stderr)
    );

    // What the scaffold's README says: `cargo t` passes natively, `cargo build --release`
    // makes the guest.
    let crate_dir = d.join("greeter");
    let status = Command::new("cargo")
        .args(["t", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .status()
        .unwrap();
    assert!(status.success(), "the new crate's own tests fail");
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .status()
        .unwrap();
    assert!(status.success());
    let wasm = scaffold_target().join("wasm32-unknown-unknown/release/greeter.wasm");
    let out = fnhost(d, &["run", wasm.to_str().unwrap(), "greet", "Ann", "true"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "\"Hello, Ann!\"");
    let out = fnhost(d, &["run", wasm.to_str().unwrap(), "divide", "1", "0"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));

    // `fnhost dev`: a local host, a call after every deploy, a rebuild on every save.
    let mut dev = Command::new(BIN)
        .args(["dev", "greeter", "--call", "greet Ann"])
        .current_dir(d)
        .env("CARGO_TARGET_DIR", scaffold_target())
        .env_remove("FNHOST_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = dev.id();
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            // The whole group: dev, its local host, a cargo build in progress.
            let _ = Command::new("kill")
                .args(["-s", "INT", "--", &format!("-{}", self.0)])
                .status();
        }
    }
    let stop = Stop(pgid);
    let rx = lines_of(&mut dev);
    wait_for(&rx, "\"Hello, Ann.\"", Duration::from_secs(300));

    let lib = crate_dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("\"Hello, ", "\"Hi there, ")).unwrap();
    wait_for(&rx, "\"Hi there, Ann.\"", Duration::from_secs(300));

    drop(stop);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dev.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "fnhost dev did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
