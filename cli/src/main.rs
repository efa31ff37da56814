//! The `pipelined` demo server: a thin command line over the library.
#![forbid(unsafe_code)]

mod alloc;
mod demo;
mod fanout;
mod hyper_engine;
mod load;
mod prometheus;
mod send;
mod work;

use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pipelined::tls::TlsListener;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    // The executable's name, not the package's (`pipelined-cli`), in `--version`.
    name = "pipelined",
    version,
    about = "HTTP/1.1 server: pipelined requests run concurrently, answers leave in order",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the demo routes (the default when no command is given).
    Serve(ServeArgs),
    /// Pipeline requests on one connection and show when each answer was worked on and arrived.
    Send(send::SendArgs),
    /// Exit 0 if the server answers 2xx, 1 otherwise (for container health checks).
    Health(send::HealthArgs),
    /// Load-test a URL, as oha does, with --pipeline N requests outstanding per connection.
    Load(load::LoadArgs),
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// human-readable lines
    Text,
    /// one JSON object per line
    Json,
}

/// Which HTTP/1.1 connection engine serves the routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// pipelined requests run concurrently, answers leave in order
    Ordered,
    /// hyper's own connection: pipelined requests run one at a time (for comparison)
    Hyper,
}

/// What a client's EOF means (`--half-close`).
///
/// `answer` is the default, deliberately: sending a pipeline and then closing the sending side
/// is how pipelining is done by hand (`printf … | nc -N`), and RFC 9112 §9.6 lets a client do
/// it. The price is that a client that sends a slow request and leaves keeps that handler and
/// its descriptor until it finishes or `--request-timeout` cancels it; `cancel` stops such work
/// at once, as browsers' clients (which close both ways) never notice.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HalfClose {
    Answer,
    Cancel,
}

