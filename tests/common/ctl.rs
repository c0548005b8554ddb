//! The tests' way to run `zeoraid ctl` (the binary under test) and see
//! its exit code and output.

use std::process::Command;

/// What one `zeoraid ctl` run printed and how it exited.
pub struct CtlRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `zeoraid ctl ARGS` (a fresh environment without ZEORAID_*, plus `env`).
pub fn ctl(args: &[&str], env: &[(&str, &str)]) -> CtlRun {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zeoraid"));
    command.arg("ctl").args(["--timeout", "20"]).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ZEORAID_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run zeoraid ctl");
    CtlRun {
        code: output.status.code().expect("ctl exited (not killed by a signal)"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
