//! A guest and a host set up for a call's two attempts (host/src/sandbox/call.rs): a small
//! slice, so a short loop needs the rerun.

use std::sync::Arc;

use fnhost::config::LimitOverrides;
use fnhost::{App, AppState, Config};

/// Fuel per slice in these tests: the guest's loop needs several.
pub const SLICE: u64 = 50_000;

/// `spin()` logs one line, then counts to 100,000 (a few hundred thousand units of fuel) and
/// returns "done"; `quick()` returns "quick" at once.
pub const SPINNER: &str = r#"
(module
  (import "fnhost" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "\00\"done\"")
  (data (i32.const 32) "spinning")
  (data (i32.const 48) "\00\"quick\"")
  (func (export "fnhost_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "fnhost_call_spin") (param i32 i32) (result i64)
    (local $i i32)
    (call $log (i32.const 2) (i32.const 32) (i32.const 8))
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 7)))
  (func (export "fnhost_call_quick") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 48) (i64.const 32)) (i64.const 8)))
  (@custom "fnhost.functions" "{\"abi\":1,\"name\":\"spin\",\"doc\":\"Spins.\",\"params\":[],\"result\":{}}\n{\"abi\":1,\"name\":\"quick\",\"doc\":\"Returns at once.\",\"params\":[],\"result\":{}}")
)
"#;

pub async fn start() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some("t".into());
    config.fuel_yield_interval = SLICE;
    let app = App::start(config).await.unwrap();
    (dir, app)
}

pub async fn deploy(app: &AppState, name: &str, fuel: Option<u64>) {
    let overrides = LimitOverrides {
        fuel,
        ..Default::default()
    };
    app.registry
        .deploy(name, Arc::from(wat::parse_str(SPINNER).unwrap()), overrides)
        .await
        .unwrap();
}
