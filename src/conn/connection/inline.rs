//! The inline path: a parsed head whose route has an inline handler ([`crate::get_inline`]) is
//! answered from the parsed bytes, with no `http::Request`, no future and no task, and takes
//! its place in the response order like any finished answer.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};

use http::Method;
use tokio::io::{AsyncRead, AsyncWrite};

use super::start::request_span;
use super::Conn;
use crate::conn::dispatch::is_safe;
use crate::conn::slot::{Labels, Outcome, Timing};
use crate::conn::{ConnBody, ConnService};
use crate::inline::AnswerKind;
use crate::proto::encode::RequestInfo;
use crate::proto::request::Parsed;
use crate::timing::Stamp;

impl<I, S, B> Conn<'_, I, S, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: ConnService<B>,
    B: ConnBody,
{
    /// Answers `parsed` with its route's inline handler when it can be (`true`); else leaves
    /// it to the Service path: when the served service is not a `Router` with inline handlers, the
    /// request has a body or awaits `100 Continue`, its method is not safe (a barrier: the
    /// Service path orders it), it must wait to be admitted, its route has no inline handler
    /// for its method, or the handler passed ([`crate::Answer::pass`]).
    pub(super) fn try_inline(&mut self, parsed: &Parsed, cx: &mut Context<'_>) -> bool {
        let Some(router) = &self.inline else {
            return false;
        };
        if !parsed.is_whole() || !is_safe(&parsed.method) {
            return false;
        }
        let path = parsed.uri.path();
        let Some(at) = router.inline_at(&parsed.method, path, &mut self.last_route) else {
            return false;
        };
        // The barrier and the service's readiness, as for any request. For a safe method this
        // commits to nothing: the Service path, if it takes the request after all, asks again.
        if !matches!(
            self.dispatcher.poll_admit(&parsed.method, cx),
            Poll::Ready(Ok(()))
        ) {
            return false;
        }
        let info = RequestInfo {
            version: parsed.version,
            head_method: parsed.method == Method::HEAD,
        };
        // Numbered once it is answered here: a passed request gets the number on the Service path.
        let seq = self.seq + 1;
        let span = request_span(&parsed.method, &parsed.uri, parsed.version, seq);
        let stamp = &mut self.stamp;
        let started = self.timed.then(|| *stamp.get_or_insert_with(Stamp::now));
        let fields = self.input.fields(parsed);
        let called = {
            let _entered = span.enter();
            catch_unwind(AssertUnwindSafe(|| {
                at.call(&parsed.method, &parsed.uri, parsed.version, fields)
            }))
        };
        let (mut outcome, labels) = match called.map(|answer| answer.kind) {
            Ok(AnswerKind::Pass) => return false,
            Ok(AnswerKind::Respond(respond)) => {
                #[cfg(feature = "metrics")]
                let labels = match self.meter.is_some() {
                    true => Labels::new(&parsed.method).routed_to(Some(at.label())),
                    false => Labels::unknown(),
                };
                #[cfg(not(feature = "metrics"))]
                let labels = Labels::unknown();
                (Outcome::inline(respond, info), labels)
            }
            Err(_) => {
                tracing::error!(parent: &span, "inline handler panicked; answering 500");
                (Outcome::internal_error(), Labels::unknown())
            }
        };
        self.seq = seq;
        let timing = started.map(|started| {
            let finished = Stamp::now();
            self.stamp = Some(finished);
            Timing { started, finished }
        });
        self.keep_alive.request_started(parsed.close());
        if outcome.ends_connection() {
            self.keep_alive.answer_ends_connection();
        }
        self.answer_in_order(&mut outcome, info, timing, span, labels, true, cx);
        true
    }
}
