//! `zeoraid completions SHELL` and `zeoraid man`: shell completion scripts
//! and the man page, generated from the command line's clap definition
//! (`cli.rs`) so they cannot drift from it. Both print to stdout, for
//! packagers and operators to install where their system looks.

use crate::cli::{Cli, EXIT_FAILURE};
use clap::CommandFactory;
use std::io::{self, Write};
use std::process::ExitCode;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "zeoraid", &mut script);
    finish(print(&script))
}

fn print(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Prints the man page: clap_mangen's page (name, synopsis, options,
/// the subcommands), then a section per subcommand that has its own
/// (`ctl`), listing them with what each does.
pub fn man() -> ExitCode {
    let command = Cli::command();
    let mut page = Vec::new();
    let rendered = clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .and_then(|()| nested_commands(&command, &mut page));
    finish(rendered.and_then(|()| print(&page)))
}

/// `.SH "CTL COMMANDS"` and a tagged paragraph per `zeoraid ctl X`, for
/// every subcommand of `command` that has subcommands of its own.
fn nested_commands(command: &clap::Command, page: &mut Vec<u8>) -> io::Result<()> {
    for parent in command.get_subcommands().filter(|s| s.has_subcommands()) {
        writeln!(
            page,
            ".SH \"{} COMMANDS\"",
            roff(&parent.get_name().to_uppercase())
        )?;
        for sub in parent.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{} {} {}", command.get_name(), parent.get_name(), sub.get_name());
            writeln!(page, ".TP\n\\fB{}\\fR", roff(&name))?;
            let about = sub.get_long_about().or(sub.get_about()).map(|a| a.to_string());
            writeln!(page, "{}", roff(&about.unwrap_or_default()))?;
        }
    }
    Ok(())
}

/// `text` safe in a roff paragraph: backslashes and hyphens escaped, no
/// line starting with a control character.
fn roff(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('-', "\\-")
        .lines()
        .map(|line| match line.chars().next() {
            Some('.' | '\'') => format!("\\&{line}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A failed write (a closed pipe: `zeoraid man | head`) is not worth a
/// panic, only an exit code.
fn finish(written: io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zeoraid: cannot write: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
