//! Raw HTTP/2 frames (RFC 9113 §4, §6), for tests whose client must misbehave where a real
//! client library will not let it: reset streams at once, never end a header block, flood
//! SETTINGS or PINGs, ignore `SETTINGS_MAX_CONCURRENT_STREAMS`, never read.
//!
//! Header blocks are HPACK (RFC 7541) without Huffman coding or the dynamic table: static-table
//! indexes and literals without indexing, which every decoder must accept.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::common::HANG;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// Settings identifiers (RFC 9113 §6.5.2).
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Error codes (RFC 9113 §7).
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// One frame: the 9-byte header, then the payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame payload fits 24 bits");
    assert!(len < 1 << 24, "a frame payload fits 24 bits");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = params
        .iter()
        .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
        .collect();
    frame(SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

pub fn ping(payload: [u8; 8]) -> Vec<u8> {
    frame(PING, 0, 0, &payload)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn headers(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
    frame(HEADERS, flags, stream, block)
}

pub fn continuation(stream: u32, flags: u8, fragment: &[u8]) -> Vec<u8> {
    frame(CONTINUATION, flags, stream, fragment)
}

/// The header block of `GET path` (scheme http, authority `test`): `:method GET` and
/// `:scheme http` are static-table entries 2 and 6, `:authority` and `:path` literals on the
/// static names 1 and 4.
pub fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    literal_indexed_name(&mut block, 1, "test");
    literal_indexed_name(&mut block, 4, path);
    block
}

/// A literal field without indexing whose name is static-table entry `index` (§6.2.2).
pub fn literal_indexed_name(dst: &mut Vec<u8>, index: usize, value: &str) {
    integer(dst, 4, 0x00, index);
    string(dst, value.as_bytes());
}

/// A literal field without indexing with a new name (§6.2.2).
pub fn literal(dst: &mut Vec<u8>, name: &str, value: &str) {
    dst.push(0x00);
    string(dst, name.as_bytes());
    string(dst, value.as_bytes());
}

/// A string literal without Huffman coding (§5.2).
fn string(dst: &mut Vec<u8>, bytes: &[u8]) {
    integer(dst, 7, 0x00, bytes.len());
    dst.extend_from_slice(bytes);
}

/// An integer with an N-bit prefix (§5.1); `flags` are the first byte's bits above it.
fn integer(dst: &mut Vec<u8>, prefix: u32, flags: u8, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        dst.push(flags | value as u8);
        return;
    }
    dst.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        dst.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    dst.push(value as u8);
}

/// The status of a response header block whose first field is an indexed static-table status
/// (200, 204, 206, 304, 400, 404, 500: how an encoder sends those); `None` otherwise.
pub fn indexed_status(block: &[u8]) -> Option<u16> {
    match block.first()? {
        0x88 => Some(200),
        0x89 => Some(204),
        0x8a => Some(206),
        0x8b => Some(304),
        0x8c => Some(400),
        0x8d => Some(404),
        0x8e => Some(500),
        _ => None,
    }
}

/// A frame read back.
#[derive(Debug)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A GOAWAY's last stream id and error code.
    pub fn goaway(&self) -> (u32, u32) {
        assert_eq!(self.kind, GOAWAY);
        let word = |at: usize| u32::from_be_bytes(self.payload[at..at + 4].try_into().unwrap());
        (word(0) & MAX_WINDOW, word(4))
    }

    /// A RST_STREAM's error code.
    pub fn reset_code(&self) -> u32 {
        assert_eq!(self.kind, RST_STREAM);
        u32::from_be_bytes(self.payload[..4].try_into().unwrap())
    }
}

/// A raw HTTP/2 client connection. Its writing half can be taken for a task of its own
/// ([`Conn::writer`]), to flood while this side reads.
pub struct Conn {
    read: OwnedReadHalf,
    write: Option<OwnedWriteHalf>,
    buf: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        stream.set_nodelay(true).unwrap();
        let (read, write) = stream.into_split();
        Conn {
            read,
            write: Some(write),
            buf: BytesMut::new(),
        }
    }

    /// Connects and sends the preface and `settings`, no more, without reading.
    pub async fn start(addr: SocketAddr, settings: &[(u16, u32)]) -> Conn {
        let mut conn = Conn::new(TcpStream::connect(addr).await.unwrap());
        conn.send(&[PREFACE, &self::settings(settings)].concat())
            .await;
        conn
    }

    /// Connects and exchanges SETTINGS (the server's read and acknowledged): ready for
    /// streams.
    pub async fn open(addr: SocketAddr) -> Conn {
        let mut conn = Conn::start(addr, &[]).await;
        conn.until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
            .await
            .expect("the server's SETTINGS");
        conn.send(&settings_ack()).await;
        conn
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let write = self.write.as_mut().expect("the writing half was taken");
        write.write_all(bytes).await.unwrap();
    }

    /// The writing half, for a task of its own; [`Conn::send`] cannot be used after.
    pub fn writer(&mut self) -> OwnedWriteHalf {
        self.write.take().expect("the writing half was taken")
    }

    /// The next frame, or `None` once the server closed (or reset) the connection.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let head = self.buf.split_to(9);
                    let payload = self.buf.split_to(len).to_vec();
                    let stream = u32::from_be_bytes(head[5..9].try_into().unwrap()) & MAX_WINDOW;
                    return Some(Frame {
                        kind: head[3],
                        flags: head[4],
                        stream,
                        payload,
                    });
                }
            }
            self.buf.reserve(16 * 1024);
            let read = tokio::time::timeout(HANG, self.read.read_buf(&mut self.buf))
                .await
                .expect("server hung: no frame within the hang limit");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads frames until one matches (returned) or the connection ends (`None`).
    pub async fn until(&mut self, mut matches: impl FnMut(&Frame) -> bool) -> Option<Frame> {
        while let Some(frame) = self.frame().await {
            if matches(&frame) {
                return Some(frame);
            }
        }
        None
    }

    /// Reads until the server's GOAWAY: its last stream id and error code.
    pub async fn goaway(&mut self) -> Option<(u32, u32)> {
        self.until(|f| f.kind == GOAWAY).await.map(|f| f.goaway())
    }

    /// Reads (and discards) until the server closes the connection.
    pub async fn closed(&mut self) {
        while self.frame().await.is_some() {}
    }
}

/// The HTTP/2 frames in `bytes` as (type, payload), up to the last whole one.
pub fn frames_in(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        if bytes.len() < 9 + len {
            break;
        }
        frames.push((bytes[3], bytes[9..9 + len].to_vec()));
        bytes = &bytes[9 + len..];
    }
    frames
}
