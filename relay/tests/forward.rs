//! End-to-end tests of `forward()` on real loopback sockets with ephemeral ports: a client,
//! the relay in the middle (an accept loop that calls `forward` per connection), and a test
//! upstream.
//!
//! What they pin down:
//! * 64 MiB each way at once arrives byte-exact (length and digest), on the splice path (and
//!   the stats prove splice carried every byte, all but the small reads before the first full
//!   one through the pipe: no silent copy fallback) and on the copy path;
//! * half-close: the client's FIN reaches the upstream, which still answers in full;
//!   a half-closed connection that goes quiet is reset after `half_close_timeout`;
//! * a reset on either side becomes a reset on the other;
//! * idle connections are reset after `idle_timeout`, chatty ones are not; bytes stuck in a
//!   pipe at that moment are never passed off as a whole stream either: whatever the relay
//!   cuts short ends in a reset for both peers, never a FIN;
//! * `forward_until`'s cut (the end of a stop's grace) resets both peers mid-transfer;
//! * 200 connections closing right after their last write lose no byte of their tail;
//! * no pipe or socket descriptor outlives the connections (`/proc/self/fd` census).
//!
//! Every test takes a shared lock, the census test an exclusive one, so that the census sees
//! no other test's descriptors.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ferry_relay::forward::{
    forward, forward_until, End, ForwardOptions, ForwardStats, Outcome, Side, StatsSnapshot,
};
use ferry_relay::pipe_pool::PipePool;
use ferry_testkit::{Digest, Rng};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{sleep, timeout, Instant};

const MIB: u64 = 1 << 20;

static SERIAL: RwLock<()> = RwLock::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs one test body on its own runtime, alongside other tests but not the census.
fn run<F: Future>(body: F) -> F::Output {
    let _shared = SERIAL.read().unwrap_or_else(PoisonError::into_inner);
    let rt = runtime();
    let output = rt.block_on(body);
    // Dropped before the lock is released: every task, socket and pipe is gone with it.
    drop(rt);
    output
}

async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {secs} s"))
}

// ----- data: a deterministic stream (ferry_testkit's Rng) and its split-independent digest -----

/// The digest of `len` bytes of stream `seed`, without sending them anywhere.
async fn expected(seed: u64, len: u64) -> (u64, u64) {
    send(&mut tokio::io::sink(), seed, len)
        .await
        .expect("a sink takes every byte")
}

/// Writes `len` bytes of stream `seed`; returns their digest.
async fn send(w: &mut (impl AsyncWrite + Unpin), seed: u64, len: u64) -> io::Result<(u64, u64)> {
    let mut stream = Rng(seed);
    let mut digest = Digest::new();
    let mut buf = vec![0; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        digest.update(&buf[..n]);
        w.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    Ok(digest.finish())
}

/// Reads until end of stream; returns the digest of everything read.
async fn receive(r: &mut (impl AsyncRead + Unpin)) -> io::Result<(u64, u64)> {
    let mut digest = Digest::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(digest.finish());
        }
        digest.update(&buf[..n]);
    }
}

// ----- the relay and the test upstream -----

/// Aborts a background task when dropped.
struct Background(JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A test upstream on an ephemeral port: `handler` runs for every accepted connection.
async fn serve<F, Fut>(handler: F) -> (SocketAddr, Background)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handler(stream));
        }
    });
    (addr, Background(task))
}

/// What a [`digesting_upstream`] got on each connection.
type Digests = mpsc::UnboundedReceiver<io::Result<(u64, u64)>>;

/// A test upstream that reads each connection to its end and sends the digest of what it got.
async fn digesting_upstream() -> (SocketAddr, Digests, Background) {
    let (tx, digests) = mpsc::unbounded_channel();
    let (addr, task) = serve(move |mut stream| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(receive(&mut stream).await);
        }
    })
    .await;
    (addr, digests, task)
}

/// The relay under test: accepts on an ephemeral port, connects to `upstream`, forwards.
struct Relay {
    addr: SocketAddr,
    stats: Arc<ForwardStats>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    _accept: Background,
}

impl Relay {
    async fn start(upstream: SocketAddr, opts: ForwardOptions) -> Relay {
        Relay::start_with(upstream, opts, None).await
    }

