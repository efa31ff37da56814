//! The head of a connection's last inline answer, kept so that the next identical one costs a
//! copy and two patches instead of an encoding.
//!
//! An inline handler ([`crate::get_inline`]) mostly gives the same answer every time (a health
//! check, a redirect, a static text): the same status, `Content-Type` and body length, so the
//! same head but for the `Date` line (a new second) and the `Server-Timing` digits. Those two
//! lines are at known places in the kept bytes and are rewritten there. An answer with
//! headers of its own, or a `Server-Timing` too long for the short line, is encoded as usual
//! and leaves the kept head alone.

use http::{HeaderValue, StatusCode, Version};

use super::date;
use super::encode::{self, BodyFraming, Plan, RequestInfo, SHORT_LINE};
use crate::inline::Respond;
use crate::timing::{Elapsed, Measured};

/// Everything the bytes of a cacheable inline head depend on, but the date and the timing
/// digits.
struct Key {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body_len: usize,
    version: Version,
    head_method: bool,
    close: bool,
    /// A short `Server-Timing` line is in it.
    timed: bool,
}

impl Key {
    /// Whether the head of `respond` would be this one; compared in place, not built, so
    /// that an answer costs no clone of its `Content-Type`.
    fn fits(&self, respond: &Respond, info: RequestInfo, plan: Plan, timed: bool) -> bool {
        self.status == respond.status
            && self.body_len == respond.body.len()
            && self.version == info.version
            && self.head_method == info.head_method
            && self.close == plan.close
            && self.timed == timed
            && self.content_type == respond.content_type
    }
}

/// Where the kept `Server-Timing` line is and what it says: a part that reads the same is not
/// rewritten (an inline handler's time repeats to the microsecond; its queue is nearly always
/// zero).
struct KeptTiming {
    at: usize,
    /// The handler time it reads, in microseconds; `None`: not known yet.
    handler_micros: Option<u64>,
    /// Its queue time is known to read `0.000`.
    zero_queue: bool,
}

/// The last inline head written, and where its changing parts are.
pub(crate) struct CachedHead {
    /// `None`: nothing kept yet.
    key: Option<Key>,
    bytes: Vec<u8>,
    framing: BodyFraming,
    /// Where the engine's `Date` line starts in `bytes`, and the second it holds (`None`: not
    /// known yet).
    date: Option<(usize, Option<u64>)>,
    /// The `Server-Timing` line in `bytes`, and what it says.
    timing: Option<KeptTiming>,
}

impl Default for CachedHead {
    fn default() -> Self {
        CachedHead {
            key: None,
            bytes: Vec::new(),
            framing: BodyFraming::None,
            date: None,
            timing: None,
        }
    }
}

impl CachedHead {
    /// Writes the head of the inline answer `respond` (planned as `plan`) to `dst`, from the
    /// kept head when it is the same one; returns how the body follows.
    pub(crate) fn write(
        &mut self,
        dst: &mut Vec<u8>,
        respond: &Respond,
        info: RequestInfo,
        plan: Plan,
        timing: Option<&Measured>,
    ) -> BodyFraming {
        if !respond.headers.is_empty() || !timing.is_none_or(|t| encode::is_short(*t)) {
            return encode::response_head(
                dst,
                respond.status,
                respond.fields(),
                info,
                plan,
                timing,
            );
        }
        let timed = timing.is_some();
        let kept = self.key.as_ref();
        if !kept.is_some_and(|key| key.fits(respond, info, plan, timed)) {
            self.fill(respond, info, plan, timing);
        }
        self.renew(timing);
        dst.extend_from_slice(&self.bytes);
        self.framing
    }

