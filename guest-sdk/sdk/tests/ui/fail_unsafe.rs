#[fnhost_guest::export]
unsafe fn danger() -> u8 {
    1
}

fn main() {}
