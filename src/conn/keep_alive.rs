//! Whether the connection goes on: the read side's state ([`Reading`]) and the one owner of
//! every keep-alive and close decision ([`KeepAlive`]).
//!
//! Reading stops for one of a handful of reasons (the request or a response asked to close, the
//! client sent EOF, a request was refused, a body failed, the server is draining); once it has
//! stopped, the connection ends as soon as every response already owed has been written, or at
//! once when the client is gone (EOF with `Config::half_close` off). A
//! response that closes the connection ends it at once: nothing after it is written (RFC 9112
//! §9.6). Every such transition goes through this type, so the rules live in one place: the
//! request's `Connection: close` ([`KeepAlive::request_started`], [`KeepAlive::body_follows`], [`KeepAlive::body_read`]),
//! an answer known to close before its turn ([`KeepAlive::answer_ends_connection`]), the
//! answer about to be encoded ([`KeepAlive::is_last`], [`KeepAlive::encoded`]) and a streamed
//! body's end ([`KeepAlive::stream_done`]).

use super::read::Pump;
use crate::proto::request::Head;

/// Why no further request is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The request asked to close (`Connection: close`, or HTTP/1.0 without keep-alive).
    RequestClose,
    /// A response closes the connection; nothing after it may be processed.
    ResponseClose,
    /// The client closed its sending side, or was idle past the limit.
    Eof,
    /// The client closed its sending side and `Config::half_close` is off: it is gone, and
    /// nothing more is written.
    Gone,
    /// The engine refused a request, or its body could not be read.
    Refused,
    /// The server is shutting down.
    Draining,
}

/// The read side: exactly one of these at a time, so a body being read while a parsed request
/// waits, or a request read after reading stopped, cannot be written down.
pub(crate) enum Reading {
    /// The next request's head, parsed once its bytes are in.
    Head,
    /// A request parsed but not started yet: it waits at a barrier, or for the service to be
    /// ready. Boxed: rare, and a parsed head is large; inline it would size every connection.
    Parsed(Box<Head>),
    /// The last started request's body is being decoded to its exact end; the next head waits
    /// for it. `close_after`: that request asked to close, so reading stops at the body's end.
    Body { pump: Pump, close_after: bool },
    /// No further request is read, for the first reason given.
    Stopped(Stop),
}

/// The connection's keep-alive state.
pub(crate) struct KeepAlive {
    reading: Reading,
    /// The answer whose body is streaming ends the connection once that body is written.
    closing: bool,
    /// A response that ends the connection has been encoded: write it out and finish.
    closed: bool,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            reading: Reading::Head,
            closing: false,
            closed: false,
        }
    }
}

impl KeepAlive {
    /// Requests may still be read.
    pub(crate) fn reading(&self) -> bool {
        !matches!(self.reading, Reading::Stopped(_))
    }

    /// No further request is read; the first reason is kept. What reading had in hand (a
    /// parsed request, a body's pump) is dropped: nothing after this point is processed.
    pub(crate) fn stop_reading(&mut self, why: Stop) {
        if self.reading() {
            tracing::trace!(?why, "reading stopped");
            self.reading = Reading::Stopped(why);
        }
    }

    /// The body being read, if the last started request has one still arriving.
    pub(crate) fn body_mut(&mut self) -> Option<&mut Pump> {
        match &mut self.reading {
            Reading::Body { pump, .. } => Some(pump),
            _ => None,
        }
    }

    /// A request parsed earlier that could not start then, to try again.
    pub(crate) fn take_parsed(&mut self) -> Option<Box<Head>> {
        // Checked before the state is moved: on the hot path nothing waits, and moving a
        // state the size of a body pump out and back for every request is measurable.
        if !matches!(self.reading, Reading::Parsed(_)) {
            return None;
        }
        match std::mem::replace(&mut self.reading, Reading::Head) {
            Reading::Parsed(head) => Some(head),
            _ => unreachable!("checked above"),
        }
    }

