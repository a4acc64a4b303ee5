#[fnhost_guest::export]
fn show(x: impl serde::Serialize) -> String {
    let _ = x;
    String::new()
}

#[fnhost_guest::export]
fn numbers() -> impl serde::Serialize {
    1
}

fn main() {}
