//! `--engine hyper`: the same routes on hyper's own HTTP/1.1 connection, which handles
//! pipelined requests one at a time. It is here so anyone can compare both engines on one
//! binary, with the same handlers, in the same run.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use pipelined::{Body, Listener, Router};
use tower::ServiceExt;

/// Serves `app` with hyper until `signal`, then lets connections finish for up to `drain`.
/// `listener`'s connections come set up (no Nagle; a TLS handshake done), as the ordered
/// engine gets them.
pub async fn serve<L: Listener>(
    mut listener: L,
    app: Router,
    signal: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            async move {
                match app.oneshot(req.map(Body::new)).await {
                    Ok(res) => Ok::<_, Infallible>(res),
                    Err(e) => {
                        tracing::warn!(error = %e, "handler failed; answering 500");
                        Ok(internal_error())
                    }
                }
            }
        });
        // `pipeline_flush` batches the responses of a pipelined burst, as the shared hyper
        // peer does: the fairest hyper to compare with.
        let conn = http1::Builder::new()
            .pipeline_flush(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "hyper connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed; closing the remaining connections");
    }
    Ok(())
}

fn internal_error() -> http::Response<pipelined::ResponseBody> {
    use pipelined::IntoResponse;
    (
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error\n",
    )
        .into_response()
}
