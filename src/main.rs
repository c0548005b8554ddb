use std::process::ExitCode;

fn main() -> ExitCode {
    zeoraid::cli::main()
}
