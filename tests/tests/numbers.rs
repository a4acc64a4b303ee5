//! Numbers arrive exactly as sent, end to end: random doubles (every bit pattern class: tiny,
//! huge, negative, subnormal, with 17 significant digits) and integers at the i64/u64 edges,
//! through JSON-RPC into an SDK guest that decodes them (`math.divide(x, 1)`, `math.add`) and
//! through the raw `echo` guest, and doubles through `/RPC2` from Python's `xmlrpc.client`.
//! A host or SDK that parsed or printed a number inexactly would change its last bit here
//! (serde_json does only with its `float_roundtrip` feature).

use std::process::Command;

use fnhost_tests::{Host, guest};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fnhost-under-test");

/// A fixed-seed xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A finite double from random bits (so every exponent is as likely), or, one time in
    /// four, a "decimal-looking" one such as -444576.91823344317.
    fn double(&mut self) -> f64 {
        loop {
            let x = if self.next().is_multiple_of(4) {
                (self.next() as i64 as f64) / 1e13
            } else {
                f64::from_bits(self.next())
            };
            if x.is_finite() {
                return x;
            }
        }
    }
}

fn host() -> (tempfile::TempDir, Host) {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(BIN, dir.path(), &[]);
    host.deploy("math", &guest("math"));
    host.deploy("echo", &guest("echo"));
    (dir, host)
}

#[test]
fn doubles_and_integer_edges_are_exact_through_json_rpc_and_an_sdk_guest() {
    let (_dir, host) = host();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut doubles: Vec<f64> = (0..300).map(|_| rng.double()).collect();
    doubles.extend([
        -444576.91823344317,
        0.1,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::MIN,
        -0.0,
        1e300,
        2.0f64.powi(53) + 2.0,
    ]);
    // One batch each, so the test is quick: each member decodes and encodes on its own.
    let batch = |method: &str| -> Vec<Value> {
        let calls: Vec<Value> = doubles
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let params = if method == "math.divide" {
                    json!([x, 1])
                } else {
                    json!([x])
                };
                json!({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
            })
            .collect();
        let (status, text) = host.rpc_raw(&Value::Array(calls).to_string());
        assert_eq!(status, 200, "{text}");
        let mut answers: Vec<Value> = serde_json::from_str(&text).unwrap();
        answers.sort_by_key(|a| a["id"].as_u64());
        answers
    };
    for (x, a) in doubles.iter().zip(batch("math.divide")) {
        let got = a["result"]
            .as_f64()
            .unwrap_or_else(|| panic!("divide({x:e}, 1): {a}"));
        assert_eq!(
            got.to_bits(),
            x.to_bits(),
            "divide({x:?}, 1) came back {got:?}"
        );
    }
    for (x, a) in doubles.iter().zip(batch("echo.echo")) {
        let got = a["result"][0].as_f64().unwrap();
        assert_eq!(got.to_bits(), x.to_bits(), "echo({x:?}) came back {got:?}");
    }

    // Integers: the i64 edges through a guest that decodes them as i64, u64 through echo.
    for (x, y) in [
        (i64::MAX, 0),
        (i64::MIN, 0),
        (i64::MAX - 1, 1),
        (i64::MIN + 1, -1),
    ] {
        assert_eq!(host.result("math.add", json!([x, y])), json!(x + y));
    }
    assert_eq!(
        host.error("math.add", json!([i64::MAX, 1]))["data"]["kind"],
        "guest_error",
        "an overflowing sum is the guest's error, never a wrapped number"
    );
    for n in [u64::MAX, u64::MAX - 1, 1 << 63, (1 << 53) + 1] {
        assert_eq!(host.result("echo.echo", json!([n])), json!([n]));
    }
    for n in [i64::MIN, i64::MIN + 1, -(1 << 53) - 1] {
        assert_eq!(host.result("echo.echo", json!([n])), json!([n]));
    }
}

#[test]
fn doubles_are_exact_through_xml_rpc_from_python() {
    let (_dir, host) = host();
    // Python prints the shortest repr that round-trips; the host must parse it exactly, pass
    // it to the guest and back, and print it so that Python parses the same double.
    let script = r#"
import random, struct, sys, xmlrpc.client
rng = random.Random(20261203)
proxy = xmlrpc.client.ServerProxy(sys.argv[1] + "/RPC2")
xs = [-444576.91823344317, 0.1, 5e-324, 1.7976931348623157e308, -0.0]
while len(xs) < 200:
    x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
    if x == x and abs(x) != float("inf"):
        xs.append(x)
bad = []
multi = xmlrpc.client.MultiCall(proxy)
for x in xs:
    multi.math.divide(x, 1.0)
for x, got in zip(xs, multi()):
    if struct.pack("<d", got) != struct.pack("<d", x):
        bad.append((x, got))
for x in xs[:50]:
    got = proxy.echo.echo(x)[0]
    if struct.pack("<d", got) != struct.pack("<d", x):
        bad.append(("echo", x, got))
print("inexact:", bad[:5]) if bad else print("exact", len(xs))
sys.exit(1 if bad else 0)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &host.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
