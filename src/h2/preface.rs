//! The client connection preface of HTTP/2 (RFC 9113 §3.4): what a connection's first bytes
//! say, and the answer to a connection that claims HTTP/2 and then breaks the preface.

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The preface's first line, `PRI * HTTP/2.0`: no HTTP/1.x request line is this, so a
/// connection that opens with it speaks HTTP/2 (or is broken), and is answered in HTTP/2.
/// A request line that begins `PRI ` and differs sooner (`PRI /x HTTP/1.1`) is HTTP/1.1, its
/// method one like any other.
const LINE: usize = 16;

/// What a connection's first bytes say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not the preface's first line: HTTP/1.1.
    Http1,
    /// The whole preface.
    Http2,
    /// The preface's first line, then other bytes: a broken HTTP/2 client, answered with
    /// [`refuse`].
    Broken,
}

/// The verdict on `read`, a connection's first bytes; `None` while they are all a proper prefix
/// of the preface and more must be read. `http1` is whether HTTP/1.1 may be spoken at all
/// (nothing agreed before the first byte); without it, anything but the preface is
/// [`Verdict::Broken`].
pub(crate) fn verdict(read: &[u8], http1: bool) -> Option<Verdict> {
    let seen = read.len().min(PREFACE.len());
    match read[..seen].iter().zip(PREFACE).position(|(a, b)| a != b) {
        Some(at) if at < LINE && http1 => Some(Verdict::Http1),
        Some(_) => Some(Verdict::Broken),
        None if seen == PREFACE.len() => Some(Verdict::Http2),
        None => None,
    }
}

/// The server's answer to a broken preface: its own (empty) SETTINGS, which must be its first
/// frame (§3.4), then GOAWAY with PROTOCOL_ERROR and no stream processed (§5.4.1). hyper's h2
/// closes such a connection without a word, which a client cannot tell from a network fault.
const REFUSAL: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, empty, stream 0
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes, stream 0
    0, 0, 0, 0, // last stream id 0
    0, 0, 0, 0x1, // PROTOCOL_ERROR
];

/// Answers a broken preface ([`Verdict::Broken`]) with [`REFUSAL`] and ends the sending side;
/// the caller then closes the connection.
pub(crate) async fn refuse<I: AsyncWrite + Unpin>(io: &mut I) -> std::io::Result<()> {
    io.write_all(&REFUSAL).await?;
    io.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_split_of_the_preface_waits_then_is_http2() {
        for end in 0..PREFACE.len() {
            assert_eq!(verdict(&PREFACE[..end], true), None, "{end} bytes");
        }
        assert_eq!(verdict(PREFACE, true), Some(Verdict::Http2));
        assert_eq!(
            verdict(&[PREFACE, b"more"].concat(), true),
            Some(Verdict::Http2)
        );
    }

    #[test]
    fn a_divergence_within_the_first_line_is_http1_and_after_it_broken_http2() {
        for at in 0..PREFACE.len() {
            let mut read = PREFACE[..=at].to_vec();
            read[at] ^= 0x20;
            let expected = if at < LINE {
                Verdict::Http1
            } else {
                Verdict::Broken
            };
            assert_eq!(verdict(&read, true), Some(expected), "differs at {at}");
            assert_eq!(verdict(&read, false), Some(Verdict::Broken), "agreed h2");
        }
        assert_eq!(verdict(b"PRI /x HTTP/1.1\r\n", true), Some(Verdict::Http1));
        assert_eq!(verdict(b"GET / HTTP/1.1\r\n", true), Some(Verdict::Http1));
    }
}
