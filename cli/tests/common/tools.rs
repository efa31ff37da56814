//! External programs some tests run (promtool, prometheus): found on `PATH`, or the test says
//! it is skipped and why, once, where `cargo test` shows it.

use std::path::PathBuf;

/// The program `name` on `PATH`, or `None` after printing that the calling test is skipped.
pub fn installed(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: `{name}` is not installed (Debian: apt-get install prometheus; .ci/run \
             installs it)"
        );
    }
    found
}
