//! The README's "Set up and run" installs the `pipelined` its later sections run: a reader of a
//! fresh clone has no `pipelined` on PATH until a command puts it there.

use std::path::Path;

const README: &str = include_str!("../../README.md");

/// The `cargo install` line of "Set up and run", as its words.
fn install_command() -> Vec<&'static str> {
    let start = README
        .find("\n## Set up and run\n")
        .expect("README.md has `## Set up and run`");
    let section = &README[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |i| i + 1)];
    let line = section
        .lines()
        .find(|l| l.starts_with("cargo install "))
        .expect("`## Set up and run` has a `cargo install` line");
    line.split(" #")
        .next()
        .unwrap()
        .split_whitespace()
        .collect()
}

#[test]
fn the_readme_installs_the_pipelined_it_runs() {
    let install = install_command();
    assert!(
        install.contains(&"--locked"),
        "install with the lock file the tests ran with: {install:?}"
    );
    let path = install[install.iter().position(|w| *w == "--path").unwrap() + 1];
    // The directory installed is this package, whose binary is `pipelined`
    // (CARGO_BIN_EXE_pipelined would not exist otherwise).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert_eq!(
        root.join(path).canonicalize().unwrap(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .canonicalize()
            .unwrap(),
        "`cargo install --path {path}` installs another package"
    );
    assert!(Path::new(env!("CARGO_BIN_EXE_pipelined")).is_file());

    // Nothing runs `pipelined` before the line that installs it.
    let installed_at = README.find(&install.join(" ")).unwrap();
    let first_use = ["\npipelined ", "\n$ pipelined "]
        .iter()
        .filter_map(|usage| README.find(usage))
        .min()
        .expect("the README runs `pipelined`");
    assert!(
        installed_at < first_use,
        "the README runs `pipelined` before installing it"
    );
}
