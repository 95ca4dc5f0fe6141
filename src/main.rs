//! The `ztp` binary: everything lives in the library.

/// mimalloc instead of the system allocator: the compiler allocates many
/// small, short-lived values (parse tokens, AST strings, JSON objects), and
/// on a 10,000-workload program `check` spends a sixth less time with it
/// (docs/performance.md). Transparent huge pages are off (`no_thp`): with
/// them the fastest runs are a little faster, but the kernel's zeroing of
/// huge pages makes some runs half again as slow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ztp::cli::run()
}
