//! What a connection shares with its server (or with the caller of
//! [`serve_connection`](crate::serve_connection())), on either protocol.

use crate::shutdown::Shutdown;
use crate::stats::ServerStats;
use crate::Config;

/// What a connection shares with its server.
pub(crate) struct Shared<'a> {
    pub(crate) config: &'a Config,
    pub(crate) shutdown: Shutdown,
    pub(crate) stats: ServerStats,
    /// Adds this connection's info (the peer address, as the service wants it) to each
    /// request's extensions; see `Serve::connect_info`.
    pub(crate) connect_info: Option<InsertInfo>,
}

/// Inserts one connection's info into a request's extensions.
pub(crate) type InsertInfo = Box<dyn Fn(&mut http::Extensions) + Send + Sync>;

/// Puts a clone of `info` into every request's extensions.
pub(crate) fn insert_info<T: Clone + Send + Sync + 'static>(info: T) -> InsertInfo {
    Box::new(move |extensions: &mut http::Extensions| {
        extensions.insert(info.clone());
    })
}
