//! Whether the connection goes on: the one owner of every keep-alive and close decision.
//!
//! Reading stops for one of a handful of reasons (the request or a response asked to close, the
//! client sent EOF, a request was refused, a body failed, the server is draining); once it has
//! stopped, the connection ends as soon as every response already owed has been written, or at
//! once when the client is gone (EOF with `Config::half_close` off). A
//! response that closes the connection ends it at once: nothing after it is written (RFC 9112
//! §9.6). Every such transition goes through this type, so the rules live in one place.

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

/// The connection's keep-alive state.
#[derive(Debug, Default)]
pub(crate) struct KeepAlive {
    /// Set once reading has stopped, with the first reason.
    stopped: Option<Stop>,
    /// A response that ends the connection has been encoded: write it out and finish.
    closed: bool,
}

impl KeepAlive {
    /// Requests may still be read.
    pub(crate) fn reading(&self) -> bool {
        self.stopped.is_none()
    }

    /// No further request is read; the first reason is kept.
    pub(crate) fn stop_reading(&mut self, why: Stop) {
        if self.stopped.is_none() {
            tracing::trace!(?why, "reading stopped");
            self.stopped = Some(why);
        }
    }

    /// Whether the response about to be encoded must close the connection: its request or
    /// its own head asked to, or reading has stopped and it is the last one owed
    /// (`nothing_after`), in which case the client is told so in the response.
    pub(crate) fn is_last(&self, asked: bool, nothing_after: bool) -> bool {
        asked || (self.stopped.is_some() && nothing_after)
    }

    /// A response that ends the connection has been encoded.
    pub(crate) fn close(&mut self) {
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
        self.closed || self.is_gone() || (self.stopped.is_some() && idle)
    }

    /// The client is gone: nothing owed is written, and there is no one to linger for.
    fn is_gone(&self) -> bool {
        self.stopped == Some(Stop::Gone)
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
    use super::{KeepAlive, Stop};

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
        assert_eq!(keep_alive.stopped, Some(Stop::Eof));
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
        assert_eq!(keep_alive.stopped, Some(Stop::ResponseClose));
        assert!(keep_alive.is_finished(false), "nothing after it is written");
        assert!(keep_alive.lingers());
    }

    #[test]
    fn close_keeps_an_earlier_reason_and_still_finishes() {
        let mut keep_alive = KeepAlive::default();
        keep_alive.stop_reading(Stop::Refused);
        keep_alive.close();
        assert_eq!(keep_alive.stopped, Some(Stop::Refused));
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
}