    /// With `send_buffer`, the relay's two sockets get that `SO_SNDBUF`: its writes then
    /// often answer EAGAIN, so bytes wait in its pipes when a FIN arrives.
    async fn start_with(
        upstream: SocketAddr,
        opts: ForwardOptions,
        send_buffer: Option<usize>,
    ) -> Relay {
        opts.validate().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ForwardStats::new());
        let (tx, outcomes) = mpsc::unbounded_channel();
        let opts = Arc::new(opts);
        let task = tokio::spawn({
            let stats = stats.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (stats, opts, tx) = (stats.clone(), opts.clone(), tx.clone());
                    tokio::spawn(async move {
                        let upstream = TcpStream::connect(upstream).await.unwrap();
                        if let Some(size) = send_buffer {
                            for socket in [&client, &upstream] {
                                SockRef::from(socket).set_send_buffer_size(size).unwrap();
                            }
                        }
                        let outcome = forward(client, upstream, &opts, &stats).await;
                        let _ = tx.send(outcome);
                    });
                }
            }
        });
        Relay {
            addr,
            stats,
            outcomes,
            _accept: Background(task),
        }
    }

    async fn outcome(&mut self) -> Outcome {
        within(30, "forward()", self.outcomes.recv())
            .await
            .expect("relay stopped")
    }

    fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }
}

fn splice_opts() -> ForwardOptions {
    ForwardOptions {
        idle_timeout: Duration::from_secs(60),
        half_close_timeout: Duration::from_secs(60),
        pipe_size: None,
        splice: true,
    }
}

fn copy_opts() -> ForwardOptions {
    ForwardOptions {
        splice: false,
        ..splice_opts()
    }
}

