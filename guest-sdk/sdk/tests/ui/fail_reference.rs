#[fnhost_guest::export]
fn greet(name: &str) -> String {
    name.to_owned()
}

#[fnhost_guest::export]
fn sum(xs: &[i64]) -> i64 {
    xs.iter().sum()
}

#[fnhost_guest::export]
fn nested(names: Vec<&'static str>) -> usize {
    names.len()
}

fn main() {}
