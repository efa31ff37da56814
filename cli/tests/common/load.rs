//! Pipelined load on a running server: what `wrk` with a pipeline script sends, from the test.

use std::net::SocketAddr;

use super::wire::{get, Client};

/// Writes `batches` batches of `paths` (one write per batch, all pipelined) on each of
/// `connections` connections at once, reads every answer, and returns their statuses.
pub async fn pipelined(
    addr: SocketAddr,
    connections: usize,
    batches: usize,
    paths: &[&str],
) -> Vec<u16> {
    let batch: String = paths.iter().map(|path| get(path)).collect();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let batch = batch.clone();
            let n = paths.len();
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut statuses = Vec::with_capacity(batches * n);
                for _ in 0..batches {
                    client.send(&batch).await;
                    statuses.extend(client.responses(n).await.iter().map(|r| r.status));
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.expect("a load connection"));
    }
    statuses
}