fn reset_on_close(stream: &TcpStream) {
    SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

// ----- scenarios (shared by the tests and the descriptor census) -----

/// `len` bytes each way at the same time; both ends check what they got.
async fn both_ways(opts: ForwardOptions, len: u64) -> (Outcome, StatsSnapshot) {
    let (tx, mut upstream_results) = mpsc::unbounded_channel();
    let (upstream, _server) = serve(move |stream| {
        let tx = tx.clone();
        async move {
            let (mut r, mut w) = stream.into_split();
            let (sent, received) = tokio::join!(
                async {
                    let digest = send(&mut w, 2, len).await?;
                    w.shutdown().await?;
                    io::Result::Ok(digest)
                },
                receive(&mut r)
            );
            let _ = tx.send((sent.unwrap(), received.unwrap()));
        }
    })
    .await;
    let mut relay = Relay::start(upstream, opts).await;

    let client = TcpStream::connect(relay.addr).await.unwrap();
    let (mut r, mut w) = client.into_split();
    let (sent, received) = within(
        120,
        "transfer",
        futures_join(
            async {
                let digest = send(&mut w, 1, len).await?;
                w.shutdown().await?;
                io::Result::Ok(digest)
            },
            receive(&mut r),
        ),
    )
    .await;
    let (sent, received) = (sent.unwrap(), received.unwrap());
    let (upstream_sent, upstream_received) = upstream_results.recv().await.unwrap();
    assert_eq!(sent, expected(1, len).await);
    assert_eq!(upstream_received, sent, "client -> upstream bytes differ");
    assert_eq!(received, upstream_sent, "upstream -> client bytes differ");

    let outcome = relay.outcome().await;
    assert_eq!(outcome.end, End::Closed);
    assert_eq!(outcome.undelivered, 0);
    assert!(outcome.client_to_upstream.finished && outcome.upstream_to_client.finished);
    let stats = relay.stats();
    assert_eq!(stats.client_to_upstream, len);
    assert_eq!(stats.upstream_to_client, len);
    (outcome, stats)
}

/// `tokio::join!` as a function, so it can be wrapped in `within`.
async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

/// The client sends a request and its FIN; the upstream sees end of stream, then answers.
async fn half_close(opts: ForwardOptions) -> Outcome {
    const REQUEST: u64 = MIB;
    const ANSWER: u64 = 4 * MIB;
    let (tx, mut request_seen) = mpsc::unbounded_channel();
    let (upstream, _server) = serve(move |stream| {
        let tx = tx.clone();
        async move {
            let (mut r, mut w) = stream.into_split();
            // Only a FIN passed on by the relay ends this read.
            let request = receive(&mut r).await.unwrap();
            let _ = tx.send(request);
            send(&mut w, 4, ANSWER).await.unwrap();
            w.shutdown().await.unwrap();
        }
    })
    .await;
    let mut relay = Relay::start(upstream, opts).await;

    let mut client = TcpStream::connect(relay.addr).await.unwrap();
    send(&mut client, 3, REQUEST).await.unwrap();
    client.shutdown().await.unwrap();
    let answer = within(30, "answer", receive(&mut client)).await.unwrap();
    assert_eq!(
        request_seen.recv().await.unwrap(),
        expected(3, REQUEST).await
    );
    assert_eq!(answer, expected(4, ANSWER).await, "answer after half-close");

    let outcome = relay.outcome().await;
    assert_eq!(outcome.end, End::Closed);
    assert_eq!(outcome.first_closed, Some(Side::Client));
    assert_eq!(outcome.undelivered, 0);
    outcome
}

/// One side resets; the other must see a reset too.
async fn reset_from(opts: ForwardOptions, resetter: Side) -> Outcome {
    let (tx, mut upstream_result) = mpsc::unbounded_channel();
    let (upstream, _server) = serve(move |mut stream| {
        let tx = tx.clone();
        async move {
            let mut hello = [0; 5];
            stream.read_exact(&mut hello).await.unwrap();
            if resetter == Side::Upstream {
                reset_on_close(&stream);
                drop(stream);
                let _ = tx.send(None);
            } else {
                let _ = tx.send(None);
                let result = receive(&mut stream).await;
                let _ = tx.send(Some(result));
            }
        }
    })
    .await;
    let mut relay = Relay::start(upstream, opts).await;

    let mut client = TcpStream::connect(relay.addr).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    // The upstream has the greeting: the connection is fully established through the relay.
    assert!(upstream_result.recv().await.unwrap().is_none());
    match resetter {
        Side::Upstream => {
            let err = within(10, "client read", receive(&mut client))
                .await
                .expect_err("the client must see a reset, not an end of stream");
            assert!(is_reset(&err), "client got {err:?}");
        }
        Side::Client => {
            reset_on_close(&client);
            drop(client);
            let result = within(10, "upstream read", upstream_result.recv())
                .await
                .unwrap()
                .unwrap();
            let err = result.expect_err("the upstream must see a reset, not an end of stream");
            assert!(is_reset(&err), "upstream got {err:?}");
        }
    }
    let outcome = relay.outcome().await;
    match outcome.end {
        End::Reset { side, error } => {
            assert_eq!(side, resetter);
            assert!(
                matches!(
                    error,
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ),
                "{error:?}"
            );
        }
        other => panic!("expected a reset, got {other:?}"),
    }
    outcome
}

/// The upstream stops reading while the client keeps sending: bytes get stuck in the relay's
/// pipe, the idle timeout fires, and both sides must see a reset (not a clean end).
async fn stuck_then_idle(opts: ForwardOptions) -> Outcome {
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let go_rx = Arc::new(tokio::sync::Mutex::new(Some(go_rx)));
    let (tx, mut upstream_result) = mpsc::unbounded_channel();
    let (upstream, _server) = serve(move |mut stream| {
        let (go_rx, tx) = (go_rx.clone(), tx.clone());
        async move {
            let go = go_rx.lock().await.take().unwrap();
            let _ = go.await;
            let _ = tx.send(receive(&mut stream).await);
        }
    })
    .await;
    let mut relay = Relay::start(upstream, opts).await;

    let client = TcpStream::connect(relay.addr).await.unwrap();
    let (mut r, mut w) = client.into_split();
    let writer = tokio::spawn(async move { send(&mut w, 5, 1 << 40).await });
    let outcome = relay.outcome().await;
    assert_eq!(outcome.end, End::IdleTimeout);
    assert!(
        outcome.undelivered > 0,
        "the pipe should have held bytes: {outcome:?}"
    );
    // The client's reader and writer race for the one ECONNRESET the kernel reports; after
    // it, a read sees end of stream and a write EPIPE. One of them must have had it.
    let client_read = within(10, "client read", receive(&mut r)).await;
    let write = within(10, "client write", writer).await.unwrap();
    assert!(
        write.as_ref().is_err_and(is_reset),
        "client write must fail: {write:?}"
    );
    let read_reset = client_read.as_ref().is_err_and(is_reset);
    let write_reset = write
        .as_ref()
        .is_err_and(|err| err.kind() == io::ErrorKind::ConnectionReset);
    assert!(
        read_reset || write_reset,
        "the client never saw a reset: read {client_read:?}, write {write:?}"
    );
    go_tx.send(()).unwrap();
    let upstream_read = within(10, "upstream read", upstream_result.recv())
        .await
        .unwrap();
    assert!(
        upstream_read.as_ref().is_err_and(is_reset),
        "upstream must see a reset after reading what arrived: {upstream_read:?}"
    );
    outcome
}

/// `conns` connections at once, each closing right after its last write: half of them the
/// upstream closes right after the last byte of its response, half of them the client right
/// after the last byte of its upload. Every byte must arrive.
async fn many_closes(
    opts: ForwardOptions,
    conns: usize,
    len: u64,
) -> (Vec<Outcome>, StatsSnapshot) {
    let (response_upstream, _s1) = serve(move |stream| async move {
        let (mut r, mut w) = stream.into_split();
        receive(&mut r).await.unwrap();
        send(&mut w, 7, len).await.unwrap();
        // Both halves dropped here: close(2) right after the last write.
    })
    .await;
    let (upload_upstream, mut uploads, _s2) = digesting_upstream().await;
    let mut responses = Relay::start_with(response_upstream, opts.clone(), Some(4096)).await;
    let mut upload = Relay::start_with(upload_upstream, opts, Some(4096)).await;

    let mut clients = JoinSet::new();
    for i in 0..conns {
        let (responses_addr, upload_addr) = (responses.addr, upload.addr);
        clients.spawn(async move {
            if i % 2 == 0 {
                let mut client = TcpStream::connect(responses_addr).await.unwrap();
                send(&mut client, 8, 16 * 1024).await.unwrap();
                client.shutdown().await.unwrap();
                let answer = receive(&mut client).await.unwrap();
                assert_eq!(
                    answer,
                    expected(7, len).await,
                    "response tail lost (connection {i})"
                );
            } else {
                let mut client = TcpStream::connect(upload_addr).await.unwrap();
                send(&mut client, 9, len).await.unwrap();
                drop(client);
            }
        });
    }
    within(120, "clients", async {
        while let Some(joined) = clients.join_next().await {
            joined.unwrap();
        }
    })
    .await;
    let want = expected(9, len).await;
    for i in 0..conns / 2 {
        let got = within(30, "upload", uploads.recv()).await.unwrap().unwrap();
        assert_eq!(got, want, "upload tail lost ({i} uploads checked)");
    }
    let mut outcomes = Vec::new();
    for relay in [&mut responses, &mut upload] {
        for _ in 0..conns / 2 {
            let outcome = relay.outcome().await;
            assert_eq!(outcome.end, End::Closed, "{outcome:?}");
            assert_eq!(outcome.undelivered, 0);
            outcomes.push(outcome);
        }
    }
    let (a, b) = (responses.stats(), upload.stats());
    let stats = StatsSnapshot {
        client_to_upstream: a.client_to_upstream + b.client_to_upstream,
        upstream_to_client: a.upstream_to_client + b.upstream_to_client,
        spliced_directions: a.spliced_directions + b.spliced_directions,
        copied_directions: a.copied_directions + b.copied_directions,
        splice_fallbacks: a.splice_fallbacks + b.splice_fallbacks,
    };
    (outcomes, stats)
}

// ----- the tests -----

#[test]
fn splice_path_carries_64_mib_each_way_byte_exact() {
    let (outcome, stats) = run(both_ways(splice_opts(), 64 * MIB));
    for direction in [outcome.client_to_upstream, outcome.upstream_to_client] {
        assert_eq!(direction.delivered(), 64 * MIB, "{outcome:?}");
        assert!(
            direction.spliced > 63 * MIB,
            "bulk went through the pipe: {outcome:?}"
        );
        assert_eq!(
            direction.copied, 0,
            "splice silently fell back: {outcome:?}"
        );
        assert!(!direction.fell_back);
    }
    assert_eq!(stats.spliced_directions, 2, "{stats:?}");
    assert_eq!(stats.copied_directions, 0, "{stats:?}");
    assert_eq!(stats.splice_fallbacks, 0, "{stats:?}");
}

#[test]
fn copy_path_carries_64_mib_each_way_byte_exact() {
    let (outcome, stats) = run(both_ways(copy_opts(), 64 * MIB));
    for direction in [outcome.client_to_upstream, outcome.upstream_to_client] {
        assert_eq!(direction.copied, 64 * MIB, "{outcome:?}");
        assert_eq!(direction.spliced, 0, "{outcome:?}");
        assert!(!direction.fell_back, "a forced copy is not a fallback");
    }
    assert_eq!(stats.copied_directions, 2, "{stats:?}");
    assert_eq!(stats.spliced_directions, 0, "{stats:?}");
    assert_eq!(stats.splice_fallbacks, 0, "{stats:?}");
}

#[test]
fn small_pipes_still_carry_everything() {
    let opts = ForwardOptions {
        pipe_size: Some(4096),
        ..splice_opts()
    };
    let (outcome, _) = run(both_ways(opts, 8 * MIB));
    for direction in [outcome.client_to_upstream, outcome.upstream_to_client] {
        assert_eq!(direction.delivered(), 8 * MIB, "{outcome:?}");
        assert_eq!(direction.copied, 0, "{outcome:?}");
    }
}

#[test]
fn half_close_is_passed_on_and_the_answer_still_flows() {
    for opts in [splice_opts(), copy_opts()] {
        let outcome = run(half_close(opts.clone()));
        assert!(
            outcome.client_to_upstream.finished && outcome.upstream_to_client.finished,
            "splice {}: {outcome:?}",
            opts.splice
        );
    }
}

#[test]
fn quiet_half_closed_connection_is_closed_after_half_close_timeout() {
    run(async {
        let opts = ForwardOptions {
            half_close_timeout: Duration::from_millis(300),
            ..splice_opts()
        };
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let go_rx = Arc::new(tokio::sync::Mutex::new(Some(go_rx)));
        let (tx, mut upstream_end) = mpsc::unbounded_channel();
        let (upstream, _server) = serve(move |mut stream| {
            let (go_rx, tx) = (go_rx.clone(), tx.clone());
            async move {
                receive(&mut stream).await.unwrap();
                stream.write_all(b"ack").await.unwrap();
                // Never sends its FIN. Once the relay has given up, its socket is closed: the
                // first write after that is answered with a reset, which fails a later one.
                let go = go_rx.lock().await.take().unwrap();
                let _ = go.await;
                let deadline = Instant::now() + Duration::from_secs(5);
                let result = loop {
                    if let Err(err) = stream.write_all(b"late").await {
                        break Ok(err);
                    }
                    if Instant::now() > deadline {
                        break Err("the relay's upstream socket still accepts bytes");
                    }
                    sleep(Duration::from_millis(10)).await;
                };
                let _ = tx.send(result);
            }
        })
        .await;
        let mut relay = Relay::start(upstream, opts).await;

        let mut client = TcpStream::connect(relay.addr).await.unwrap();
        client.write_all(b"question").await.unwrap();
        client.shutdown().await.unwrap();
        let half_closed = Instant::now();
        let mut answer = Vec::new();
        let end = within(10, "client read", client.read_to_end(&mut answer)).await;
        // The upstream's direction never finished: the client sees a reset, not a FIN that
        // would pass the cut stream off as whole; what was delivered before stays delivered.
        assert!(
            end.as_ref().is_err_and(is_reset),
            "client read ended with {end:?}, not a reset"
        );
        assert_eq!(answer, b"ack");
        let waited = half_closed.elapsed();
        let outcome = relay.outcome().await;
        assert!(
            waited >= Duration::from_millis(300),
            "{waited:?} {outcome:?}"
        );
        assert_eq!(outcome.end, End::HalfCloseTimeout);
        assert_eq!(outcome.first_closed, Some(Side::Client));
        assert!(outcome.client_to_upstream.finished);
        assert!(!outcome.upstream_to_client.finished);

        go_tx.send(()).unwrap();
        let err = within(10, "upstream", upstream_end.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(is_reset(&err), "upstream write: {err:?}");
    });
}

#[test]
fn upstream_reset_resets_the_client() {
    for opts in [splice_opts(), copy_opts()] {
        run(reset_from(opts, Side::Upstream));
    }
}

#[test]
fn client_reset_resets_the_upstream() {
    for opts in [splice_opts(), copy_opts()] {
        run(reset_from(opts, Side::Client));
    }
}

#[test]
fn idle_connection_is_closed_after_idle_timeout_but_a_chatty_one_is_not() {
    run(async {
        let opts = ForwardOptions {
            // Six times the gap between bytes, so a loaded machine's late wake-ups do not
            // make the chatty client look idle.
            idle_timeout: Duration::from_millis(600),
            ..splice_opts()
        };
        let (upstream, mut received, _server) = digesting_upstream().await;
        let mut relay = Relay::start(upstream, opts).await;

        let mut client = TcpStream::connect(relay.addr).await.unwrap();
        // 1.2 s of one byte every 100 ms: two idle timeouts long, but never idle.
        for _ in 0..12 {
            client.write_all(b"x").await.unwrap();
            sleep(Duration::from_millis(100)).await;
        }
        let quiet_since = Instant::now();
        let mut rest = Vec::new();
        let end = within(10, "client read", client.read_to_end(&mut rest)).await;
        let waited = quiet_since.elapsed();
        // Cut by the relay: a reset, never a FIN.
        assert!(
            end.as_ref().is_err_and(is_reset),
            "client read ended with {end:?}, not a reset"
        );
        assert!(rest.is_empty());
        assert!(
            waited >= Duration::from_millis(450),
            "closed too early: {waited:?}"
        );

        let outcome = relay.outcome().await;
        assert_eq!(outcome.end, End::IdleTimeout);
        // One byte at a time: the small reads, no pipe.
        assert_eq!(outcome.client_to_upstream.small, 12);
        assert_eq!(outcome.undelivered, 0);
        // Every chatty byte was delivered (above); then the upstream too is reset.
        let upstream_end = received.recv().await.unwrap();
        assert!(
            upstream_end.as_ref().is_err_and(is_reset),
            "upstream: {upstream_end:?}"
        );
    });
}

#[test]
fn bytes_stuck_in_a_pipe_at_idle_timeout_turn_the_close_into_a_reset() {
    run(stuck_then_idle(ForwardOptions {
        idle_timeout: Duration::from_millis(300),
        ..splice_opts()
    }));
}

#[test]
fn many_connections_closing_right_after_their_last_write_lose_no_bytes() {
    let small_pipes = ForwardOptions {
        pipe_size: Some(4096),
        ..splice_opts()
    };
    for (name, opts) in [
        ("splice", splice_opts()),
        ("splice, 4 KiB pipes", small_pipes),
        ("copy", copy_opts()),
    ] {
        let (outcomes, stats) = run(many_closes(opts.clone(), 200, 300 * 1024));
        assert_eq!(outcomes.len(), 200, "{name}");
        if opts.splice {
            assert_eq!(stats.copied_directions, 0, "{name}: {stats:?}");
            assert_eq!(stats.splice_fallbacks, 0, "{name}: {stats:?}");
        } else {
            assert_eq!(stats.spliced_directions, 0, "{name}: {stats:?}");
        }
    }
}

/// CPU time (user + system) the process has used so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // /proc reports clock ticks of USER_HZ, which is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// One connection stalled on a destination that does not read (the relay waits for
/// writability with bytes in its pipe) and one idle connection must cost no CPU: a
/// would-block parks the task, it never retries in a loop.
#[test]
fn stalled_and_idle_connections_do_not_spin() {
    let _exclusive = SERIAL.write().unwrap_or_else(PoisonError::into_inner);
    let rt = runtime();
    rt.block_on(async {
        let (upstream, _server) = serve(|stream| async move {
            // Holds the connection without reading until the test ends.
            sleep(Duration::from_secs(60)).await;
            drop(stream);
        })
        .await;
        let relay = Relay::start(upstream, splice_opts()).await;
        let _idle = TcpStream::connect(relay.addr).await.unwrap();
        let (_r, mut w) = TcpStream::connect(relay.addr).await.unwrap().into_split();
        let _writer = Background(tokio::spawn(async move {
            let _ = send(&mut w, 6, 1 << 40).await;
        }));
        // Stalled once the relay has stopped delivering.
        let mut last = relay.stats().client_to_upstream;
        let mut stable_since = Instant::now();
        while stable_since.elapsed() < Duration::from_millis(300) {
            sleep(Duration::from_millis(50)).await;
            let now = relay.stats().client_to_upstream;
            if now != last {
                (last, stable_since) = (now, Instant::now());
            }
        }
        assert!(last > 0);
        let before = cpu_time();
        sleep(Duration::from_millis(1000)).await;
        let used = cpu_time() - before;
        assert!(used <= Duration::from_millis(100), "{used:?} of CPU in 1 s");
    });
}

/// Pipes, sockets and every other descriptor of the process, by kind.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    pipes: usize,
    sockets: usize,
    total: usize,
}

fn census() -> Census {
    let mut census = Census {
        pipes: 0,
        sockets: 0,
        total: 0,
    };
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(target) = std::fs::read_link(entry.unwrap().path()) else {
            continue; // the directory's own descriptor, closed while listing
        };
        let target = target.to_string_lossy();
        census.total += 1;
        if target.starts_with("pipe:") {
            census.pipes += 1;
        } else if target.starts_with("socket:") {
            census.sockets += 1;
        }
    }
    census
}

