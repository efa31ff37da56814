//! The HTTP/1 wire format: request heads in, request bodies decoded, response heads and bodies
//! encoded. Nothing here does I/O; the connection (`crate::conn`) owns the socket.

pub(crate) mod cached_head;
mod chunk;
pub(crate) mod date;
pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod error;
pub(crate) mod request;
#[cfg(any(feature = "client", fuzzing))]
pub(crate) mod response_head;
mod target;
pub(crate) mod trusted;
