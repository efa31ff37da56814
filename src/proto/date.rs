//! The `Date` header value, formatted at most once per second per thread and read from the
//! clock once per batch of responses.
//!
//! Every response carries `Date` (RFC 9110 §6.6.1); formatting it per response would cost more
//! than the plaintext handler itself, so each worker thread keeps the last formatted second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const DATE_LEN: usize = 29;

/// `date: ` before the value.
const PREFIX: &[u8] = b"date: ";

/// A whole `Date` field line: prefix, IMF-fixdate, CRLF.
pub(crate) const LINE_LEN: usize = PREFIX.len() + DATE_LEN + 2;

struct Cached {
    second: u64,
    line: [u8; LINE_LEN],
}

thread_local! {
    static CACHED: RefCell<Cached> = const { RefCell::new(Cached { second: u64::MAX, line: [0; LINE_LEN] }) };
}

/// Re-reads the clock for this thread's cached date: called once per batch of responses
/// rather than once per response, since a clock read costs as much as encoding a small head.
pub(crate) fn refresh() {
    CACHED.with(|cell| update(&mut cell.borrow_mut()));
}

/// Appends the `Date` field line with the cached IMF-fixdate (as of this thread's last
/// [`refresh`]) to `dst`.
pub(crate) fn extend_line(dst: &mut Vec<u8>) {
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.second == u64::MAX {
            update(&mut cached);
        }
        dst.extend_from_slice(&cached.line);
    });
}

/// Brings a `Date` field line written earlier (`line`, as of `second`; `None`: not known) up
/// to this thread's cached date: a copy only when the second changed (see
/// `proto::cached_head`).
pub(crate) fn renew_line(line: &mut [u8], second: &mut Option<u64>) {
    CACHED.with(|cell| {
        let cached = cell.borrow();
        if *second != Some(cached.second) {
            line.copy_from_slice(&cached.line);
            *second = Some(cached.second);
        }
    });
}

fn update(cached: &mut Cached) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if cached.second != second {
        let text = httpdate::fmt_http_date(now);
        let (prefix, rest) = cached.line.split_at_mut(PREFIX.len());
        let (date, crlf) = rest.split_at_mut(DATE_LEN);
        prefix.copy_from_slice(PREFIX);
        date.copy_from_slice(&text.as_bytes()[..DATE_LEN]);
        crlf.copy_from_slice(b"\r\n");
        cached.second = second;
    }
}
