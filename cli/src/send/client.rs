//! One connection, one write, many responses, over TCP or TLS alike.
//!
//! The pipeline is written while responses are read, because a long pipeline can fill the
//! server's pipeline and then its socket buffers; a client that only reads after it has
//! finished writing would then deadlock with a server that has stopped reading (back pressure
//! working as designed). Async on a current-thread runtime: tokio-rustls is async, and one
//! stream split into a reading and a writing half is the same code for TCP and TLS.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;

use super::decode::{Decoder, Response};
use super::tls::{Tls, Trust};
use super::url::{Scheme, Target};

/// Bytes asked of the connection per read.
const READ_SIZE: usize = 64 * 1024;

/// What came back on the connection.
pub struct Exchange {
    /// Complete responses, in arrival order (which is request order).
    pub responses: Vec<Response>,
    /// Every byte received, for `--raw`.
    pub raw: Vec<u8>,
    /// Why fewer responses than requests arrived.
    pub error: Option<String>,
}

/// Connects to `target` (with TLS for `https://`, checking the server against `trust`),
/// writes `requests` (holding `count` requests, `head` saying whether they are HEAD requests)
/// in one write, and reads `count` responses. `Err` means nothing was sent: the connection or
/// its TLS handshake could not be made. Everything is bounded by `timeout` from the start.
pub fn exchange(
    target: &Target,
    trust: &Trust,
    requests: &[u8],
    count: usize,
    head: bool,
    timeout: Duration,
) -> Result<Exchange, String> {
    let tls = match target.scheme {
        Scheme::Http => None,
        Scheme::Https => Some(Tls::new(trust)?),
    };
    // One connection whose two halves take turns: one thread is all it needs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let deadline = Instant::now() + timeout;
        let tcp = connect(target, deadline, timeout).await?;
        let read = Reading {
            target,
            count,
            head,
            deadline,
            timeout,
        };
        match tls {
            None => Ok(pipeline(tcp, requests, read).await),
            Some(tls) => {
                let stream = handshake(&tls, tcp, target, deadline, timeout).await?;
                Ok(pipeline(stream, requests, read).await)
            }
        }
    })
}

/// The TLS handshake on `tcp`, within what is left of the timeout.
async fn handshake(
    tls: &Tls,
    tcp: TcpStream,
    target: &Target,
    deadline: Instant,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, String> {
    let done = match timeout_at(deadline, tls.handshake(tcp, &target.host)).await {
        Ok(done) => done,
        Err(_) => Err(format!("timed out after {}", secs(timeout))),
    };
    done.map_err(|why| format!("TLS handshake with {} failed: {why}", target.authority))
}

/// Tries each address `target` resolves to until one accepts.
async fn connect(
    target: &Target,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?;
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // The batch goes out in one write anyway; Nagle's algorithm could only hold
                // back its last segment (or the TLS Finished) until an ACK, skewing arrivals.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::ErrorKind::TimedOut.into());
                break;
            }
        }
    }
    let why = match last {
        None => format!("no address left to try within {}", secs(timeout)),
        Some(e) => describe(&e, timeout),
    };
    Err(format!("cannot connect to {}: {why}", target.authority))
}

/// What the reading side needs to know about the exchange.
struct Reading<'a> {
    target: &'a Target,
    count: usize,
    head: bool,
    deadline: Instant,
    timeout: Duration,
}

