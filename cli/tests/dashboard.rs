//! deploy/grafana/pipelined.json: valid JSON in Grafana's dashboard shape, and every PromQL
//! expression in it names a metric family the running binary exports (read from its live
//! `/metrics`), so a renamed metric cannot leave a panel silently empty.
//!
//! The checker returns the problems it found; the `*_rejects_*` tests feed it broken copies,
//! so a checker that stopped looking would fail here.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::binary::Binary;
use serde_json::Value;

/// The families the dashboard exists to show: each must be on some panel.
const SHOWN: [&str; 6] = [
    "pipelined_requests_total",
    "pipelined_handler_seconds",
    "pipelined_head_of_line_wait_seconds",
    "pipelined_pipeline_depth",
    "pipelined_open_connections",
    "pipelined_in_flight_requests",
];

fn dashboard() -> String {
    // The dashboard is a deployment file of the repository, one level above this package.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/pipelined.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Family name to type, from the `# TYPE` lines of a Prometheus text exposition.
fn exported(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

/// The metric names an expression selects: identifiers that are not functions, aggregation
/// keywords, label lists (`by (le)`), label matchers (`{route="/x"}`), ranges or variables.
fn metric_names(expr: &str) -> Vec<String> {
    // Aggregations can be followed by `by (...)` rather than their `(`; the rest are operators.
    const KEYWORDS: [&str; 18] = [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "group_left",
    ];
    const LABEL_LISTS: [&str; 5] = ["by", "without", "on", "ignoring", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let closing = match c {
            '{' => Some('}'),
            '[' => Some(']'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(closing) = closing {
            i += 1
                + chars[i + 1..]
                    .iter()
                    .position(|&d| d == closing)
                    .unwrap_or(0)
                + 1;
            continue;
        }
        let starts_ident = c.is_ascii_alphabetic() || c == '_' || c == ':';
        let after_variable_or_number =
            i > 0 && (chars[i - 1] == '$' || chars[i - 1].is_ascii_digit());
        if !starts_ident || after_variable_or_number {
            i += 1;
            continue;
        }
        let end = i + chars[i..].iter().take_while(|&&d| ident(d)).count();
        let word: String = chars[i..end].iter().collect();
        let next = chars[end..].iter().find(|d| !d.is_whitespace());
        i = end;
        if LABEL_LISTS.contains(&word.as_str()) {
            i += chars[i..].iter().position(|&d| d == ')').unwrap_or(0) + 1;
        } else if next != Some(&'(') && !KEYWORDS.contains(&word.as_str()) {
            names.push(word);
        }
    }
    names
}

/// Whether `name` is a family in `families`, or a histogram's `_bucket`/`_sum`/`_count`.
fn is_exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    let series = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let family = name.strip_suffix(suffix)?;
        (families.get(family)? == "histogram").then_some(())
    });
    families.contains_key(name) || series.is_some()
}

/// Everything wrong with `json` as a dashboard of `families`.
fn problems(json: &str, families: &BTreeMap<String, String>) -> Vec<String> {
    let dashboard: Value = match serde_json::from_str(json) {
        Ok(value) => value,
        Err(e) => return vec![format!("not JSON: {e}")],
    };
    let mut problems = Vec::new();
    let panels = dashboard["panels"].as_array().cloned().unwrap_or_default();
    if panels.is_empty() {
        problems.push("no panels".to_owned());
    }
    if dashboard["title"].as_str().is_none_or(str::is_empty) {
        problems.push("no title".to_owned());
    }
    let mut ids = BTreeSet::new();
    let mut shown = BTreeSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        if title.is_empty() || panel["type"].as_str().is_none() || !panel["gridPos"].is_object() {
            problems.push(format!(
                "panel {panel}: needs a title, a type and a gridPos"
            ));
        }
        if !ids.insert(panel["id"].to_string()) {
            problems.push(format!("{title}: id {} used twice", panel["id"]));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{title}: no queries"));
        }
        for target in &targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            let names = metric_names(expr);
            if names.is_empty() {
                problems.push(format!("{title}: {expr:?} selects no metric"));
            }
            for name in names {
                if !is_exported(&name, families) {
                    problems.push(format!("{title}: {name} is not exported"));
                }
                let family = name.trim_end_matches("_bucket").trim_end_matches("_sum");
                shown.insert(family.trim_end_matches("_count").to_owned());
            }
        }
    }
    for family in SHOWN.iter().filter(|f| !shown.contains(**f)) {
        problems.push(format!("no panel shows {family}"));
    }
    problems
}

/// The families as the binary exposes them, for the checker tests that need no binary.
fn sample_families() -> BTreeMap<String, String> {
    let kinds = [
        "counter",
        "histogram",
        "histogram",
        "histogram",
        "gauge",
        "gauge",
    ];
    SHOWN
        .iter()
        .zip(kinds)
        .map(|(name, kind)| (name.to_string(), kind.to_owned()))
        .collect()
}

#[tokio::test]
async fn every_dashboard_query_names_a_family_the_binary_exports() {
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    common::load::pipelined(server.addr, 2, 3, &["/plaintext", "/delay/2"]).await;
    let exposition = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families = exported(&exposition);
    assert_eq!(
        problems(&dashboard(), &families),
        Vec::<String>::new(),
        "exported: {families:?}"
    );
    server.terminate();
}

#[test]
fn metric_names_skip_functions_labels_ranges_and_variables() {
    let expr = "histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=\"/x\"}[5m]))) \
                / on (job) b + rate(c[$__rate_interval]) * 2e3";
    assert_eq!(metric_names(expr), ["a_bucket", "b", "c"]);
}

#[test]
fn the_checker_rejects_an_unknown_metric_and_a_missing_panel() {
    let families = sample_families();
    assert_eq!(problems(&dashboard(), &families), Vec::<String>::new());
    let renamed = dashboard().replace("pipelined_open_connections", "pipelined_open_conns");
    let found = problems(&renamed, &families);
    assert!(
        found
            .iter()
            .any(|p| p.contains("pipelined_open_conns is not exported")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p == "no panel shows pipelined_open_connections"),
        "{found:?}"
    );
    let not_a_histogram = dashboard().replace(
        "pipelined_open_connections",
        "pipelined_requests_total_bucket",
    );
    assert!(!problems(&not_a_histogram, &families).is_empty());
}

#[test]
fn the_checker_rejects_broken_json_and_a_dashboard_without_panels() {
    let families = sample_families();
    let truncated = &dashboard()[..100];
    assert!(problems(truncated, &families)[0].starts_with("not JSON"));
    let empty = r#"{"title": "pipelined", "panels": []}"#;
    assert!(problems(empty, &families).contains(&"no panels".to_owned()));
}
