//! HTTP/1.1 conformance: the RFC 9112 / RFC 9110 rules the engine owns (docs/ARCHITECTURE.md,
//! "Rules from RFC 9112 / 9110"), as tables of raw-byte requests with the status each must get
//! and whether the connection must close after it. One table per concern, each a test of its own.
//!
//! Every row runs twice (see `conformance/runner.rs`): alone on a fresh connection, and
//! pipelined in one write behind a valid `GET` and ahead of a sentinel `GET`. The pipelined run
//! proves the answer lands *after* the earlier response (which is intact), that a closing answer
//! carries `connection: close` and is followed by EOF, and — through the handlers' log — that
//! the sentinel behind a closing row is never processed, while the sentinel behind an accepted
//! row is answered (so the row's framing was exact: no desync, no smuggling).
//!
//! Where the RFC leaves a choice, the row follows the one the engine makes and says so. Choices
//! that hold throughout:
//! - every request the engine refuses (4xx/5xx from `src/proto/request.rs` or a broken body)
//!   closes the connection (RFC 9112 §9.5 lets a server close at any time; for framing errors
//!   §6.3 requires it);
//! - a single LF is accepted as a line terminator in the request line, header and trailer
//!   sections (RFC 9112 §2.2: a recipient MAY), but not inside chunked framing;
//! - the request line is split on single SPs only (§3 MAY allow other whitespace; we don't).
//!
//! Rows where the engine contradicts a MUST of the RFC (or a limit it documents) carry the
//! RFC's (or the limit's) answer, and fail until the engine is fixed; the runner collects every
//! mismatch so one never hides another.

mod common;
#[path = "conformance/runner.rs"]
mod runner;
#[path = "conformance/table.rs"]
mod table;

use std::collections::HashSet;

use table::all;

/// The battery covers at least 90 cases, and no two rows share a name or an input (a copied row
/// that tests nothing new would inflate the count).
#[test]
fn table_is_large_and_distinct() {
    let cases = all();
    assert!(cases.len() >= 90, "only {} cases", cases.len());
    let mut names = HashSet::new();
    let mut inputs = HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate name {:?}", case.name);
        assert!(
            inputs.insert(&case.input),
            "duplicate input in {:?}",
            case.name
        );
    }
}

macro_rules! table_tests {
    ($($group:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $group() {
            runner::assert_table(stringify!($group), table::$group()).await;
        }
    )*};
}

/// One test per group, each against its own server, alone and behind a pipelined GET.
mod rfc {
    use super::{runner, table};

    table_tests!(
        request_line,
        request_target,
        version,
        header_syntax,
        host,
        content_length,
        transfer_encoding,
        chunked,
        limits,
        expect,
    );
}
