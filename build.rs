//! Records the commit zeoraid was built from, for `zeoraid --version` and
//! the `zeoraid_build_info` metric: an operator comparing several zeoraids
//! must see which code each runs, not only the crate version (which moves
//! once per release). Outside a git checkout (a source tarball) it is
//! "unknown"; a checkout with local changes says so with "-dirty".

use std::process::Command;

fn main() {
    // A worktree's `.git` is a file: ask git where HEAD and the index live.
    // A commit moves the branch's ref, not HEAD itself.
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|b| b.starts_with("refs/"));
    for file in ["HEAD", "index"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_some_and(|changes| !changes.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=ZEORAID_COMMIT={commit}{suffix}");
}

/// The trimmed stdout of a git command, or None when git or the checkout
/// is missing.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
