//! The `fnhost` binary, built inside this package from the CLI library so the integration
//! tests always run the current code (`CARGO_BIN_EXE_fnhost-under-test`) without a nested
//! cargo build.

fn main() -> std::process::ExitCode {
    fnhost_cli::main()
}
