//! A call's two attempts (host/src/sandbox/call.rs): a first one on the calling task with its
//! fuel capped at one slice, and, only for a call that spends the whole slice, a rerun with
//! the async API. These tests set a small slice so a short loop needs the rerun, and check
//! that what the caller sees is the same as one attempt with the whole budget.

mod common;

use common::{SLICE, deploy, start};
use fnhost::error::Kind;

#[tokio::test]
async fn out_of_fuel_reports_the_full_budget_with_or_without_a_rerun() {
    let (_dir, app) = start().await;
    // Below one slice: one attempt. Above it: the rerun runs out of the full budget.
    for fuel in [SLICE / 2, 4 * SLICE] {
        deploy(&app, "spinner", Some(fuel)).await;
        let e = fnhost::rpc::dispatch(
            &app,
            &fnhost::context::CallContext::in_process(),
            "spinner.spin",
            b"",
        )
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
