//! `splice_in`/`splice_out` on real sockets, against the guarantees of the module doc.

use super::*;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};

/// A connected pair of non-blocking loopback sockets.
fn socket_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (b, _) = listener.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn wait_readable(fd: BorrowedFd<'_>) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Safety: `pfd` is one valid pollfd, alive for the call, and the count says 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, 5_000) };
    assert_eq!(rc, 1, "socket did not become readable within 5 s");
}

#[test]
fn splice_in_and_out_move_bytes_and_count_them() {
    let (peer, relay_in) = socket_pair();
    let (relay_out, sink) = socket_pair();
    let mut pipe = Pipe::new().unwrap();
    assert_eq!(pipe.capacity(), DEFAULT_PIPE_CAPACITY);

    let err = splice_in(relay_in.as_fd(), &mut pipe, usize::MAX).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "empty socket: {err}");

    let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    (&peer).write_all(&data).unwrap();
    let mut spliced = 0;
    while spliced < data.len() {
        wait_readable(relay_in.as_fd());
        // usize::MAX must not be passed through to the kernel (realm's EINVAL).
        let n = match splice_in(relay_in.as_fd(), &mut pipe, usize::MAX) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => panic!("splice_in: {err}"),
        };
        assert!(n > 0);
        assert_eq!(pipe.len(), n);
        assert_eq!(pipe.kernel_len().unwrap(), n);
        let again = splice_in(relay_in.as_fd(), &mut pipe, 1).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::InvalidInput);
        assert!(!is_refused(&again), "misuse is not a refusal");
        while !pipe.is_empty() {
            splice_out(&mut pipe, relay_out.as_fd(), usize::MAX).unwrap();
        }
        assert_eq!(pipe.kernel_len().unwrap(), 0);
        spliced += n;
    }
    let mut received = Vec::new();
    let mut buf = vec![0; 65536];
    while received.len() < data.len() {
        wait_readable(sink.as_fd());
        match (&sink).read(&mut buf) {
            Ok(got) => received.extend_from_slice(&buf[..got]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("read: {err}"),
        }
    }
    assert_eq!(received, data);
}

#[test]
fn splice_in_returns_zero_at_end_of_stream() {
    let (peer, relay_in) = socket_pair();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    wait_readable(relay_in.as_fd());
    let mut pipe = Pipe::new().unwrap();
    assert_eq!(splice_in(relay_in.as_fd(), &mut pipe, 4096).unwrap(), 0);
    assert!(pipe.is_empty());
}

#[test]
fn splice_from_a_directory_is_refused() {
    let dir = File::open("/").unwrap();
    let mut pipe = Pipe::new().unwrap();
    let err = splice_in(dir.as_fd(), &mut pipe, 4096).unwrap_err();
    assert!(
        is_refused(&err),
        "expected EINVAL-like refusal, got {err:?}"
    );
    assert!(pipe.is_empty());
}
