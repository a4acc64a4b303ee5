#[fnhost_guest::export]
fn many(x: i32, _: ...) -> i32 {
    x
}

fn main() {}
