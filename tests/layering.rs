//! The library's modules import in one direction only (issue #18 point 4): the protocol switch
//! (`protocol.rs`) sits above both engines, the HTTP/1.1 engine (`conn/`) and the HTTP/2 one
//! (`h2/`) never import each other, and what both use (`shutdown.rs`, `shared.rs`,
//! `linger.rs`, `meter/`) imports neither. An import cycle makes a module impossible to read,
//! test or change alone; this test reads the sources so that one cannot come back unnoticed.

use std::fs;
use std::path::{Path, PathBuf};

/// For each part of the library (a file, or a folder and everything under it), the crate-root
/// modules it must not name.
const RULES: &[(&str, &[&str])] = &[
    ("conn", &["h2", "protocol"]),
    ("h2", &["conn", "protocol"]),
    ("shutdown.rs", &["conn", "h2", "protocol"]),
    ("shared.rs", &["conn", "h2", "protocol"]),
    ("linger.rs", &["conn", "h2", "protocol"]),
    ("meter", &["conn", "h2", "protocol"]),
];

#[test]
fn no_engine_imports_the_other_or_the_switch_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (part, forbidden) in RULES {
        let files = rust_files(&src.join(part));
        assert!(!files.is_empty(), "src/{part} holds no Rust source");
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            let depth = module_depth(&src, &file);
            for root in crate_root_names(&text, depth) {
                if forbidden.contains(&root.as_str()) {
                    let file = file.strip_prefix(&src).unwrap().display();
                    violations.push(format!("src/{file} uses crate::{root}"));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "import cycles:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_every_way_of_naming_a_crate_root_module() {
    let text = "use crate::h2::serve;\nuse crate::{Body, conn::{Shared, Phase}, h2};\n\
                let x = crate::protocol::serve_io;\nuse super::super::meter;\nuse super::read;";
    assert_eq!(
        crate_root_names(text, 2),
        ["h2", "Body", "conn", "h2", "protocol", "meter"]
    );
}

/// Every `.rs` file at `path`: the file itself, or every one under the folder.
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).into_iter().flatten() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// How many `super::` lead from `file`'s module to the crate root: `conn/mod.rs` is 1,
/// `conn/read.rs` 2, `conn/connection/start.rs` 3.
fn module_depth(src: &Path, file: &Path) -> usize {
    let relative = file.strip_prefix(src).unwrap();
    let parts = relative.components().count();
    if relative.ends_with("mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// The crate-root modules (or items) `text` names: after `crate::` (each name of a
/// `crate::{..}` group too), and after as many `super::` as reach the root from a file
/// `depth` modules down (more reach it from a `mod tests` inside the file).
fn crate_root_names(text: &str, depth: usize) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        names.extend(path_heads(&text[at + "crate::".len()..]));
    }
    let mut rest = text;
    while let Some(at) = rest.find("super::") {
        let start = &rest[at..];
        let hops = count_leading(start, "super::");
        let after = &start["super::".len() * hops..];
        if hops >= depth {
            names.extend(path_heads(after));
        }
        rest = after;
    }
    names
}

/// How many times `text` starts with `prefix` in a row.
fn count_leading(mut text: &str, prefix: &str) -> usize {
    let mut count = 0;
    while let Some(rest) = text.strip_prefix(prefix) {
        text = rest;
        count += 1;
    }
    count
}

/// The first segment of the path that starts `text`, or of each path of a `{..}` group.
fn path_heads(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = text.strip_prefix('{') else {
        return vec![ident(text)];
    };
    // The group's top-level paths: split at commas outside nested groups.
    let (mut heads, mut nesting, mut from) = (Vec::new(), 0, 0);
    for (at, c) in group.char_indices() {
        match c {
            '{' => nesting += 1,
            '}' if nesting == 0 => {
                heads.push(ident(&group[from..at]));
                break;
            }
            '}' => nesting -= 1,
            ',' if nesting == 0 => {
                heads.push(ident(&group[from..at]));
                from = at + 1;
            }
            _ => {}
        }
    }
    heads.retain(|head| !head.is_empty());
    heads
}