#[test]
fn no_pipe_or_socket_descriptor_outlives_its_connections() {
    let _exclusive = SERIAL.write().unwrap_or_else(PoisonError::into_inner);
    // Descriptors a process opens once, on first use, belong in "before": tokio opens a
    // socket pair for its signal handling when the first runtime starts.
    drop(runtime());
    let pool = PipePool::global();
    pool.clear();
    let before = census();
    let pool_before = pool.stats();

    let rt = runtime();
    rt.block_on(async {
        both_ways(splice_opts(), 8 * MIB).await;
        half_close(splice_opts()).await;
        reset_from(splice_opts(), Side::Upstream).await;
        reset_from(splice_opts(), Side::Client).await;
        stuck_then_idle(ForwardOptions {
            idle_timeout: Duration::from_millis(300),
            ..splice_opts()
        })
        .await;
        many_closes(splice_opts(), 100, 200 * 1024).await;
    });
    drop(rt);

    let pool_after = pool.stats();
    assert!(
        pool_after.closed_not_empty > pool_before.closed_not_empty,
        "the stuck pipe must have been closed, not pooled: {pool_after:?}"
    );
    assert!(pool_after.idle_bytes <= ferry_relay::pipe_pool::GLOBAL_POOL_IDLE_BYTES);
    pool.clear();
    assert_eq!(census(), before, "descriptors leaked");
}

