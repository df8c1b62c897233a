//! What the relay's tests put around the relay: upstreams that echo and record what they
//! receive, a port where nothing listens, and clients. The relay process itself is run by
//! `ferry_tests::relay` (shared with the end-to-end tests), with this crate's binary.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ferry_tests::relay::Relay;

/// Runs this crate's `ferry-relay` with `args` and waits until every port is bound.
pub fn start(args: &[&str]) -> Relay {
    Relay::start_args(Path::new(env!("CARGO_BIN_EXE_ferry-relay")), args)
}

/// A loopback port where nothing listens, so connects to it are refused, and that nobody else
/// can take while this lives: a socket bound to port 0 that does not listen.
pub struct ClosedPort {
    socket: socket2::Socket,
    pub addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind port 0");
        let addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("an IPv4 address");
        ClosedPort { socket, addr }
    }

    /// Starts listening on the port: an echo [`Upstream`] from now on.
    pub fn open(self) -> Upstream {
        self.socket.listen(128).expect("listen");
        Upstream::serve(self.socket.into())
    }
}

/// A test upstream: echoes everything back, and records each connection's bytes when it
/// closes.
pub struct Upstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream {
    /// An echo upstream on a port of 127.0.0.1 the kernel chooses.
    pub fn echo() -> Upstream {
        Self::serve(TcpListener::bind("127.0.0.1:0").expect("bind upstream"))
    }

    fn serve(listener: TcpListener) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&received);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let rec = Arc::clone(&rec);
                thread::spawn(move || {
                    let mut all = Vec::new();
                    let mut buf = [0u8; 64 * 1024];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                all.extend_from_slice(&buf[..n]);
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    // Health checks connect and close without a byte, or with nothing but the
                    // PROXY header of a connection without a client: not recorded.
                    let health_check = all.is_empty()
                        || all == ferry_relay::proxy_protocol::encode_local(1)
                        || all == ferry_relay::proxy_protocol::encode_local(2);
                    if !health_check {
                        rec.lock().unwrap().push(all);
                    }
                });
            }
        });
        Upstream { addr, received }
    }

    /// Waits until `count` connections have closed and returns what each sent.
    pub fn wait_received(&self, count: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "upstream saw {} connections, not {count}",
                got.len()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends `data`, half-closes, reads the whole answer.
pub fn round_trip(addr: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let writer = {
        let mut w = s.try_clone()?;
        let data = data.to_vec();
        thread::spawn(move || {
            let r = w.write_all(&data);
            let _ = w.shutdown(std::net::Shutdown::Write);
            r
        })
    };
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    writer.join().expect("writer thread")?;
    Ok(out)
}

/// Whether the relay closed a connection that sent `data` without relaying anything back.
pub fn refused(addr: SocketAddr, data: &[u8]) -> bool {
    round_trip(addr, data).map_or(true, |answer| answer.is_empty())
}
