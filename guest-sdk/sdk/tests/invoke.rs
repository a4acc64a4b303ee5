//! `#[export]` end to end, natively: params bytes in, output buffer out, through the generated
//! `__fnhost_invoke_<name>` functions, exactly as the wasm export would run them.

use fnhost_guest::{Error, export};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Adds two integers.
#[export]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Greets someone, politely if asked.
#[export]
fn greet(name: String, polite: Option<bool>) -> String {
    if polite.unwrap_or(false) {
        format!("Good day, {name}.")
    } else {
        format!("hi {name}")
    }
}

#[export]
fn divide(x: f64, y: f64) -> Result<f64, Error> {
    if y == 0.0 {
        Err(Error::new("division by zero"))
    } else {
        Ok(x / y)
    }
}

#[export]
fn fail_with_code() -> fnhost_guest::Result<()> {
    Err(Error::new("teapot")
        .with_code(418)
        .with_data(json!({"why": "short and stout"})))
}

#[export]
fn fail_with_string() -> Result<u8, String> {
    Err("plain string".to_owned())
}

#[export]
fn nothing() {}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[export]
fn flip(p: Point, scale: Option<i32>) -> Point {
    let s = scale.unwrap_or(1);
    Point {
        x: p.y * s,
        y: p.x * s,
    }
}

#[export]
fn r#match(r#type: String) -> String {
    r#type
}

#[export(raw)]
fn echo(params: Value) -> Value {
    params
}

#[export(raw)]
fn raw_point(p: Point) -> i32 {
    p.x + p.y
}

fn run(invoke: fn(&[u8]) -> Vec<u8>, params: &str) -> (u8, Value) {
    let output = invoke(params.as_bytes());
    let payload = serde_json::from_slice(&output[1..]).expect("payload is JSON");
    (output[0], payload)
}

#[test]
fn positional_and_named() {
    assert_eq!(run(__fnhost_invoke_add, "[1, 2]"), (0, json!(3)));
    assert_eq!(
        run(__fnhost_invoke_add, r#"{"y": 2, "x": 40}"#),
        (0, json!(42))
    );
}

#[test]
fn the_function_itself_is_untouched() {
    assert_eq!(add(2, 2), 4);
}

#[test]
fn missing_parameter() {
    assert_eq!(
        run(__fnhost_invoke_add, "[1]"),
        (2, json!({"message": "missing parameter `y`", "param": "y"}))
    );
    assert_eq!(
        run(__fnhost_invoke_add, ""),
        (2, json!({"message": "missing parameter `x`", "param": "x"}))
    );
}

#[test]
fn unknown_parameter() {
    assert_eq!(
        run(__fnhost_invoke_add, r#"{"x": 1, "y": 2, "z": 3}"#),
        (
            2,
            json!({"message": "unknown parameter `z`; expected one of: x, y", "param": "z"})
        )
    );
}

#[test]
fn too_many_positional() {
    assert_eq!(
        run(__fnhost_invoke_add, "[1, 2, 3]"),
        (
            2,
            json!({"message": "expected at most 2 parameters, got 3"})
        )
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        run(__fnhost_invoke_add, r#"["a", 2]"#),
        (
            2,
            json!({"message": "parameter `x`: invalid type: string \"a\", expected i64", "param": "x"})
        )
    );
    assert_eq!(
        run(__fnhost_invoke_add, "[1, null]"),
        (
            2,
            json!({"message": "parameter `y`: invalid type: null, expected i64", "param": "y"})
        )
    );
    let (status, payload) = run(__fnhost_invoke_add, "[1, 1e3]");
    assert_eq!((status, &payload["param"]), (2, &json!("y")));
}

#[test]
fn neither_array_nor_object() {
    for params in ["3", "\"x\"", "null", "true"] {
        assert_eq!(
            run(__fnhost_invoke_add, params),
            (
                2,
                json!({"message": "params must be an array or an object"})
            ),
            "{params}"
        );
    }
}

#[test]
fn optional_parameters_may_be_left_out_or_null() {
    assert_eq!(
        run(__fnhost_invoke_greet, r#"["Ann"]"#),
        (0, json!("hi Ann"))
    );
    assert_eq!(
        run(__fnhost_invoke_greet, r#"["Ann", null]"#),
        (0, json!("hi Ann"))
    );
    assert_eq!(
        run(__fnhost_invoke_greet, r#"{"name": "Ann", "polite": true}"#),
        (0, json!("Good day, Ann."))
    );
    assert_eq!(
        run(__fnhost_invoke_greet, r#"{"name": "Ann"}"#),
        (0, json!("hi Ann"))
    );
}

#[test]
fn results_and_guest_errors() {
    assert_eq!(run(__fnhost_invoke_divide, "[1, 4]"), (0, json!(0.25)));
    assert_eq!(
        run(__fnhost_invoke_divide, "[1, 0]"),
        (1, json!({"message": "division by zero"}))
    );
    assert_eq!(
        run(__fnhost_invoke_fail_with_code, ""),
        (
            1,
            json!({"message": "teapot", "code": 418, "data": {"why": "short and stout"}})
        )
    );
    assert_eq!(
        run(__fnhost_invoke_fail_with_string, "[]"),
        (1, json!({"message": "plain string"}))
    );
}

#[test]
fn unit_is_null() {
    assert_eq!(run(__fnhost_invoke_nothing, ""), (0, Value::Null));
    assert_eq!(run(__fnhost_invoke_nothing, "[]"), (0, Value::Null));
    assert_eq!(run(__fnhost_invoke_nothing, "{}"), (0, Value::Null));
    assert_eq!(
        run(__fnhost_invoke_nothing, "[1]"),
        (2, json!({"message": "expected no parameters, got 1"}))
    );
}

#[test]
fn structs_in_and_out() {
    assert_eq!(
        run(__fnhost_invoke_flip, r#"[{"x": 1, "y": 2}]"#),
        (0, json!({"x": 2, "y": 1}))
    );
    assert_eq!(
        run(
            __fnhost_invoke_flip,
            r#"{"p": {"x": 1, "y": 2}, "scale": 3}"#
        ),
        (0, json!({"x": 6, "y": 3}))
    );
    let (status, payload) = run(__fnhost_invoke_flip, r#"[{"x": 1}]"#);
    assert_eq!(status, 2);
    assert_eq!(
        payload,
        json!({"message": "parameter `p`: missing field `y`", "param": "p"})
    );
}

#[test]
fn raw_identifiers_lose_their_prefix() {
    assert_eq!(
        run(__fnhost_invoke_match, r#"{"type": "t"}"#),
        (0, json!("t"))
    );
}

#[test]
fn raw_functions_get_the_whole_value() {
    assert_eq!(
        run(__fnhost_invoke_echo, r#"{"a": [1, {"b": null}]}"#),
        (0, json!({"a": [1, {"b": null}]}))
    );
    assert_eq!(
        run(__fnhost_invoke_echo, "[1, 2, 3]"),
        (0, json!([1, 2, 3]))
    );
    assert_eq!(run(__fnhost_invoke_echo, ""), (0, Value::Null));
    assert_eq!(
        run(__fnhost_invoke_raw_point, r#"{"x": 1, "y": 2}"#),
        (0, json!(3))
    );
    assert_eq!(
        run(__fnhost_invoke_raw_point, ""),
        (
            2,
            json!({"message": "invalid params: invalid type: null, expected struct Point"})
        )
    );
}
