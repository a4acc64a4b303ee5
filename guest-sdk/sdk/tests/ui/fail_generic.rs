#[fnhost_guest::export]
fn id<T: serde::Serialize>(x: T) -> T {
    x
}

#[fnhost_guest::export]
fn first<'a>(x: Vec<String>) -> String {
    x.concat()
}

fn main() {}