    /// Encodes the head afresh into the kept bytes and finds its changing lines: only ours
    /// can be there, since a kept head has no header of the handler's but `Content-Type`.
    #[cold]
    fn fill(
        &mut self,
        respond: &Respond,
        info: RequestInfo,
        plan: Plan,
        timing: Option<&Measured>,
    ) {
        self.bytes.clear();
        let framing = encode::response_head(
            &mut self.bytes,
            respond.status,
            respond.fields(),
            info,
            plan,
            timing,
        );
        self.framing = framing;
        // What the changing lines say is left unknown: `renew`, which follows every fill,
        // rewrites them once and learns it.
        self.date = find(&self.bytes, b"\r\ndate: ").map(|at| (at, None));
        self.timing = timing.and_then(|_| {
            Some(KeptTiming {
                at: find(&self.bytes, b"\r\nserver-timing: ")?,
                handler_micros: None,
                zero_queue: false,
            })
        });
        self.key = Some(Key {
            status: respond.status,
            content_type: respond.content_type.clone(),
            body_len: respond.body.len(),
            version: info.version,
            head_method: info.head_method,
            close: plan.close,
            timed: timing.is_some(),
        });
    }

    /// Rewrites the date (when this thread's cached second moved on) and the timing digits.
    fn renew(&mut self, timing: Option<&Measured>) {
        if let Some((at, second)) = &mut self.date {
            date::renew_line(&mut self.bytes[*at..*at + date::LINE_LEN], second);
        }
        if let (Some(kept), Some(timing)) = (&mut self.timing, timing) {
            let line = &mut self.bytes[kept.at..kept.at + SHORT_LINE.len()];
            let line: &mut [u8; SHORT_LINE.len()] =
                line.try_into().expect("the kept line is a short one");
            let micros = timing.handler.as_nanos() / 1000;
            if kept.handler_micros != Some(micros) {
                encode::patch_short_handler(line, timing.handler);
                kept.handler_micros = Some(micros);
            }
            let zero = timing.queue == Elapsed::ZERO;
            if !(zero && kept.zero_queue) {
                encode::patch_short_queue(line, timing.queue);
                kept.zero_queue = zero;
            }
        }
    }
}

