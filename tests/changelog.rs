//! CHANGELOG.md keeps the Keep a Changelog format it claims, and Cargo.toml's version says what
//! the unreleased changes imply: a release heading carries its date, every heading its link
//! reference, and a breaking change raises the version past the last release (the minor before
//! 1.0, the major after).

const CHANGELOG: &str = include_str!("../CHANGELOG.md");

/// The `## [...]` headings, in order.
fn headings() -> Vec<&'static str> {
    CHANGELOG
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .collect()
}

/// `(major, minor, patch)` of `x.y.z`.
fn version(text: &str) -> (u64, u64, u64) {
    let parts: Vec<u64> = text
        .split('.')
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("{text:?} is not x.y.z"))
        })
        .collect();
    assert_eq!(parts.len(), 3, "{text:?} is not x.y.z");
    (parts[0], parts[1], parts[2])
}

/// The released versions, newest first, each heading checked as `[x.y.z] - YYYY-MM-DD`.
fn releases() -> Vec<(u64, u64, u64)> {
    headings()
        .into_iter()
        .filter(|h| *h != "[Unreleased]")
        .map(|heading| {
            let (name, date) = heading
                .split_once("] - ")
                .unwrap_or_else(|| panic!("release heading {heading:?} has no ` - date`"));
            let digits: Vec<bool> = date.chars().map(|c| c.is_ascii_digit()).collect();
            let dashes = [4, 7]
                .iter()
                .all(|&i| date.as_bytes().get(i) == Some(&b'-'));
            assert!(
                date.len() == 10 && dashes && digits.iter().filter(|d| **d).count() == 8,
                "release heading {heading:?}: the date is not YYYY-MM-DD"
            );
            version(name.trim_start_matches('['))
        })
        .collect()
}

/// The unreleased section's text.
fn unreleased() -> &'static str {
    let start = CHANGELOG
        .find("## [Unreleased]")
        .expect("an [Unreleased] section");
    let rest = &CHANGELOG[start + 3..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn every_heading_is_unreleased_or_a_dated_release_newest_first() {
    assert_eq!(headings().first(), Some(&"[Unreleased]"));
    let releases = releases();
    assert!(!releases.is_empty(), "no release headings");
    assert!(
        releases.windows(2).all(|w| w[0] > w[1]),
        "releases out of order: {releases:?}"
    );
}

#[test]
fn every_heading_has_its_link_reference() {
    for heading in headings() {
        let name = heading.split(']').next().unwrap().trim_start_matches('[');
        let reference = format!("\n[{name}]: https://");
        assert!(
            CHANGELOG.contains(&reference),
            "no link reference `[{name}]: https://…` at the end"
        );
    }
}

#[test]
fn the_crate_version_is_past_the_last_release_as_far_as_the_changes_require() {
    let current = version(env!("CARGO_PKG_VERSION"));
    let last = releases()[0];
    assert!(
        current > last,
        "{current:?} is not past the last release {last:?}"
    );
    if unreleased().contains("**Breaking") {
        let (major, minor, _) = last;
        let needed = if major == 0 {
            (0, minor + 1, 0)
        } else {
            (major + 1, 0, 0)
        };
        assert!(
            current >= needed,
            "unreleased breaking changes need at least {needed:?}, Cargo.toml says {current:?}"
        );
    }
}
