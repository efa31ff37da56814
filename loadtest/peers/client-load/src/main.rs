// client-load: a load generator made of `pipelined::client` (issue #20 point 6), the client's
// counterpart of `wrk -t1 -s pipeline.lua`: C connections on one thread (a current-thread
// tokio runtime), each keeping D GETs outstanding through `SendRequest` (`poll_ready` is the
// back pressure), each response's status checked and its body read to the end. At the end it
// prints one line of `key=value` figures: req/s, and this process's own CPU time over the load
// window (getrusage: user + system) per completed request, the figure loadtest/client.sh
// compares with wrk's.
// usage: client-load [--connections C] [--depth D] [--duration SECS] URL
// Only for loadtest/client.sh against 127.0.0.1: it stops by itself after SECS.

use std::cell::Cell;
use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use pipelined::bytes::Bytes;
use pipelined::client::{Builder, SendRequest};
use pipelined::http::{Request, StatusCode, Uri};
use tokio::net::TcpStream;
use tower::Service;

type Body = Empty<Bytes>;

struct Args {
    connections: usize,
    depth: usize,
    duration: Duration,
    url: Uri,
}

fn usage(why: &str) -> ! {
    eprintln!("client-load: {why}");
    eprintln!("usage: client-load [--connections C] [--depth D] [--duration SECS] URL");
    std::process::exit(2)
}

fn args() -> Args {
    let mut args = Args {
        connections: 64,
        depth: 16,
        duration: Duration::from_secs(10),
        url: Uri::from_static("http://127.0.0.1:9003/plaintext"),
    };
    let mut url = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> u64 {
            let value = it
                .next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")));
            match value.parse() {
                Ok(n) if n > 0 => n,
                _ => usage(&format!("{name}: {value:?} is not a positive number")),
            }
        };
        match arg.as_str() {
            "--connections" | "-c" => args.connections = number("--connections") as usize,
            "--depth" | "-d" => args.depth = number("--depth") as usize,
            "--duration" => args.duration = Duration::from_secs(number("--duration")),
            "--help" | "-h" => usage("help"),
            _ if url.is_none() && !arg.starts_with('-') => url = Some(arg),
            _ => usage(&format!("unexpected argument {arg:?}")),
        }
    }
    if let Some(url) = url {
        // Leaked once so that every request's `Uri` is a clone of static bytes: building a
        // request then allocates nothing, and the generator's own cost stays out of the
        // client's figure.
        let url: &'static str = Box::leak(url.into_boxed_str());
        args.url = Uri::try_from(url)
            .ok()
            .filter(|u| u.scheme_str() == Some("http") && u.authority().is_some())
            .map(|_| Uri::from_static(url))
            .unwrap_or_else(|| usage(&format!("{url:?} is not an http:// URL")));
    }
    args
}

/// This process's user + system CPU time, from getrusage(RUSAGE_SELF).
fn cpu_time() -> Duration {
    // SAFETY: all-zero is a valid `rusage` (integers and `timeval`s).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(status, 0, "getrusage: {}", std::io::Error::last_os_error());
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// What every connection adds to; one thread, so plain cells.
#[derive(Default)]
struct Counts {
    /// Responses with status 200 whose body was read to its end.
    ok: Cell<u64>,
    /// Anything else: another status, a failed call or body, a connection that ended.
    errors: Cell<u64>,
}

/// One connection: fills the pipeline to `depth`, then for each response that comes back
/// (in order: the oldest call's first) reads it to the end and calls again. Returns when the
/// connection has failed; the run ends it otherwise.
async fn drive(mut send: SendRequest<Body>, url: Uri, depth: usize, counts: Rc<Counts>) {
    let request = || {
        let mut request = Request::new(Body::new());
        *request.uri_mut() = url.clone();
        request
    };
    let mut pending = VecDeque::with_capacity(depth);
    loop {
        while pending.len() < depth {
            if send.ready().await.is_err() {
                counts.errors.set(counts.errors.get() + 1);
                return;
            }
            pending.push_back(send.call(request()));
        }
        let oldest = pending.pop_front().expect("the pipeline was just filled");
        let fine = match oldest.await {
            Ok(response) => {
                let status = response.status();
                let mut body = response.into_body();
                let mut complete = true;
                while let Some(frame) = body.frame().await {
                    if frame.is_err() {
                        complete = false;
                        break;
                    }
                }
                complete && status == StatusCode::OK
            }
            Err(_) => false,
        };
        let count = if fine { &counts.ok } else { &counts.errors };
        count.set(count.get() + 1);
        if send.is_closed() && !fine {
            return;
        }
    }
}

async fn run(args: &Args, address: SocketAddr, counts: Rc<Counts>) -> (Duration, Duration) {
    let builder = Builder::new().pipeline_depth(args.depth);
    let mut senders = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let tcp = TcpStream::connect(address).await.unwrap_or_else(|e| {
            eprintln!("client-load: connecting to {address}: {e}");
            std::process::exit(1)
        });
        // As wrk does: each write goes out at once.
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        let (send, connection) = builder.handshake::<_, Body>(tcp);
        tokio::task::spawn_local(connection);
        senders.push(send);
    }
    // The window starts once every connection is up, as wrk's does.
    let (wall, cpu) = (Instant::now(), cpu_time());
    for send in senders {
        let url = args.url.clone();
        tokio::task::spawn_local(drive(send, url, args.depth, counts.clone()));
    }
    tokio::time::sleep(args.duration).await;
    (wall.elapsed(), cpu_time() - cpu)
}

fn main() {
    let args = args();
    let authority = args.url.authority().expect("checked in args()");
    let port = args.url.port_u16().unwrap_or(80);
    let address = (authority.host(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| usage(&format!("cannot resolve {authority}")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let counts = Rc::new(Counts::default());
    let local = tokio::task::LocalSet::new();
    let (wall, cpu) = local.block_on(&runtime, run(&args, address, counts.clone()));
    // Read before the connections are torn down: what completed within the window.
    let (ok, errors) = (counts.ok.get(), counts.errors.get());
    let secs = wall.as_secs_f64();
    let cpu_us_per_req = if ok > 0 {
        cpu.as_secs_f64() * 1e6 / ok as f64
    } else {
        f64::NAN
    };
    println!(
        "client-load connections={} depth={} secs={secs:.3} requests={ok} errors={errors} \
         req_per_sec={:.0} cpu_s={:.3} cpu_us_per_req={cpu_us_per_req:.3}",
        args.connections,
        args.depth,
        ok as f64 / secs,
        cpu.as_secs_f64(),
    );
    // Whatever is still in flight is dropped unanswered, as wrk leaves it at its deadline.
    std::process::exit(if ok > 0 { 0 } else { 1 });
}