/// The grace period of a stop ends while a transfer is running: both peers see a reset, not a
/// FIN after part of the stream (a client would otherwise take a truncated download as whole).
#[test]
fn a_cut_resets_both_peers_mid_transfer() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = listener.local_addr().unwrap();
        // The upstream sends without end and reports how its writing ended.
        let (ended_tx, mut ended) = mpsc::channel(1);
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let chunk = vec![7u8; 64 * 1024];
            let err = loop {
                if let Err(e) = stream.write_all(&chunk).await {
                    break e;
                }
            };
            let _ = ended_tx.send(err).await;
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        let (cut_tx, cut_rx) = oneshot::channel::<()>();
        let relay = tokio::spawn(async move {
            let (client, _) = front.accept().await.unwrap();
            let upstream = TcpStream::connect(upstream_addr).await.unwrap();
            let stats = ForwardStats::new();
            let cut = async {
                let _ = cut_rx.await;
            };
            forward_until(client, upstream, &splice_opts(), &stats, cut).await
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        while got < 4 * MIB as usize {
            got += client.read(&mut buf).await.unwrap();
        }
        cut_tx.send(()).unwrap();
        let outcome = within(10, "forward_until", relay).await.unwrap();
        assert_eq!(outcome.end, End::Cut);
        // The client reads what was in flight, then the reset; never a clean end.
        let end = loop {
            match within(10, "client read", client.read(&mut buf)).await {
                Ok(0) => panic!("the client saw a FIN after {got} bytes of a cut stream"),
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert!(is_reset(&end), "client: {end:?}");
        let upstream_end = within(10, "upstream", ended.recv()).await.unwrap();
        assert!(is_reset(&upstream_end), "upstream: {upstream_end:?}");
    });
}
