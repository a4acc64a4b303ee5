#[fnhost_guest::export]
async fn later() -> u8 {
    1
}

fn main() {}
