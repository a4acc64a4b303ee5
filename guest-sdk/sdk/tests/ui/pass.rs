use fnhost_guest::{Error, export};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Person {
    name: String,
}

/// Everything that is allowed, together.
#[export]
pub fn everything(
    a: i64,
    mut b: Option<String>,
    c: Vec<Person>,
    d: [u8; 4],
    r#type: serde_json::Value,
) -> Result<Vec<Person>, Error> {
    b.take();
    let _ = (a, d, r#type);
    Ok(c)
}

#[export]
fn private_unit() {}

#[export]
pub(crate) fn string_error() -> Result<(), String> {
    Ok(())
}

#[export(raw)]
fn raw(value: serde_json::Value) -> serde_json::Value {
    value
}

mod nested {
    #[fnhost_guest::export]
    pub fn inner(x: u8) -> u8 {
        x
    }
}

fn main() {
    let _ = everything(1, None, Vec::new(), [0; 4], serde_json::Value::Null);
    let out = __fnhost_invoke_private_unit(b"");
    assert_eq!(out, b"\0null");
    let _ = nested::__fnhost_invoke_inner(b"[1]");
}
