//! The `fnhost` binary; everything is in the `fnhost_cli` library.

fn main() -> std::process::ExitCode {
    fnhost_cli::main()
}
