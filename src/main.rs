use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the daemon allocates small, short-lived
/// buffers and values for every frame it relays (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    zeoraid::cli::main()
}
