struct Calculator;

impl Calculator {
    #[fnhost_guest::export]
    fn add(&self, x: i64) -> i64 {
        x
    }
}

fn main() {}