/// Where the line that `crlf_name` (CRLF, then a field name and `: `) begins, after its CRLF.
fn find(head: &[u8], crlf_name: &[u8]) -> Option<usize> {
    head.windows(crlf_name.len())
        .position(|w| w == crlf_name)
        .map(|at| at + 2)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::header::HeaderName;

    use super::*;
    use crate::timing::Elapsed;

    fn respond(status: u16, content_type: Option<&'static str>, body: &'static str) -> Respond {
        Respond {
            status: StatusCode::from_u16(status).unwrap(),
            content_type: content_type.map(HeaderValue::from_static),
            headers: Vec::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    fn info(version: Version, head_method: bool) -> RequestInfo {
        RequestInfo {
            version,
            head_method,
        }
    }

    fn timed(handler_us: u64, queue_us: u64) -> Option<Measured> {
        Some(Measured {
            handler: Elapsed::from_nanos(handler_us * 1000),
            queue: Elapsed::from_nanos(queue_us * 1000),
        })
    }

    /// Whatever the sequence of answers, the kept head writes what encoding each afresh
    /// writes: reused when the same, refilled when not, left alone by answers it cannot keep.
    #[test]
    fn every_head_is_the_one_an_encoding_afresh_writes() {
        let text = || respond(200, Some("text/plain"), "hello\n");
        let mut with_header = text();
        with_header.headers.push((
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("1"),
        ));
        let h11 = info(Version::HTTP_11, false);
        // Each row differs from the one before it in one thing, so that each part of the
        // key is needed on its own.
        let answers: Vec<(Respond, RequestInfo, bool, Option<Measured>)> = vec![
            (text(), h11, false, None),
            (text(), h11, false, None),
            (
                respond(404, Some("text/plain"), "hello\n"),
                h11,
                false,
                None,
            ),
            (text(), h11, false, None),
            (respond(200, Some("text/html"), "hello\n"), h11, false, None),
            (text(), h11, false, None),
            (respond(200, None, "hello\n"), h11, false, None),
            (text(), h11, false, None),
            (
                respond(200, Some("text/plain"), "hello!\n"),
                h11,
                false,
                None,
            ),
            (text(), h11, false, None),
            (text(), info(Version::HTTP_10, false), false, None),
            (text(), h11, false, None),
            (text(), info(Version::HTTP_11, true), false, None),
            (text(), h11, false, None),
            (text(), h11, true, None),
            (text(), h11, false, None),
            (text(), h11, false, timed(1, 0)),
            (text(), h11, false, timed(2, 0)),
            (text(), h11, false, timed(1, 0)),
            (text(), h11, false, timed(3, 45)),
            (text(), h11, false, timed(4, 0)),
            (text(), h11, false, timed(9_999, 9_999)),
            (text(), h11, false, timed(10_000, 0)),
            (with_header, h11, false, timed(5, 0)),
            (text(), h11, false, timed(6, 0)),
            (text(), h11, false, None),
            // Kept with a queue time, then reused without one.
            (text(), h11, false, timed(7, 45)),
            (text(), h11, false, timed(8, 0)),
        ];
        let mut cached = CachedHead::default();
        for (i, (respond, info, close, timing)) in answers.into_iter().enumerate() {
            let others = respond.headers.iter().map(|(n, v)| (n, v));
            let len = Some(respond.body.len() as u64);
            let plan = encode::plan(respond.status, others, len, info, close);
            let (mut kept, mut fresh) = (Vec::new(), Vec::new());
            let framing = cached.write(&mut kept, &respond, info, plan, timing.as_ref());
            let expected = encode::response_head(
                &mut fresh,
                respond.status,
                respond.fields(),
                info,
                plan,
                timing.as_ref(),
            );
            assert_eq!(framing, expected, "answer {i}");
            // Both take this thread's cached date, which nothing here refreshes.
            assert_eq!(
                String::from_utf8(kept).unwrap(),
                String::from_utf8(fresh).unwrap(),
                "answer {i}"
            );
        }
    }

    /// A kept head whose `Date` is of an earlier second gets this thread's current one, in
    /// its place.
    #[test]
    fn a_kept_date_of_an_earlier_second_is_rewritten() {
        let text = respond(200, Some("text/plain"), "hello\n");
        let info = info(Version::HTTP_11, false);
        let plan = encode::plan(text.status, [], Some(6), info, false);
        let mut cached = CachedHead::default();
        cached.write(&mut Vec::new(), &text, info, plan, None);
        let (at, second) = cached.date.as_mut().expect("the engine's date line");
        *second = second.map(|s| s - 1);
        cached.bytes[*at + 6..*at + 6 + 29].fill(b'X');
        let (mut kept, mut fresh) = (Vec::new(), Vec::new());
        cached.write(&mut kept, &text, info, plan, None);
        encode::response_head(&mut fresh, text.status, text.fields(), info, plan, None);
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            String::from_utf8(fresh).unwrap()
        );
    }

    /// An identical answer is the kept bytes copied, not a new encoding: a byte changed where
    /// nothing is rewritten shows in the next answer (and not in a different one's).
    #[test]
    fn an_identical_answer_is_the_kept_head_copied() {
        let text = respond(200, Some("text/plain"), "hello\n");
        let info = info(Version::HTTP_11, false);
        let plan = encode::plan(text.status, [], Some(6), info, false);
        let mut cached = CachedHead::default();
        // Timed, as the binary's answers are: a short timing is kept too.
        let timing = timed(2, 0);
        let mut first = Vec::new();
        cached.write(&mut first, &text, info, plan, timing.as_ref());
        assert!(first.starts_with(b"HTTP/1.1 200 OK\r\n"));
        cached.bytes[9..12].copy_from_slice(b"299");
        let mut again = Vec::new();
        cached.write(&mut again, &text, info, plan, timed(3, 0).as_ref());
        assert!(again.starts_with(b"HTTP/1.1 299 OK\r\n"), "the kept bytes");
        let other = respond(200, Some("text/plain"), "bye\n");
        let plan = encode::plan(other.status, [], Some(4), info, false);
        let mut fresh = Vec::new();
        cached.write(&mut fresh, &other, info, plan, None);
        assert!(fresh.starts_with(b"HTTP/1.1 200 OK\r\n"), "encoded afresh");
    }
}
