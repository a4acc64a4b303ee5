//! Numbers through the SDK's glue are exact: a double or a 64-bit integer decoded from a call's
//! params and encoded into its result comes back with the same bits.
//!
//! Pins the issue "Writing guests feels like spin new + extism call", part 1: serde_json without
//! its `float_roundtrip` feature parsed some doubles one ulp off (`-444576.91823344317` came back
//! as `-444576.9182334432`; 7–18 of 100 random `math.divide(x, 1)` calls did not return `x`).
//! The checks use Rust's own `str::parse`, which rounds correctly, never serde_json.

use fnhost_guest::export;
use proptest::prelude::*;

#[export]
fn same_f64(x: f64) -> f64 {
    x
}

/// The bits of the double the glue decoded, so decoding is checked apart from encoding.
#[export]
fn bits_of(x: f64) -> u64 {
    x.to_bits()
}

/// The double with these bits, so encoding is checked apart from decoding.
#[export]
fn from_bits(bits: u64) -> f64 {
    f64::from_bits(bits)
}

#[export]
fn same_f64s(xs: Vec<f64>, scale: Option<f64>) -> Vec<f64> {
    xs.into_iter().map(|x| x * scale.unwrap_or(1.0)).collect()
}

#[export]
fn same_i64(x: i64) -> i64 {
    x
}

#[export]
fn same_u64(x: u64) -> u64 {
    x
}

/// The payload of a status-0 output, as text.
fn ok_payload(output: Vec<u8>) -> String {
    assert_eq!(output[0], 0, "{}", String::from_utf8_lossy(&output[1..]));
    String::from_utf8(output[1..].to_vec()).unwrap()
}

/// A finite double, in every binade: normal, subnormal and zero, of both signs.
fn finite() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// The ways a client may spell a double: shortest round-trip form (what JavaScript and serde_json
/// write), 17 significant digits (what C's `%.17g` and Python's `repr` of old wrote), and exponent
/// form.
fn spellings(x: f64) -> Vec<String> {
    vec![
        serde_json::to_string(&x).unwrap(),
        format!("{x:?}"),
        format!("{x:.16e}"),
        format!("{x:e}"),
    ]
}

fn assert_same_double(text: &str, x: f64) {
    let back: f64 = text
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} is not a number: {e}"));
    assert_eq!(
        back.to_bits(),
        x.to_bits(),
        "{x:?} came back as {text} ({back:?})"
    );
}

#[test]
fn the_reported_double() {
    let x = -444576.91823344317_f64;
    let text = ok_payload(__fnhost_invoke_same_f64(b"[-444576.91823344317]"));
    assert_same_double(&text, x);
    assert_eq!(
        ok_payload(__fnhost_invoke_bits_of(b"[-444576.91823344317]")),
        x.to_bits().to_string()
    );
}

#[test]
fn doubles_at_the_edges() {
    for x in [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::from_bits(1), // the smallest subnormal
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1.0 + f64::EPSILON,
        0.1,
        0.3,
        9007199254740993.0, // 2^53 + 1, not representable: parses to 2^53
        123456789012345680.0,
    ] {
        for text in spellings(x) {
            let params = format!("[{text}]");
            assert_same_double(&ok_payload(__fnhost_invoke_same_f64(params.as_bytes())), x);
            assert_eq!(
                ok_payload(__fnhost_invoke_bits_of(params.as_bytes())),
                x.to_bits().to_string(),
                "{params}"
            );
        }
    }
}

#[test]
fn integers_at_the_edges() {
    for x in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
        let positional = format!("[{x}]");
        assert_eq!(
            ok_payload(__fnhost_invoke_same_i64(positional.as_bytes())),
            x.to_string()
        );
        let named = format!(r#"{{"x": {x}}}"#);
        assert_eq!(
            ok_payload(__fnhost_invoke_same_i64(named.as_bytes())),
            x.to_string()
        );
    }
    for x in [
        0,
        1,
        u64::from(u32::MAX),
        i64::MAX as u64 + 1,
        u64::MAX - 1,
        u64::MAX,
    ] {
        let params = format!("[{x}]");
        assert_eq!(
            ok_payload(__fnhost_invoke_same_u64(params.as_bytes())),
            x.to_string()
        );
    }
    // One past each edge does not fit: invalid params (status 2), never a wrapped or rounded value.
    for params in [
        "[9223372036854775808]",
        "[-9223372036854775809]",
        "[18446744073709551616]",
    ] {
        assert_eq!(
            __fnhost_invoke_same_i64(params.as_bytes())[0],
            2,
            "{params}"
        );
    }
    for params in ["[18446744073709551616]", "[-1]"] {
        assert_eq!(
            __fnhost_invoke_same_u64(params.as_bytes())[0],
            2,
            "{params}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn doubles_decode_exactly(x in finite()) {
        for text in spellings(x) {
            let positional = format!("[{text}]");
            prop_assert_eq!(
                ok_payload(__fnhost_invoke_bits_of(positional.as_bytes())),
                x.to_bits().to_string(),
                "{}", positional
            );
            let named = format!(r#"{{"x": {text}}}"#);
            prop_assert_eq!(
                ok_payload(__fnhost_invoke_bits_of(named.as_bytes())),
                x.to_bits().to_string(),
                "{}", named
            );
        }
    }

    #[test]
    fn doubles_encode_exactly(x in finite()) {
        let params = format!("[{}]", x.to_bits());
        assert_same_double(&ok_payload(__fnhost_invoke_from_bits(params.as_bytes())), x);
    }

    #[test]
    fn doubles_round_trip(x in finite()) {
        for text in spellings(x) {
            let params = format!("[{text}]");
            assert_same_double(&ok_payload(__fnhost_invoke_same_f64(params.as_bytes())), x);
        }
    }

    #[test]
    fn doubles_in_arrays_round_trip(xs in prop::collection::vec(finite(), 0..8)) {
        let texts: Vec<String> = xs.iter().map(|x| format!("{x:?}")).collect();
        let params = format!(r#"{{"xs": [{}], "scale": 1}}"#, texts.join(", "));
        let output = ok_payload(__fnhost_invoke_same_f64s(params.as_bytes()));
        let items = output.trim_start_matches('[').trim_end_matches(']');
        let back: Vec<&str> = items.split(',').filter(|s| !s.is_empty()).collect();
        prop_assert_eq!(back.len(), xs.len());
        for (text, &x) in back.iter().zip(&xs) {
            assert_same_double(text, x);
        }
    }

    #[test]
    fn i64_round_trips(x in prop_oneof![
        any::<i64>(),
        (0..1000i64).prop_map(|d| i64::MIN + d),
        (0..1000i64).prop_map(|d| i64::MAX - d),
    ]) {
        let params = format!("[{x}]");
        prop_assert_eq!(ok_payload(__fnhost_invoke_same_i64(params.as_bytes())), x.to_string());
    }

    #[test]
    fn u64_round_trips(x in prop_oneof![
        any::<u64>(),
        (0..1000u64).prop_map(|d| u64::MAX - d),
        (0..1000u64).prop_map(|d| (i64::MAX as u64).wrapping_add(d).wrapping_sub(500)),
    ]) {
        let params = format!("[{x}]");
        prop_assert_eq!(ok_payload(__fnhost_invoke_same_u64(params.as_bytes())), x.to_string());
    }
}
