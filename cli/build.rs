//! Tells `fnhost new` the host's target triple, for the scaffold's native-test alias.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "x86_64-unknown-linux-gnu".into());
    println!("cargo:rustc-env=FNHOST_HOST_TARGET={target}");
}
