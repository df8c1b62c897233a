//! Unit tests of forwarding internals: the timeout arithmetic, option validation, a splice
//! refusal with bytes already in the pipe (injected, since kernels do not refuse it between
//! two TCP sockets), the small-read path and its switch to the pipe, and that the `forward`
//! future is `Send`.

use super::pump::{Conduit, Pump, SMALL_READ};
use super::*;
use tokio::io::Interest;

#[test]
fn huge_timeouts_mean_never_not_a_panic() {
    let now = Instant::now();
    assert!(later(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
    assert_eq!(
        later(now, Duration::from_secs(1)),
        now + Duration::from_secs(1)
    );
}

#[test]
fn options_are_validated() {
    assert_eq!(ForwardOptions::default().validate(), Ok(()));
    let zero_idle = ForwardOptions {
        idle_timeout: Duration::ZERO,
        ..ForwardOptions::default()
    };
    assert_eq!(zero_idle.validate(), Err(OptionsError::IdleTimeoutZero));
    let zero_half = ForwardOptions {
        half_close_timeout: Duration::ZERO,
        ..ForwardOptions::default()
    };
    assert_eq!(
        zero_half.validate(),
        Err(OptionsError::HalfCloseTimeoutZero)
    );
    for (size, ok) in [
        (4095, false),
        (4096, true),
        (1 << 30, true),
        ((1 << 30) + 1, false),
    ] {
        let opts = ForwardOptions {
            pipe_size: Some(size),
            ..ForwardOptions::default()
        };
        assert_eq!(opts.validate().is_ok(), ok, "pipe_size {size}");
    }
    assert_eq!(
        OptionsError::PipeSize(1).to_string(),
        "pipe_size 1 is not valid: it must be between 4096 and 1073741824 bytes"
    );
}

/// Connected (near, far) loopback sockets.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let near = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (far, _) = listener.accept().await.unwrap();
    (near, far)
}

/// A direction's shared state as `forward` makes it, for driving one `Pump` by hand.
fn ctx<'a>(opts: &'a ForwardOptions, stats: &'a ForwardStats) -> Ctx<'a> {
    Ctx {
        opts,
        stats,
        pool: PipePool::global(),
        activity: Activity::new(),
        finished: AtomicUsize::new(0),
    }
}

/// Kernels refuse splice only for odd descriptors, never for two TCP sockets, so the
/// refusal is injected: first with bytes already in the pipe (they must be copied out of
/// it, not lost), then the direction must carry on by copying to the end.
#[test]
fn refusal_with_bytes_in_the_pipe_switches_to_copying_without_loss() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, relay_in) = pair().await;
        let (relay_out, mut upstream) = pair().await;
        let opts = ForwardOptions::default();
        let stats = ForwardStats::new();
        let ctx = ctx(&opts, &stats);
        let mut pump = Pump::new(&relay_in, &relay_out, Side::Client, &ctx);
        // Past the small reads: the next fill splices into the pipe.
        let Conduit::Splice { bulk, .. } = &mut pump.conduit else {
            panic!("the splice path is the default");
        };
        *bulk = true;

        client.write_all(b"spliced into the pipe, ").await.unwrap();
        let n = loop {
            relay_in.readable().await.unwrap();
            match pump.fill() {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => panic!("fill: {err}"),
            }
        };
        assert!(n > 0);
        assert_eq!(pump.conduit.pending(), n);
        let refused = io::Error::from_raw_os_error(libc::EINVAL);
        assert!(pump.spill(&refused).is_ok());
        assert!(matches!(pump.conduit, Conduit::Copy(_)));
        assert_eq!(
            pump.conduit.pending(),
            n,
            "bytes moved from the pipe to the buffer"
        );

        client.write_all(b"then copied").await.unwrap();
        client.shutdown().await.unwrap();
        assert!(pump.drain().await.is_ok());
        assert!(pump.run().await.is_ok());

        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"spliced into the pipe, then copied");
        assert!(pump.report.fell_back && pump.report.finished);
        assert_eq!(pump.report.spliced, 0);
        assert_eq!(pump.report.copied, got.len() as u64);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.splice_fallbacks, 1);
        assert_eq!(snapshot.copied_directions, 1);
        assert_eq!(snapshot.spliced_directions, 0);
        assert_eq!(snapshot.client_to_upstream, got.len() as u64);
    });
}

/// Short reads go through the stack buffer and leave the socket's readiness cleared (no read
/// that finds it empty); the first read that fills the buffer switches the direction to the
/// pipe, and every byte arrives in order either way.
#[test]
fn short_reads_skip_the_pipe_until_one_fills_the_buffer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, relay_in) = pair().await;
        let (relay_out, mut upstream) = pair().await;
        let opts = ForwardOptions::default();
        let stats = ForwardStats::new();
        let ctx = ctx(&opts, &stats);
        let mut pump = Pump::new(&relay_in, &relay_out, Side::Client, &ctx);
        let mut sent = Vec::new();

        client.write_all(b"hello").await.unwrap();
        sent.extend_from_slice(b"hello");
        relay_in.readable().await.unwrap();
        assert_eq!(pump.fill().unwrap(), 5);
        assert_eq!(pump.conduit.pending(), 0, "written at once");
        assert_eq!(pump.report.small, 5);
        assert!(
            relay_in.try_io(Interest::READABLE, || Ok(())).is_err(),
            "a short read clears the readiness"
        );
        assert!(matches!(pump.conduit, Conduit::Splice { bulk: false, .. }));

        // More than the buffer at once: one full read, then the pipe.
        let big: Vec<u8> = (0..3 * SMALL_READ).map(|i| (i % 251) as u8).collect();
        client.write_all(&big).await.unwrap();
        sent.extend_from_slice(&big);
        client.shutdown().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pump.run().await.is_ok());
        assert!(matches!(pump.conduit, Conduit::Splice { bulk: true, .. }));
        assert_eq!(pump.report.small, 5 + SMALL_READ as u64);
        assert_eq!(pump.report.spliced, 2 * SMALL_READ as u64);
        assert!(pump.report.finished && !pump.report.fell_back);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.spliced_directions, 1, "{snapshot:?}");
        assert_eq!(snapshot.copied_directions, 0, "{snapshot:?}");

        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap();
        assert!(got == sent, "bytes lost or out of order");
    });
}

#[test]
fn forward_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let opts = ForwardOptions::default();
    let stats = ForwardStats::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let a = TcpStream::connect(addr).await.unwrap();
        let b = TcpStream::connect(addr).await.unwrap();
        let fut = forward(a, b, &opts, &stats);
        assert_send(&fut);
    });
}