    /// A parsed request cannot start yet (a barrier, a service not ready): it waits here.
    pub(crate) fn hold(&mut self, head: Box<Head>) {
        if let Reading::Head = self.reading {
            self.reading = Reading::Parsed(head);
        }
    }

    /// A request without a body was started (reading is at the next head, the request having
    /// been taken): its `Connection: close` (`close`) stops reading at once.
    pub(crate) fn request_started(&mut self, close: bool) {
        if close {
            self.stop_reading(Stop::RequestClose);
        }
    }

    /// A request with a body was started: the body is read next, and its `Connection: close`
    /// (`close`) stops reading once the body is read. Nothing changes if reading stopped
    /// meanwhile (its answer ended the connection): its body is not read.
    pub(crate) fn body_follows(&mut self, pump: Pump, close: bool) {
        if self.reading() {
            self.reading = Reading::Body {
                pump,
                close_after: close,
            };
        }
    }

    /// The body being read reached its end: the next head, unless its request asked to close.
    pub(crate) fn body_read(&mut self) {
        if let Reading::Body { close_after, .. } = self.reading {
            if close_after {
                self.stop_reading(Stop::RequestClose);
            } else {
                self.reading = Reading::Head;
            }
        }
    }

    /// An answer known to end the connection before its turn to be written (a finished
    /// handler's plan, or a spawned handler's answer): nothing after it is started.
    pub(crate) fn answer_ends_connection(&mut self) {
        self.stop_reading(Stop::ResponseClose);
    }

    /// Whether the answer about to be encoded must close the connection: it asks to itself
    /// (`asked`: its head or the engine's answer), or it is the last one owed (`nothing_after`:
    /// no answer waits behind it) and either reading has stopped or the body still being read
    /// belongs to a request that asked to close. The client is told so in the answer.
    pub(crate) fn is_last(&self, asked: bool, nothing_after: bool) -> bool {
        let no_more = match self.reading {
            Reading::Stopped(_) => true,
            Reading::Body { close_after, .. } => close_after,
            Reading::Head | Reading::Parsed(_) => false,
        };
        asked || (nothing_after && no_more)
    }

    /// An answer was encoded; `last` is [`KeepAlive::is_last`]'s verdict on it, and `streaming`
    /// says its body is still to come. A last answer ends the connection: at once when it is
    /// whole, once its body is written otherwise.
    pub(crate) fn encoded(&mut self, last: bool, streaming: bool) {
        if !last {
            return;
        }
        if streaming {
            self.stop_reading(Stop::ResponseClose);
            self.closing = true;
        } else {
            self.close();
        }
    }

    /// A streamed body is written; `failed`: it failed or broke its declared length, which the
    /// client can only be told by closing.
    pub(crate) fn stream_done(&mut self, failed: bool) {
        if failed || self.closing {
            self.close();
        }
    }

    /// A response that ends the connection has been encoded.
    fn close(&mut self) {
        self.stop_reading(Stop::ResponseClose);
        self.closed = true;
    }

    /// The client closed its sending side, and that means it is gone (`Config::half_close` is
    /// off): the connection ends without writing what is still owed, and dropping it cancels
    /// the handlers still running.
    pub(crate) fn client_gone(&mut self) {
        self.stop_reading(Stop::Gone);
    }

    /// The connection is finished once a closing response is encoded, the client is gone, or
    /// reading has stopped and nothing more is owed (`idle`: no response waiting, none being
    /// streamed).
    pub(crate) fn is_finished(&self, idle: bool) -> bool {
        self.closed || self.is_gone() || (!self.reading() && idle)
    }

    /// The client is gone: nothing owed is written, and there is no one to linger for.
    fn is_gone(&self) -> bool {
        matches!(self.reading, Reading::Stopped(Stop::Gone))
    }

    /// Why reading stopped, if it did.
    #[cfg(test)]
    fn stopped(&self) -> Option<Stop> {
        match self.reading {
            Reading::Stopped(why) => Some(why),
            _ => None,
        }
    }

