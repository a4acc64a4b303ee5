//! Soak (issue 3): thousands of calls at high concurrency mixing good and hostile functions.
//! Every good call is correct, every hostile call gets its expected error, and the host's
//! memory stays bounded; the peak RSS is written to stderr, past the test harness's capture, so
//! every run shows it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use fnhost_tests::{TOKEN, fixture, host_with_examples};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");
const THREADS: usize = 32;
const CALLS_PER_THREAD: usize = 120;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn thousands_of_mixed_calls_stay_correct_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with_examples(BIN, dir.path());
    for (name, query) in [
        ("trap", ""),
        ("bomb", ""),
        ("spin", "?fuel=2000000"),
        ("oob", ""),
    ] {
        let file = match name {
            "trap" => "unreachable",
            "bomb" => "memory_grow_bomb",
            "spin" => "loop_forever",
            _ => "result_ptr_oob",
        };
        let (status, v) = host.deploy_with(name, query, &fixture(file), Some(TOKEN));
        assert_eq!(status, 201, "{v}");
    }
    let rss_before = rss_kib(host.pid(), "VmRSS:");
    let url = Arc::new(host.url.clone());
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (url, done) = (url.clone(), done.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for i in 0..CALLS_PER_THREAD {
                    let n = (t * CALLS_PER_THREAD + i) as i64;
                    let (method, params) = match i % 8 {
                        0..=2 => ("math.add", json!([n, 7])),
                        3 => ("echo.echo", json!({"n": n, "s": "x"})),
                        4 => ("trap.f", json!([])),
                        5 => ("bomb.f", json!([])),
                        6 => ("spin.spin", json!([])),
                        _ => ("oob.f", json!([])),
                    };
                    let body =
                        json!({"jsonrpc": "2.0", "id": n, "method": method, "params": params});
                    let mut r = agent
                        .post(format!("{url}/rpc"))
                        .send(body.to_string())
                        .unwrap();
                    let v: Value =
                        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                    assert_eq!(v["id"], n, "{v}");
                    match i % 8 {
                        0..=2 => assert_eq!(v["result"], n + 7, "{v}"),
                        3 => assert_eq!(v["result"], json!({"n": n, "s": "x"}), "{v}"),
                        4 => assert_eq!(v["error"]["code"], -32004, "{v}"),
                        5 => assert_eq!(v["error"]["code"], -32002, "{v}"),
                        6 => assert_eq!(v["error"]["code"], -32000, "{v}"),
                        _ => assert_eq!(v["error"]["code"], -32005, "{v}"),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let calls = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let peak = rss_kib(host.pid(), "VmHWM:");
    let now = rss_kib(host.pid(), "VmRSS:");
    // Straight to stderr: libtest captures print!/eprint! of passing tests, not this.
    writeln!(
        std::io::stderr(),
        "soak: {calls} calls ({THREADS} concurrent) in {:.2} s ({:.0} calls/s); host RSS before {} MiB, \
         after {} MiB, peak {} MiB",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
        rss_before / 1024,
        now / 1024,
        peak / 1024
    )
    .unwrap();
    assert_eq!(calls, THREADS * CALLS_PER_THREAD);
    // 32 concurrent 64 MiB memory bombs would be 2 GiB if their memory stayed resident.
    assert!(peak < 1024 * 1024, "peak RSS {peak} KiB is not bounded");
    let (_, health) = host.get("/healthz");
    assert_eq!(health["panics"], 0);
    assert_eq!(host.result("math.add", json!([1, 2])), json!(3));
}
