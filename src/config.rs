//! Engine limits. Every limit exists to bound what one client can make the server hold or wait
//! for; each setter says which resource it bounds.

use std::time::Duration;

/// The smallest pipeline depth we accept: the TechEmpower plaintext benchmark pipelines 16
/// requests per write, and a depth below that would turn its pipelined batches into round trips.
pub const MIN_PIPELINE_DEPTH: usize = 16;

/// Limits for every connection served by [`serve`](crate::serve).
///
/// ```
/// use std::time::Duration;
/// let config = pipelined::Config::default()
///     .max_pipeline_depth(64)
///     .header_read_timeout(Duration::from_secs(10));
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) max_pipeline_depth: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_body_bytes: u64,
    pub(crate) body_read_timeout: Duration,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) shutdown_timeout: Option<Duration>,
    pub(crate) half_close: bool,
    pub(crate) server_timing: bool,
    #[cfg(feature = "http2")]
    pub(crate) http2: bool,
    #[cfg(feature = "http2")]
    pub(crate) http2_max_concurrent_streams: u32,
    #[cfg(feature = "http2")]
    pub(crate) http2_max_pending_accept_reset_streams: usize,
    #[cfg(feature = "http2")]
    pub(crate) http2_max_local_error_reset_streams: usize,
    #[cfg(feature = "http2")]
    pub(crate) http2_max_send_buf_size: usize,
    #[cfg(feature = "http2")]
    pub(crate) http2_keep_alive_timeout: Duration,
    pub(crate) metrics: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_pipeline_depth: 32,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_body_bytes: 16 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
            request_timeout: None,
            max_connections: None,
            shutdown_timeout: None,
            half_close: true,
            server_timing: true,
            #[cfg(feature = "http2")]
            http2: true,
            #[cfg(feature = "http2")]
            http2_max_concurrent_streams: 200,
            #[cfg(feature = "http2")]
            http2_max_pending_accept_reset_streams: 20,
            #[cfg(feature = "http2")]
            http2_max_local_error_reset_streams: 1024,
            #[cfg(feature = "http2")]
            http2_max_send_buf_size: 400 * 1024,
            #[cfg(feature = "http2")]
            http2_keep_alive_timeout: Duration::from_secs(20),
            metrics: false,
        }
    }
}

impl Config {
    /// Requests per connection that may be read but not yet answered (default 32).
    ///
    /// This is the capacity of the connection's ordered slots. When they are full the
    /// connection stops reading, so TCP pushes back on a client that pipelines faster than
    /// handlers finish: memory per connection stays bounded however deep the client pipelines.
    /// Values below [`MIN_PIPELINE_DEPTH`] are raised to it.
    pub fn max_pipeline_depth(mut self, depth: usize) -> Self {
        self.max_pipeline_depth = depth.max(MIN_PIPELINE_DEPTH);
        self
    }

