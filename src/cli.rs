//! The command line: `zeoraid serve`, `zeoraid check-config`,
//! `zeoraid ctl` (talking to a running daemon; see [`crate::ctl`]).
//!
//! This module and [`crate::ctl`] are the only ones that write to
//! stdout/stderr directly (and [`crate::panics`], a panic's last line);
//! once logging is up, everything else goes through slog. Exit codes follow the usual convention that 2 means "you
//! called me wrong": bad arguments (clap's own code) and an invalid config
//! both exit 2, so scripts can tell a configuration mistake from a runtime
//! failure (1). `ctl` has its own: those of a Nagios plugin (0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use slog::{crit, info};

use crate::config::{self, Config, ConfigError};
use crate::{daemon, logging};

/// Exit code for a config that does not load or validate.
pub const EXIT_BAD_CONFIG: u8 = 2;
/// Exit code for a failure after the config was accepted.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "zeoraid",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("ZEORAID_COMMIT"), ")"),
    about,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Load and validate a config file (with ZEORAID_* overrides applied)
    /// and report every problem.
    CheckConfig(CheckConfigArgs),
    /// Ask a running zeoraid (its HTTP endpoint): status, details, disable
    /// a member, reload the config. Exit codes as a Nagios plugin: 0 OK
    /// (optimal), 1 WARNING (degraded), 2 CRITICAL (failed; or refused),
    /// 3 UNKNOWN (unreachable).
    Ctl(crate::ctl::CtlArgs),
    /// Print a shell completion script for zeoraid to stdout (e.g.
    /// `zeoraid completions bash > /etc/bash_completion.d/zeoraid`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print zeoraid's man page (roff) to stdout (e.g. `zeoraid man |
    /// man -l -`).
    Man,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; ZEORAID_* environment variables override it.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// TOML config file to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Entry point of the `zeoraid` binary.
pub fn main() -> ExitCode {
    match Cli::try_parse()
        .unwrap_or_else(|e| crate::ctl::exit_on_usage_error(e))
        .command
    {
        Command::Serve(args) => serve(&args),
        Command::CheckConfig(args) => check_config(&args),
        Command::Ctl(args) => crate::ctl::main(&args),
        Command::Completions { shell } => crate::manual::completions(shell),
        Command::Man => crate::manual::man(),
    }
}

fn check_config(args: &CheckConfigArgs) -> ExitCode {
    match config::load(&args.file) {
        Ok(config) => {
            // The certificates the daemon would read, read now: a missing
            // file or a key that does not match is caught before a start
            // or a reload.
            if let Err(err) = crate::tls::TlsMaterial::default().prepare(&config) {
                eprintln!("zeoraid: {}: {err}", args.file.display());
                return ExitCode::from(EXIT_BAD_CONFIG);
            }
            println!("config OK: {}", config.summary());
            ExitCode::SUCCESS
        }
        Err(err) => {
            report_config_error(&err);
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    let config: Config = match config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            report_config_error(&err);
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let (log, guard) = match logging::init(&config.log) {
        Ok(logging) => logging,
        Err(err) => {
            eprintln!("zeoraid: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    crate::panics::install(log.clone(), guard);
    info!(log, "config loaded"; "path" => %args.config.display());
    let code = match daemon::run(config, args.config.clone(), &log) {
        Ok(daemon::Stopped::Signal) => ExitCode::SUCCESS,
        Ok(daemon::Stopped::SteppedDown(reason)) => {
            crit!(log, "stepping down"; "reason" => &reason, "then" => "re-executing as a standby");
            crate::panics::flush_log_before_exec();
            let error = reexecute();
            // Only reached when exec failed: the service manager restarts us.
            eprintln!("zeoraid: cannot re-execute itself after stepping down: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
        Err(err) => {
            crit!(log, "zeoraid failed"; "error" => %err);
            ExitCode::from(EXIT_FAILURE)
        }
    };
    crate::panics::flush_log();
    code
}

/// Replaces this process with a fresh run of the same command line (a
/// cluster leader stepping down): the descriptors of every client and
/// member connection are close-on-exec, so all of them close at once.
/// Returns only if exec failed.
fn reexecute() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "zeoraid".into());
    std::process::Command::new("/proc/self/exe")
        .arg0(program)
        .args(args)
        .exec()
}

fn report_config_error(err: &ConfigError) {
    eprintln!("zeoraid: {err}");
}