    /// Whether the finished connection must linger (see `linger::LINGER`) before its socket
    /// closes: only after a response that ended it. The client may have sent requests after
    /// that one which were never read, and closing on unread input resets the connection,
    /// which can destroy that response before the client reads it. A connection that ends
    /// idle — drained by a shutdown, past the idle limit, or after the client's EOF — owes
    /// nothing, and closes at once, as nginx closes idle keep-alive connections: a client
    /// sending on a connection at the moment it is closed as idle is a race RFC 9112 §9.5
    /// leaves to the client, and lingering there only held every shutdown up for seconds.
    pub(crate) fn lingers(&self) -> bool {
        self.closed && !self.is_gone()
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio::sync::mpsc;

    use super::{KeepAlive, Stop};
    use crate::conn::read::Pump;
    use crate::proto::request::{Framing, Head, Parser};
    use crate::Config;

    /// A parsed `GET /`.
    fn get() -> Head {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"[..]);
        let c = Config::default();
        Parser::default()
            .parse(
                &mut buf,
                c.max_header_bytes,
                c.max_headers,
                c.max_body_bytes,
            )
            .expect("a valid request")
            .expect("a whole head")
    }

    /// A pump for a 4-byte body, as a started request with a body has.
    fn pump() -> Pump {
        let (tx, _rx) = mpsc::channel(1);
        Pump::new(Framing::Length(4), tx, &Config::default()).expect("a non-empty body")
    }

    #[test]
    fn a_new_connection_reads_and_is_not_finished() {
        let keep_alive = KeepAlive::default();
        assert!(keep_alive.reading());
        assert!(!keep_alive.is_finished(true), "idle, but reading goes on");
        assert!(!keep_alive.is_finished(false));
        assert!(!keep_alive.lingers());
    }

    #[test]
    fn the_first_reason_to_stop_reading_is_kept() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.stop_reading(Stop::Eof);
        keep_alive.stop_reading(Stop::Draining);
        keep_alive.client_gone();
        assert!(!keep_alive.reading());
        assert_eq!(keep_alive.stopped(), Some(Stop::Eof));
        assert!(
            !keep_alive.is_gone(),
            "a later EOF does not make the client gone"
        );
    }