    /// Largest request line plus header section, in bytes (default 16 KiB).
    ///
    /// Bounds the read buffer a client can fill without finishing a request head: a longer
    /// request line is answered `414`, a longer header section `431`.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = bytes.max(256);
        self
    }

    /// Most header fields in one request (default 100); more is answered `431`.
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count.max(1);
        self
    }

    /// Time a client has to finish a request head once its first byte arrived (default 30 s).
    ///
    /// Bounds how long a slowloris client, trickling headers a byte at a time, can hold a
    /// connection; an overdue head is answered `408` after all earlier responses, then the
    /// connection closes. On a connection's first request it counts from the first byte
    /// whatever the protocol turns out to be: it also bounds the HTTP/2 preface and the first
    /// HEADERS after it (a GOAWAY, then close).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a connection may wait for the first byte of its next request (default 60 s).
    ///
    /// Idle keep-alive connections cost a socket and a task each; this bounds how long a client
    /// can park one. Responses still in flight are written before the connection closes.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Largest request body, in bytes (default 16 MiB).
    ///
    /// A larger `Content-Length` is answered `413` without reading the body; a chunked body
    /// that grows past it ends the handler's body with [`BodyError::TooLarge`](crate::BodyError)
    /// and closes the connection.
    pub fn max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How long a request body may go without a single byte arriving (default 30 s).
    ///
    /// A client that announces a body and then stalls would otherwise hold the connection (and
    /// the handler waiting on the body) for ever. On expiry the handler's body fails with
    /// [`BodyError::TimedOut`](crate::BodyError) and the connection closes after its response.
    /// On HTTP/2 the limit runs while the handler waits for the next frame, and only the
    /// stream ends.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Longest a handler may take to produce its response (default: no limit).
    ///
    /// Responses leave in order, so one stuck handler holds every response behind it on its
    /// connection. With a limit, an overdue handler is cancelled and its slot answered `503`,
    /// in order, and the connection goes on.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Most connections served at once (default: no limit).
    ///
    /// Each connection costs a socket, a task and its buffers. At the limit the server stops
    /// accepting; new connections wait in the kernel's listen backlog until one closes, and
    /// existing connections are unaffected.
    pub fn max_connections(mut self, max: Option<usize>) -> Self {
        self.max_connections = max.map(|m| m.max(1));
        self
    }

    /// After the shutdown signal, how long connections may take to answer the requests they
    /// have read before they are closed regardless (default: no limit).
    ///
    /// Bounds how long a deploy waits on a slow handler; it should be shorter than the
    /// orchestrator's own kill deadline (Kubernetes' `terminationGracePeriodSeconds`).
    pub fn shutdown_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether a client that closes its sending side (EOF) is still answered (default on).
    ///
    /// On, EOF only means that no more requests come: the handlers still running finish and
    /// their responses are written, for a client that half-closed and is still reading (as
    /// `nc -N` and some load tools do after their last request). Off, EOF means the client is
    /// gone, as it is for browsers and most HTTP clients, which close both directions at once:
    /// the connection ends at once and the handlers still running for it are cancelled, so
    /// abandoned work (a flood of connect, slow request, close) stops costing tasks,
    /// descriptors and CPU. hyper's `http1::Builder::half_close` is the same switch, off by
    /// default there. A reset or failed socket cancels the handlers either way. EOF is noticed
    /// when the connection reads, which it does while it is still taking requests and its
    /// pipeline has room.
    pub fn half_close(mut self, on: bool) -> Self {
        self.half_close = on;
        self
    }

    /// Whether responses carry `Server-Timing: handler;dur=…, queue;dur=…` (default on).
    ///
    /// `handler` is how long the handler took; `queue` is how long its finished response then
    /// waited for earlier responses on the connection: the head-of-line wait that ordered
    /// pipelining costs, made visible to clients. On HTTP/2 `queue` is always `0.000`: each
    /// stream's response leaves when it is ready. Off saves two clock reads per request.
    pub fn server_timing(mut self, on: bool) -> Self {
        self.server_timing = on;
        self
    }

    /// Whether [`serve`](crate::serve) also speaks HTTP/2 (cleartext, prior knowledge) on the
    /// same port (default on). A connection that opens with the HTTP/2 preface goes to hyper's
    /// HTTP/2 server with the same service; HTTP/1.1 connections stay on the ordered engine.
    ///
    /// Needs the `http2` feature (on by default); without it every connection is HTTP/1.1 and
    /// hyper is not in the build.
    #[cfg(feature = "http2")]
    pub fn http2(mut self, on: bool) -> Self {
        self.http2 = on;
        self
    }

    /// Most streams (requests) one HTTP/2 connection may have open at once (default 200).
    ///
    /// The HTTP/2 counterpart of [`max_pipeline_depth`](Self::max_pipeline_depth): each open
    /// stream is a running handler and its buffers, so this bounds what one connection can
    /// make the server hold. Sent to the client as `SETTINGS_MAX_CONCURRENT_STREAMS`; hyper
    /// refuses streams past it. 200 is hyper's own default, made explicit here because hyper
    /// does not promise to keep it. Values below 1 are raised to 1.
    ///
    /// The flood defences around it are the `http2_max_*_reset_streams` settings below.
    #[cfg(feature = "http2")]
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.http2_max_concurrent_streams = max.max(1);
        self
    }

    /// Most HTTP/2 streams a client may open and reset before the server has accepted them,
    /// outstanding at once, before its connection gets a GOAWAY (default 20).
    ///
    /// The rapid-reset attack (CVE-2023-44487): a client opens a stream and resets it at once,
    /// over and over, so each costs the server the work of a request while never counting
    /// against [`http2_max_concurrent_streams`](Self::http2_max_concurrent_streams). 20 is the
    /// `h2` crate's default, which hyper inherits; made explicit here because neither promises
    /// to keep it. Well-behaved clients (a browser cancelling a few navigations) stay far
    /// below it. Values below 1 are raised to 1.
    #[cfg(feature = "http2")]
    pub fn http2_max_pending_accept_reset_streams(mut self, max: usize) -> Self {
        self.http2_max_pending_accept_reset_streams = max.max(1);
        self
    }

    /// Most HTTP/2 streams the server may reset for the client's protocol errors on one
    /// connection before it gets a GOAWAY (default 1024).
    ///
    /// A client can provoke resets cheaply (a malformed header, a DATA frame on a closed
    /// stream) and each costs the server a frame and its bookkeeping; unbounded, that is the
    /// same flood as a rapid reset from the server's side (RUSTSEC-2024-0003). 1024 is hyper's
    /// own default, made explicit for the same reason as the others. Values below 1 are raised
    /// to 1.
    #[cfg(feature = "http2")]
    pub fn http2_max_local_error_reset_streams(mut self, max: usize) -> Self {
        self.http2_max_local_error_reset_streams = max.max(1);
        self
    }

    /// Most response bytes one HTTP/2 stream may have buffered in the server, waiting for the
    /// client's flow-control window, before its body is polled for more (default 400 KiB).
    ///
    /// A client that enlarges its windows and never reads would otherwise have every response
    /// body produced into memory; with it, such a connection holds at most this much per open
    /// stream (times [`http2_max_concurrent_streams`](Self::http2_max_concurrent_streams):
    /// 80 MiB at the defaults, until [`http2_keep_alive_timeout`](Self::http2_keep_alive_timeout)
    /// closes it). A client with default windows (64 KiB for the whole connection) holds far
    /// less. 400 KiB is hyper's default, sized to keep a fast download's socket fed; lower it
    /// to trade per-stream throughput for a tighter bound. Values are kept between 16 KiB (one
    /// DATA frame) and `u32::MAX`.
    #[cfg(feature = "http2")]
    pub fn http2_max_send_buf_size(mut self, bytes: usize) -> Self {
        self.http2_max_send_buf_size = bytes.clamp(16 * 1024, u32::MAX as usize);
        self
    }

    /// How long an HTTP/2 keep-alive PING may go unacknowledged before the connection is
    /// closed (default 20 s).
    ///
    /// The server PINGs a connection after [`idle_timeout`](Self::idle_timeout) without a
    /// frame from the client, streams open or not. A peer that vanished (no FIN, no reset) or
    /// that never reads (its flow-control windows stalled, the server's writes stuck) cannot
    /// answer, so this bounds how long it holds its streams, their handlers and buffers: they
    /// end this long after the PING, and the connection, idle then, is closed by the idle
    /// deadline (`idle_timeout` and a second of GOAWAY grace later). 20 s is hyper's default,
    /// ample for a slow mobile round trip.
    ///
    /// It does not bound a client that keeps answering PINGs but never opens its flow-control
    /// windows (never sends WINDOW_UPDATE): its streams wait for window for as long as it
    /// stays, each holding at most [`http2_max_send_buf_size`](Self::http2_max_send_buf_size)
    /// of response, as an HTTP/1.1 client that never reads holds its connection's write buffer.
    #[cfg(feature = "http2")]
    pub fn http2_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.http2_keep_alive_timeout = timeout;
        self
    }

    /// Whether the engine emits metrics through the [`metrics`](https://docs.rs/metrics)
    /// facade (default off): `pipelined_requests_total{method, route, status}` (every answer
    /// written, the engine's own refusals and timeouts included, by the status on the wire;
    /// `route` is the [`Router`](crate::Router)'s matched pattern, else `unmatched`),
    /// `pipelined_open_connections` and `pipelined_in_flight_requests` (gauges; a request is in
    /// flight from when it starts), `pipelined_pipeline_depth` (requests read per written
    /// batch: how deep clients pipeline), `pipelined_handler_seconds` and
    /// `pipelined_head_of_line_wait_seconds` (histograms, in seconds). Off, the hot path pays
    /// nothing; on, install a recorder (for example `metrics-exporter-prometheus`) to collect
    /// them. HTTP/2 streams record `pipelined_requests_total`, `pipelined_handler_seconds` and
    /// `pipelined_in_flight_requests` too, each as it happens; the head-of-line wait and the
    /// pipeline depth do not exist there.
    ///
    /// Each connection aggregates its figures and hands them over once per written batch, with
    /// `record_many` per histogram bucket touched; give the recorder's histograms the bounds
    /// [`SECONDS_BUCKETS`](crate::SECONDS_BUCKETS) and [`DEPTH_BUCKETS`](crate::DEPTH_BUCKETS)
    /// so that bucket counts and sums are exact.
    ///
    /// Needs the `metrics` feature; without it the engine has no metrics code at all.
    #[cfg(feature = "metrics")]
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_depth_below_the_minimum_is_raised_to_it() {
        let depth = |n| Config::default().max_pipeline_depth(n).max_pipeline_depth;
        assert_eq!(depth(0), MIN_PIPELINE_DEPTH);
        assert_eq!(depth(MIN_PIPELINE_DEPTH - 1), MIN_PIPELINE_DEPTH);
        assert_eq!(depth(64), 64);
    }
}