#[derive(Args)]
struct ServeArgs {
    /// Connection engine.
    #[arg(long, value_enum, default_value_t = Engine::Ordered)]
    engine: Engine,
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "PIPELINED_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Requests per connection read but not yet answered; a full pipeline stops reading.
    #[arg(long, default_value_t = 32, value_name = "N",
          value_parser = clap::value_parser!(u32).range(pipelined::MIN_PIPELINE_DEPTH as i64..=65_536))]
    max_pipeline_depth: u32,
    /// Seconds a client has to finish sending a request head.
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout: u64,
    /// Seconds an idle keep-alive connection may wait for its next request.
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
    /// Seconds a handler may take before its slot is answered 503 (default: no limit).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    request_timeout: Option<u64>,
    /// Most connections served at once; beyond it new connections wait (default: no limit).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    max_connections: Option<u64>,
    /// Seconds to finish requests already read after Ctrl-C / SIGTERM before closing anyway.
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    shutdown_timeout: u64,
    /// Log line format; `RUST_LOG=debug` adds a span per connection and per request (sequence
    /// number, method, path, status, handler time, head-of-line wait).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// No Prometheus metrics: no `/metrics` route, no per-request counting (for benchmarks).
    #[arg(long)]
    no_metrics: bool,
    /// Leave out the `Server-Timing` header (handler time and head-of-line wait).
    #[arg(long)]
    no_server_timing: bool,
    /// What a client's EOF means: `answer` keeps serving what it sent (clients that half-close
    /// after writing, like `nc -N`, still get every response), `cancel` treats it as gone and
    /// cancels its running handlers at once.
    #[arg(long, value_enum, default_value_t = HalfClose::Answer)]
    half_close: HalfClose,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key): rustls, TLS 1.2 and 1.3,
    /// ALPN `h2` (HTTP/2) or `http/1.1` (the ordered engine; `--engine hyper`: HTTP/1.1 only).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds a client has to finish its TLS handshake. Silent clients cannot crowd out
    /// honest ones while they wait: when 1,024 handshakes are in flight, a new connection
    /// takes the slot of the oldest one that has not sent its ClientHello.
    #[arg(long, env = "PIPELINED_TLS_HANDSHAKE_TIMEOUT", default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    tls_handshake_timeout: u64,
    /// Tokio worker threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    workers: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        // The client needs neither the runtime nor the log subscriber.
        Some(Command::Send(args)) => return send::send(args),
        Some(Command::Health(args)) => return send::health(args),
        Some(Command::Load(args)) => return load::load(args),
        None => cli.serve,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stdout().is_terminal()).init(),
        // One JSON object per line, with the connection and request spans as fields: for log
        // shippers.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    alloc::return_memory_in_background();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers as usize);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pipelined: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipelined: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key, args.engine)?),
        _ => None,
    };
    let listener = listen(args.bind).map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let engine = args
        .engine
        .to_possible_value()
        .map(|v| v.get_name().to_owned());
    let engine = engine.unwrap_or_default();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let metrics = if args.no_metrics {
        None
    } else {
        Some(prometheus::install()?)
    };
    let metered = metrics.is_some();
    let own = fanout::ServedAt {
        addr,
        tls: tls.is_some(),
    };
    let app = demo::app(own, metrics)?;
    tracing::info!("listening on {scheme}://{addr} (engine: {engine})");
    match tls {
        Some(tls) => {
            let handshake_timeout = Duration::from_secs(args.tls_handshake_timeout);
            let listener = TlsListener::new(listener, tls).handshake_timeout(handshake_timeout);
            run(listener, &args, app, metered).await
        }
        None => run(listener, &args, app, metered).await,
    }
    .map_err(|e| e.to_string())?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Serves `app` on `listener` with the engine and limits `args` ask for (the ordered engine
/// counting requests for `/metrics` when `metered`), until Ctrl-C or SIGTERM and the drain
/// after it.
async fn run<L: pipelined::Listener>(
    listener: L,
    args: &ServeArgs,
    app: pipelined::Router,
    metered: bool,
) -> io::Result<()> {
    let config = pipelined::Config::default()
        .max_pipeline_depth(args.max_pipeline_depth as usize)
        .header_read_timeout(Duration::from_secs(args.header_read_timeout))
        .idle_timeout(Duration::from_secs(args.idle_timeout))
        .request_timeout(args.request_timeout.map(Duration::from_secs))
        .max_connections(args.max_connections.map(|n| n as usize))
        .shutdown_timeout(Some(Duration::from_secs(args.shutdown_timeout)))
        .server_timing(!args.no_server_timing)
        .half_close(args.half_close == HalfClose::Answer);
    match args.engine {
        Engine::Ordered => {
            pipelined::serve(listener, app)
                .config(config.metrics(metered))
                .with_graceful_shutdown(shutdown_signal())
                .await
        }
        Engine::Hyper => {
            let drain = Duration::from_secs(args.shutdown_timeout);
            hyper_engine::serve(listener, app, shutdown_signal(), drain).await
        }
    }
}

/// Connections the kernel completes and holds for the accept loop. tokio's `bind` asks for
/// 1024; a flood that reconnects faster than one accept loop drains them (silent sockets
/// replaced at ~7,000/s in `loadtest/handshake_flood.py`) overflows that, and the kernel then
/// drops an honest client's SYN, which it retries only after 1 s. The kernel caps the figure
/// at `net.core.somaxconn` (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: u32 = 4096;

/// The listening socket, with the backlog above and `SO_REUSEADDR` (as `TcpListener::bind`
/// sets it, so a restarted server can bind while old connections linger in TIME_WAIT).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The server's TLS settings from `--tls-cert` and `--tls-key`. hyper's engine here speaks
/// HTTP/1.1 only, so with it ALPN offers nothing else (a client must not pick `h2`).
fn tls_config(
    cert: &Path,
    key: &Path,
    engine: Engine,
) -> Result<Arc<pipelined::tls::rustls::ServerConfig>, String> {
    let mut config = pipelined::tls::config_from_pem(cert, key).map_err(|e| e.to_string())?;
    if engine == Engine::Hyper {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests already read");
}
