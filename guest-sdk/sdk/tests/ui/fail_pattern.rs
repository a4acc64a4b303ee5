#[fnhost_guest::export]
fn pair((a, b): (i64, i64)) -> i64 {
    a + b
}

#[fnhost_guest::export]
fn ignored(_: i64) {}

fn main() {}
