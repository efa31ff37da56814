//! One connection, one write, many responses.
//!
//! Blocking `std::net` rather than tokio: the client does one thing at a time except for one
//! overlap, and a plain thread covers that. The requests are written from their own thread
//! while this one reads, because a long pipeline can fill the server's pipeline and then its
//! socket buffers; a client that only reads after it has finished writing would then deadlock
//! with a server that has stopped reading (back pressure working as designed).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::decode::{Decoder, Response};
use super::url::Target;

/// Bytes asked of the socket per read.
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

/// Connects to `target`, writes `requests` (holding `count` requests, `head` saying whether
/// they are HEAD requests) in one write, and reads `count` responses. `Err` means nothing was
/// sent: the connection could not be made. Everything is bounded by `timeout` from the start.
pub fn exchange(
    target: &Target,
    requests: &[u8],
    count: usize,
    head: bool,
    timeout: Duration,
) -> Result<Exchange, String> {
    let deadline = Instant::now() + timeout;
    let stream = connect(target, deadline, timeout)?;
    let writer = stream
        .try_clone()
        .map_err(|e| format!("cannot use the connection to {}: {e}", target.authority))?;
    let sent = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let _ = writer.set_write_timeout(Some(timeout));
            // A failed write shows up on the reading side as a close or a timeout, which
            // says more (how many responses made it) than the write error would.
            let _ = (&writer).write_all(requests);
        });
        let exchange = read_responses(&stream, target, count, head, sent, deadline, timeout);
        // Unblocks the writer if the server stopped reading; harmless otherwise.
        let _ = stream.shutdown(Shutdown::Both);
        Ok(exchange)
    })
}

/// Tries each address `target` resolves to until one accepts.
fn connect(target: &Target, deadline: Instant, timeout: Duration) -> Result<TcpStream, String> {
    let addrs = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?;
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let why = match last {
        None => format!("no address left to try within {}", secs(timeout)),
        Some(e) => describe(&e, timeout),
    };
    Err(format!("cannot connect to {}: {why}", target.authority))
}

fn read_responses(
    mut stream: &TcpStream,
    target: &Target,
    count: usize,
    head: bool,
    sent: Instant,
    deadline: Instant,
    timeout: Duration,
) -> Exchange {
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
        let left = deadline.saturating_duration_since(Instant::now());
        let read = match left.is_zero() {
            true => Err(io::ErrorKind::TimedOut.into()),
            false => stream
                .set_read_timeout(Some(left))
                .and_then(|()| stream.read(&mut chunk)),
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
