//! The log lines of a call that is run again (host/src/sandbox/call.rs) appear once. Alone in
//! its test binary: tracing caches whether a log site is enabled process-wide, so a test on
//! another thread hitting the same site without a subscriber could switch it off here.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{SLICE, deploy, start};

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
            let out = fnhost::rpc::dispatch(
                &app,
                &fnhost::context::CallContext::in_process(),
                "spinner.spin",
                b"",
            )
            .await
            .unwrap();
            assert_eq!(out.result.get(), r#""done""#);
            // The whole loop's fuel, as one attempt with the full budget would report it.
            assert!(out.fuel_used > 3 * SLICE, "fuel_used {}", out.fuel_used);

            let quick = fnhost::rpc::dispatch(
                &app,
                &fnhost::context::CallContext::in_process(),
                "spinner.quick",
                b"",
            )
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
