//! The compile errors of `#[export]`, pinned: each `tests/ui/*.rs` with the `.stderr` beside it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
