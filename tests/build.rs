//! Builds the example guests in `functions/` for wasm32-unknown-unknown and tells the tests
//! where they are (`FNHOST_GUEST_DIR`).
//!
//! The nested cargo uses its own target directory, so it never waits on the lock the outer
//! build holds. `FNHOST_GUEST_CARGO` may name another cargo (e.g. the fallback toolchain's
//! `cargo-wasm` wrapper from `../shared/toolchain/install-wasm-toolchain.sh`).

use std::path::PathBuf;
use std::process::Command;

const GUESTS: [&str; 6] = ["math", "echo", "directory", "burn", "counter", "hello"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let target_dir = root.join("target").join("guests");
    for path in [
        "functions",
        "guest-sdk/sdk",
        "guest-sdk/macro",
        "guest-sdk/abi",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=FNHOST_GUEST_CARGO");

    let cargo = std::env::var("FNHOST_GUEST_CARGO")
        .unwrap_or_else(|_| std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for g in GUESTS {
        cmd.args(["-p", g]);
    }
    // Flags meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    if !status.success() {
        panic!(
            "building the example guests failed. Is the wasm target installed? \
             `rustup target add wasm32-unknown-unknown` (scripts/test.sh does it for you)"
        );
    }
    let out = target_dir.join("wasm32-unknown-unknown").join("guest");
    for g in GUESTS {
        let wasm = out.join(format!("{g}.wasm"));
        assert!(
            wasm.exists(),
            "expected {} after the guest build",
            wasm.display()
        );
    }
    println!("cargo:rustc-env=FNHOST_GUEST_DIR={}", out.display());
}
