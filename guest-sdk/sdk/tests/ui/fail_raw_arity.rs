#[fnhost_guest::export(raw)]
fn none() -> u8 {
    1
}

#[fnhost_guest::export(raw)]
fn two(a: serde_json::Value, b: serde_json::Value) -> u8 {
    let _ = (a, b);
    1
}

fn main() {}
