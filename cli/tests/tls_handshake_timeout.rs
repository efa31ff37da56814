//! `pipelined serve --tls-handshake-timeout` (or `PIPELINED_TLS_HANDSHAKE_TIMEOUT`): how long
//! the binary's TLS listener gives a client to finish its handshake.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::binary::Binary;
use common::pki::{self_signed, TempFile};

/// The library's default handshake timeout, which the setting must replace.
const DEFAULT: Duration = Duration::from_secs(10);

/// A client that connects and says nothing is closed once the one second asked for has passed,
/// by flag or by environment, not after the default ten.
#[test]
fn the_handshake_timeout_is_set_by_flag_and_by_environment() {
    let pki = self_signed();
    let cert = TempFile::new("cert.pem", &pki.chain_pem);
    let key = TempFile::new("key.pem", &pki.key_pem);
    let tls = [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        cert.path(),
        "--tls-key",
        key.path(),
    ];
    let by_flag: (&[&str], &[(&str, &str)]) = (&["--tls-handshake-timeout", "1"], &[]);
    let by_env: (&[&str], &[(&str, &str)]) = (&[], &[("PIPELINED_TLS_HANDSHAKE_TIMEOUT", "1")]);
    for (args, env) in [by_flag, by_env] {
        let binary = Binary::start(&[&tls[..], args].concat(), env);
        let mut silent = TcpStream::connect(binary.addr).unwrap();
        // Only turns a server that never closes into a failure.
        silent.set_read_timeout(Some(2 * DEFAULT)).unwrap();
        let connected = Instant::now();
        let read = silent.read(&mut [0; 1]);
        let took = connected.elapsed();
        let closed = match &read {
            Ok(n) => *n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "not closed: {read:?} ({args:?} {env:?})");
        assert!(
            took < DEFAULT - Duration::from_secs(2),
            "closed after {took:?}: the default timeout, not the one set ({args:?} {env:?})"
        );
        binary.terminate();
    }
}