/// Writes the batch and reads the answers on one stream, TCP or TLS. The exchange ends when
/// the reading does; an unfinished write (a server that stopped reading) is dropped with it.
async fn pipeline<S>(stream: S, requests: &[u8], read: Reading<'_>) -> Exchange
where
    S: AsyncRead + AsyncWrite,
{
    let (reader, mut writer) = tokio::io::split(stream);
    let sent = Instant::now();
    let write = async {
        // A failed write shows up on the reading side as a close or a timeout, which says
        // more (how many responses made it) than the write error would.
        let _ = write_batch(&mut writer, requests).await;
        std::future::pending::<Infallible>().await
    };
    tokio::select! {
        exchange = read_responses(reader, read, sent) => exchange,
        never = write => match never {},
    }
}

/// The whole pipeline in one write, then a flush: TLS holds its records until flushed.
async fn write_batch<W>(writer: &mut W, requests: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    writer.write_all(requests).await?;
    writer.flush().await
}

async fn read_responses<R>(mut reader: R, read: Reading<'_>, sent: Instant) -> Exchange
where
    R: AsyncRead + Unpin,
{
    let Reading {
        target,
        count,
        head,
        deadline,
        timeout,
    } = read;
    let mut exchange = Exchange {
        responses: Vec::with_capacity(count),
        raw: Vec::new(),
        error: None,
    };
    let mut decoder = Decoder::new();
    let mut buf = Vec::new();
    let mut chunk = vec![0; READ_SIZE];
    let mut now = Duration::ZERO;
    let closed = |got: usize, how: &str| {
        format!("server closed the connection{how} after {got} of {count} responses")
    };
    while exchange.responses.len() < count {
        let got = exchange.responses.len();
        match decoder.decode(&mut buf, head, now) {
            Ok(Some(response)) => {
                exchange.responses.push(response);
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                exchange.error = Some(format!("response {} is malformed: {e}", got + 1));
                break;
            }
        }
        let read = match timeout_at(deadline, reader.read(&mut chunk)).await {
            // A TLS server that closes without close_notify: rustls says so, but for the
            // exchange it is the close it would be on plain TCP (the decoder still rejects a
            // response cut short).
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            Ok(read) => read,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        };
        now = sent.elapsed();
        match read {
            Ok(0) => {
                match decoder.end(&buf, now) {
                    Ok(Some(response)) => exchange.responses.push(response),
                    Ok(None) => {}
                    Err(e) => {
                        let got = exchange.responses.len();
                        exchange.error = Some(format!("{}, {e}", closed(got, "")));
                        break;
                    }
                }
                let got = exchange.responses.len();
                if got < count {
                    exchange.error = Some(closed(got, "") + &asked_to_close(&exchange.responses));
                }
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                exchange.raw.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                exchange.error = Some(format!(
                    "timed out after {}: {got} of {count} responses arrived",
                    secs(timeout)
                ));
                break;
            }
            Err(e) if is_reset(&e) => {
                exchange.error = Some(closed(got, " abruptly (reset)"));
                break;
            }
            Err(e) => {
                let why = describe(&e, timeout);
                exchange.error = Some(format!(
                    "reading from {}: {why} ({got} of {count} responses arrived)",
                    target.authority
                ));
                break;
            }
        }
    }
    exchange
}

/// Names the response that announced the close, if one did: the usual reason a server stops
/// early (a `-H 'Connection: close'`, or an error that ends the connection).
fn asked_to_close(responses: &[Response]) -> String {
    let said_close = |r: &Response| {
        r.header_values("connection")
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    };
    match responses.iter().position(said_close) {
        Some(i) => format!(" (response {} said Connection: close)", i + 1),
        None => String::new(),
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A short lowercase reason, without the "(os error 111)" noise.
fn describe(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("timed out after {}", secs(timeout))
        }
        io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        _ => {
            let text = e.to_string();
            match text.split_once(" (os error") {
                Some((reason, _)) => reason.to_lowercase(),
                None => text,
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tokio::io::{DuplexStream, ReadBuf};
    use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    /// The client's socket, counting the writes made to it. Vectored, like a TCP socket, so
    /// TLS records handed over together count as the one write they would be.
    struct Counted {
        io: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let written = Pin::new(&mut self.io).poll_write(cx, buf);
            if matches!(written, Poll::Ready(Ok(_))) {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            written
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.poll_write(cx, &joined)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    fn server_config() -> ServerConfig {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key.into())
            .unwrap()
    }

    /// ~360 KB of requests, 23 TLS records: rustls' default 64 KiB buffer would hand them to
    /// the socket in six writes.
    #[tokio::test]
    async fn a_large_batch_leaves_tls_in_one_socket_write() {
        let batch: Vec<u8> = (0..3000)
            .flat_map(|i| format!("GET /{i:0>96} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())
            .collect();
        // Room for the whole batch, so the socket never pushes back and the count is exact.
        let (client_io, server_io) = tokio::io::duplex(4 << 20);
        let len = batch.len();
        let server = tokio::spawn(async move {
            let acceptor = TlsAcceptor::from(Arc::new(server_config()));
            let mut tls = acceptor.accept(server_io).await.unwrap();
            let mut got = vec![0; len];
            tls.read_exact(&mut got).await.unwrap();
            got
        });
        let writes = Arc::new(AtomicUsize::new(0));
        let io = Counted {
            io: client_io,
            writes: writes.clone(),
        };
        let tls = Tls::new(&Trust::Anything).unwrap();
        let mut stream = tls.handshake(io, "localhost").await.unwrap();
        let before = writes.load(Ordering::SeqCst);

        write_batch(&mut stream, &batch).await.unwrap();

        assert_eq!(writes.load(Ordering::SeqCst) - before, 1);
        assert!(
            server.await.unwrap() == batch,
            "the server decrypted the batch whole"
        );
    }
}
