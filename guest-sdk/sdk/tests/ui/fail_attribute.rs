#[fnhost_guest::export(name = "other")]
fn renamed() {}

#[fnhost_guest::export(raw = true)]
fn raw_with_value(v: serde_json::Value) {
    let _ = v;
}

#[fnhost_guest::export]
struct NotAFunction;

fn main() {}