    #[test]
    fn stopped_reading_finishes_only_once_nothing_is_owed() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.stop_reading(Stop::RequestClose);
        assert!(!keep_alive.is_finished(false), "a response is still owed");
        assert!(keep_alive.is_finished(true));
        assert!(!keep_alive.lingers(), "no closing response was encoded");
    }

    #[test]
    fn a_response_is_last_when_asked_or_when_reading_stopped_and_nothing_follows() {
        let mut keep_alive = KeepAlive::default();
        assert!(keep_alive.is_last(true, false), "its request or head asked");
        assert!(
            !keep_alive.is_last(false, true),
            "still reading: more may come"
        );
        keep_alive.stop_reading(Stop::Draining);
        assert!(keep_alive.is_last(false, true));
        assert!(
            !keep_alive.is_last(false, false),
            "an earlier one is not the last"
        );
    }

    #[test]
    fn a_closing_response_stops_reading_finishes_at_once_and_lingers() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.close();
        assert!(!keep_alive.reading());
        assert_eq!(keep_alive.stopped(), Some(Stop::ResponseClose));
        assert!(keep_alive.is_finished(false), "nothing after it is written");
        assert!(keep_alive.lingers());
    }

    #[test]
    fn close_keeps_an_earlier_reason_and_still_finishes() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.stop_reading(Stop::Refused);
        keep_alive.close();
        assert_eq!(keep_alive.stopped(), Some(Stop::Refused));
        assert!(keep_alive.is_finished(false));
        assert!(keep_alive.lingers());
    }

    #[test]
    fn a_gone_client_finishes_at_once_and_is_not_lingered_for() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.client_gone();
        assert!(!keep_alive.reading());
        assert!(keep_alive.is_finished(false), "what is owed is not written");
        assert!(!keep_alive.lingers());
        keep_alive.close();
        assert!(
            !keep_alive.lingers(),
            "nobody to linger for, even after a close"
        );
    }

    #[test]
    fn a_closed_connection_stays_lingering_when_the_client_then_goes() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.close();
        keep_alive.client_gone();
        assert!(keep_alive.is_finished(false));
        assert!(keep_alive.lingers(), "the close came first and is kept");
    }

    #[test]
    fn a_closing_request_without_a_body_stops_reading_at_once() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.request_started(true);
        assert_eq!(keep_alive.stopped(), Some(Stop::RequestClose));
        assert!(keep_alive.is_last(false, true), "its answer says close");
    }

    #[test]
    fn a_request_that_keeps_alive_goes_back_to_the_next_head() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.request_started(false);
        assert!(keep_alive.reading());
        assert!(keep_alive.body_mut().is_none());
        assert!(!keep_alive.is_last(false, true));
    }

    #[test]
    fn a_closing_request_with_a_body_stops_reading_only_at_the_body_end() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.body_follows(pump(), true);
        assert!(keep_alive.reading(), "its body is still read");
        assert!(keep_alive.body_mut().is_some());
        assert!(
            keep_alive.is_last(false, true),
            "answered before its body ends, the answer still closes"
        );
        assert!(
            !keep_alive.is_last(false, false),
            "an earlier answer does not"
        );
        keep_alive.body_read();
        assert_eq!(keep_alive.stopped(), Some(Stop::RequestClose));
        assert!(keep_alive.body_mut().is_none());
    }

    #[test]
    fn a_body_read_to_its_end_lets_the_next_head_in() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.body_follows(pump(), false);
        assert!(!keep_alive.is_last(false, true));
        keep_alive.body_read();
        assert!(keep_alive.reading());
        assert!(keep_alive.body_mut().is_none());
    }

    #[test]
    fn a_request_started_after_reading_stopped_reads_nothing() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.answer_ends_connection();
        keep_alive.body_follows(pump(), false);
        assert!(keep_alive.body_mut().is_none(), "its body is not read");
        assert_eq!(keep_alive.stopped(), Some(Stop::ResponseClose));
    }

    #[test]
    fn a_parsed_request_waits_and_is_taken_back_once() {
        let mut keep_alive = KeepAlive::default();
        assert!(keep_alive.take_parsed().is_none());
        let head = get();
        keep_alive.hold(Box::new(head));
        assert!(keep_alive.take_parsed().is_some());
        assert!(keep_alive.take_parsed().is_none());
        assert!(keep_alive.reading());
    }

    #[test]
    fn stopping_drops_a_waiting_request() {
        let mut keep_alive = KeepAlive::default();
        let head = get();
        keep_alive.hold(Box::new(head));
        keep_alive.stop_reading(Stop::Draining);
        assert!(keep_alive.take_parsed().is_none());
        assert!(keep_alive.is_last(false, true));
    }

    #[test]
    fn a_last_whole_answer_closes_at_once() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.encoded(false, false);
        assert!(
            keep_alive.reading(),
            "an answer that is not last changes nothing"
        );
        keep_alive.encoded(true, false);
        assert!(keep_alive.is_finished(false));
        assert!(keep_alive.lingers());
    }

    #[test]
    fn a_last_streamed_answer_closes_once_its_body_is_written() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.encoded(true, true);
        assert!(!keep_alive.reading(), "nothing after it is read");
        assert!(!keep_alive.is_finished(false), "its body is still to come");
        keep_alive.stream_done(false);
        assert!(keep_alive.is_finished(false));
        assert!(keep_alive.lingers());
    }

    #[test]
    fn a_failed_stream_closes_and_a_good_one_keeps_alive() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.encoded(false, true);
        keep_alive.stream_done(false);
        assert!(keep_alive.reading());
        assert!(!keep_alive.is_finished(true));
        keep_alive.stream_done(true);
        assert!(keep_alive.is_finished(false));
        assert!(keep_alive.lingers());
    }
}
