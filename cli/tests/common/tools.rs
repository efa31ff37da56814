//! External programs some tests run (promtool, prometheus, curl): found on `PATH`, or the test
//! says it is skipped and why, once, where `cargo test` shows it. In CI (`CI` set, as
//! `.ci/run` does after installing them) a missing one fails instead.

use std::path::PathBuf;

/// The program `name` on `PATH` (Debian package `package`), or `None` after printing that the
/// calling test is skipped; panics when it is missing in CI.
pub fn installed(name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{name}` is missing in CI (.ci/run installs {package})"
        );
        eprintln!(
            "SKIPPED: `{name}` is not installed (Debian: apt-get install {package}; .ci/run \
             installs it)"
        );
    }
    found
}
