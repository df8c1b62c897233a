//! `ferry-relay`'s listening sockets: a port another process holds is refused (sharing with
//! `SO_REUSEPORT` is only among the relay's own sockets), and a reload that renames a listener
//! on the same address hands its sockets over, losing no connection, queued or open.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_tests::relay::{ProxyProtocol, Relay, RelayListener, RelayOptions};
use support::{start, Upstream};

#[test]
fn a_port_held_by_another_process_is_refused() {
    let upstream = Upstream::echo();
    let first = start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream.addr.to_string(),
    ]);
    let taken = first.addr().to_string();
    let second = Relay::try_start_args(
        Path::new(env!("CARGO_BIN_EXE_ferry-relay")),
        &["--listen", &taken, "--upstream", &upstream.addr.to_string()],
    );
    let err = match second {
        Ok(_) => panic!("a second relay bound {taken}, which the first one holds"),
        Err(err) => err,
    };
    assert!(
        err.log.contains("in use by another process"),
        "the refusal does not say why: {err}"
    );
    // The first one still serves every connection.
    for _ in 0..20 {
        let answer = support::round_trip(first.addr(), b"mine").expect("round trip");
        assert_eq!(answer, b"mine");
    }
}

/// Short connections run without pause while the listener is renamed back and forth 30 times:
/// every one is served.
#[test]
fn renaming_a_listener_on_the_same_address_loses_no_connection() {
    let upstream = Upstream::echo();
    let relay =
        Relay::start(&RelayOptions::new(upstream.addr).listener(
            RelayListener::new("before", upstream.addr).proxy_protocol(ProxyProtocol::None),
        ));
    let addr = relay.listener("before");
    let config = relay.config_path();
    let original = std::fs::read_to_string(&config).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match exchange(addr) {
                        Ok(()) => served.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("connection failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    for round in 0..30 {
        let name = if round % 2 == 0 { "after" } else { "before" };
        let renamed = original.replace("name = \"before\"", &format!("name = {name:?}"));
        std::fs::write(&config, renamed).unwrap();
        relay.reload();
        // Each reload logs one rename; wait for this one before the next.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while relay.log().matches("listener renamed").count() <= round {
            assert!(
                std::time::Instant::now() < deadline,
                "reload {round} did not rename the listener:\n{}",
                relay.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(served > 100, "only {served} connections were made");
    eprintln!("{served} connections served across 30 renames");
    assert_eq!(
        failed,
        0,
        "{failed} of {} connections failed",
        served + failed
    );
}

/// One short connection: a request and its echo.
fn exchange(addr: SocketAddr) -> std::io::Result<()> {
    let mut client = TcpStream::connect(addr)?;
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    client.write_all(b"ping")?;
    let mut answer = [0u8; 4];
    client.read_exact(&mut answer)?;
    if &answer != b"ping" {
        return Err(std::io::Error::other("a wrong echo"));
    }
    Ok(())
}
