//! Test support for the `ferry-relay` binary: start it with flags or a config file on loopback,
//! wait until it accepts, stop it (SIGTERM) or kill it on drop; test upstreams that record what
//! they receive; free ports.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address")
}

/// A running `ferry-relay`.
pub struct Relay {
    pub child: Child,
    pub listen: SocketAddr,
    pub metrics: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

impl Relay {
    /// Starts the binary with `args` and waits until it says it listens.
    pub fn start(args: &[String], listen: SocketAddr, metrics: Option<SocketAddr>) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry-relay"))
            .args(args)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferry-relay");
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let relay = Relay {
            child,
            listen,
            metrics,
            log,
        };
        // Readiness from the log, not a probe connection: a probe would be relayed (and
        // counted, and sent a PROXY header) like any other.
        relay.wait_log("listening");
        relay
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "log lacks {needle:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: i32) {
        // Safety-free: kill(1) through the command line keeps `unsafe` out of the tests.
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The metrics endpoint's text.
    pub fn metrics(&self) -> String {
        let addr = self.metrics.expect("started with --metrics");
        let mut s = TcpStream::connect(addr).expect("connect to metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The value of one metric line (exact name with labels).
    pub fn metric(&self, series: &str) -> Option<u64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test upstream: accepts connections, reads what comes, answers with a fixed reply after
/// the client's first bytes (or echoes), and records everything each connection sent.
pub struct Upstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream {
    /// Echoes everything back; records each connection's bytes when it closes.
    pub fn echo() -> Upstream {
        Self::bind_at(free_port())
    }

    pub fn bind_at(addr: SocketAddr) -> Upstream {
        let listener = TcpListener::bind(addr).expect("bind upstream");
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

/// Whether the relay closed the connection without relaying anything.
pub fn refused(addr: SocketAddr) -> bool {
    match round_trip(addr, b"hello") {
        Ok(answer) => answer.is_empty(),
        Err(_) => true,
    }
}

/// A deterministic pseudo-random body.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
