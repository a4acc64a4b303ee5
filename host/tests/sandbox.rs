//! A call's two attempts (host/src/sandbox/call.rs): a first one on the calling task with its
//! fuel capped at one slice, and, only for a call that spends the whole slice, a rerun with
//! the async API. These tests set a small slice so a short loop needs the rerun, and check
//! that what the caller sees is the same as one attempt with the whole budget.

use std::io::Write;
use std::sync::{Arc, Mutex};

use fnhost::config::LimitOverrides;
use fnhost::error::Kind;
use fnhost::{App, AppState, Config};

/// Fuel per slice in these tests: the guest's loop needs several.
const SLICE: u64 = 50_000;

/// `spin()` logs one line, then counts to 100,000 (a few hundred thousand units of fuel) and
/// returns "done"; `quick()` returns "quick" at once.
const SPINNER: &str = r#"
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

async fn start() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.admin_token = Some("t".into());
    config.fuel_yield_interval = SLICE;
    let app = App::start(config).await.unwrap();
    (dir, app)
}

async fn deploy(app: &AppState, name: &str, fuel: Option<u64>) {
    let overrides = LimitOverrides {
        fuel,
        ..Default::default()
    };
    app.registry
        .deploy(name, Arc::from(wat::parse_str(SPINNER).unwrap()), overrides)
        .await
        .unwrap();
}

/// Log output captured for the current thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_call_longer_than_a_slice_is_rerun_whole_and_logs_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let (_dir, app) = start().await;
            deploy(&app, "spinner", None).await;
            let out = fnhost::rpc::dispatch(&app, "spinner.spin", b"")
                .await
                .unwrap();
            assert_eq!(out.result.get(), r#""done""#);
            // The whole loop's fuel, as one attempt with the full budget would report it.
            assert!(out.fuel_used > 3 * SLICE, "fuel_used {}", out.fuel_used);

            let quick = fnhost::rpc::dispatch(&app, "spinner.quick", b"")
                .await
                .unwrap();
            assert_eq!(quick.result.get(), r#""quick""#);
            assert!(quick.fuel_used < SLICE);
        })
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("spinning").count(),
        1,
        "the first attempt's log line is dropped, the rerun's kept:\n{log}"
    );
}

#[tokio::test]
async fn out_of_fuel_reports_the_full_budget_with_or_without_a_rerun() {
    let (_dir, app) = start().await;
    // Below one slice: one attempt. Above it: the rerun runs out of the full budget.
    for fuel in [SLICE / 2, 4 * SLICE] {
        deploy(&app, "spinner", Some(fuel)).await;
        let e = fnhost::rpc::dispatch(&app, "spinner.spin", b"")
            .await
            .unwrap_err();
        assert_eq!(e.kind, Kind::OutOfFuel, "{e:?}");
        assert_eq!(e.data["limit"], fuel);
        assert_eq!(e.data["fuel_used"], fuel);
        assert!(
            e.message.contains(&fuel.to_string()),
            "the message names the budget: {}",
            e.message
        );
    }
}
