//! Closing a socket without a reset destroying what was written last: after an HTTP/1.1
//! connection's closing response, and after the GOAWAY answering a broken HTTP/2 preface.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a closing connection keeps reading (and discarding) what the client still sends.
///
/// Closing a socket that has unread input makes the kernel answer with a reset, and a reset can
/// destroy responses the client has not read yet — exactly the responses that precede a
/// `Connection: close` or a refused request in a pipeline. So after such a last response and
/// our FIN, we drain until the client closes too, for at most this long, and never past the
/// drain deadline of a shutdown. A connection that ends idle does not linger
/// (`KeepAlive::lingers`).
const LINGER: Duration = Duration::from_secs(2);

/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// Reads and discards until EOF, [`LINGER`] or [`LINGER_BYTES`]; see [`LINGER`].
pub(crate) async fn linger<R: AsyncRead + Unpin>(read: &mut R) {
    let drain = async {
        // On the heap: as an array it would size every connection's future, lingering or not.
        let mut scratch = vec![0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match read.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
