//! The `ztp` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    ztp::cli::run()
}
