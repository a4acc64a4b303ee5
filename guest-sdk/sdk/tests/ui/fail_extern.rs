#[fnhost_guest::export]
extern "C" fn exported() -> u8 {
    1
}

fn main() {}
