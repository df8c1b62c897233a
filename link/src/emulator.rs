//! The running link: two namespaces, a TUN device in each, and per direction a reader thread
//! (packets in, [`Shaper`] decides) and a writer thread (packets out when due). Needs root.
//!
//! Guarantees: [`Emulator::start`] either returns a working link or removes whatever it had
//! made; the namespaces are removed when the [`Emulator`] is dropped; a namespace that already
//! exists is refused, never reused or removed (it may belong to another run).

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use nix::sched::{setns, CloneFlags};
use tun_rs::{DeviceBuilder, SyncDevice};

use crate::{Direction, Shaper, Verdict, CN_ADDR, MTU, US_ADDR};

/// The device's name in both namespaces.
pub const DEVICE: &str = "link0";

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("ferry-link needs root (it makes network namespaces and TUN devices); run it as root or with sudo")]
    NotRoot,
    #[error("network namespace {0} exists already (another ferry-link, or left over: `ip netns del {0}`)")]
    Exists(String),
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Packets counted in one direction.
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub bytes: AtomicU64,
    pub lost: AtomicU64,
    pub overflow: AtomicU64,
}

/// A running link; dropping it removes both namespaces (and with them the devices).
pub struct Emulator {
    cn: String,
    us: String,
    /// cn -> us, then us -> cn.
    pub counters: [Arc<Counters>; 2],
}

impl Emulator {
    /// Makes namespaces `<name>-cn` and `<name>-us` joined by the link and starts forwarding:
    /// `up` shapes cn -> us, `down` us -> cn.
    pub fn start(
        name: &str,
        up: Direction,
        down: Direction,
        seed: u64,
    ) -> Result<Emulator, LinkError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(LinkError::NotRoot);
        }
        let cn = format!("{name}-cn");
        let us = format!("{name}-us");
        for ns in [&cn, &us] {
            if std::path::Path::new("/run/netns").join(ns).exists() {
                return Err(LinkError::Exists(ns.clone()));
            }
        }
        let mut emulator = Emulator {
            cn: String::new(),
            us: String::new(),
            counters: [Arc::default(), Arc::default()],
        };
        // From here on, dropping `emulator` removes what was made.
        ip(&["netns", "add", &cn])?;
        emulator.cn = cn.clone();
        ip(&["netns", "add", &us])?;
        emulator.us = us.clone();
        let cn_dev = Arc::new(device_in(&cn)?);
        let us_dev = Arc::new(device_in(&us)?);
        for (ns, local, peer) in [(&cn, CN_ADDR, US_ADDR), (&us, US_ADDR, CN_ADDR)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                ns,
                "link",
                "set",
                DEVICE,
                "mtu",
                &MTU.to_string(),
                "txqueuelen",
                "1000",
            ])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{local}/32"),
                "peer",
                &format!("{peer}/32"),
                "dev",
                DEVICE,
            ])?;
            ip(&["-n", ns, "link", "set", DEVICE, "up"])?;
        }
        // Timers fire within a microsecond, not the default 50.
        let _ = nix::sys::prctl::set_timerslack(1_000);
        forward(
            cn_dev.clone(),
            us_dev.clone(),
            Shaper::new(up, seed),
            emulator.counters[0].clone(),
        );
        forward(
            us_dev,
            cn_dev,
            Shaper::new(down, seed ^ 0x5555),
            emulator.counters[1].clone(),
        );
        Ok(emulator)
    }

    /// The cn side's namespace (the visitors' side: the relay runs here).
    pub fn cn(&self) -> &str {
        &self.cn
    }

    /// The us side's namespace.
    pub fn us(&self) -> &str {
        &self.us
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for ns in [&self.cn, &self.us] {
            if !ns.is_empty() {
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }
}

/// Runs `ip ARGS`; its output is the error.
fn ip(args: &[&str]) -> Result<(), LinkError> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| LinkError::Io {
            what: format!("cannot run `{command}` (is iproute2 installed?)"),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(LinkError::Command {
        command,
        output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// A TUN device made inside namespace `ns` (a thread enters it; the device lives there).
fn device_in(ns: &str) -> Result<SyncDevice, LinkError> {
    let path = format!("/run/netns/{ns}");
    let io = |what: String| move |source| LinkError::Io { what, source };
    let file = File::open(&path).map_err(io(format!("cannot open {path}")))?;
    thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
        DeviceBuilder::new().name(DEVICE).build_sync()
    })
    .join()
    .map_err(|_| LinkError::Io {
        what: format!("making {DEVICE} in {ns}"),
        source: std::io::Error::other("the thread panicked"),
    })?
    .map_err(io(format!("cannot make the TUN device {DEVICE} in {ns}")))
}

/// Packets from `from` go to `to` as `shaper` decides: a reader thread admits them, a writer
/// thread sends each when it is due (in order: due times never decrease).
fn forward(
    from: Arc<SyncDevice>,
    to: Arc<SyncDevice>,
    mut shaper: Shaper,
    counters: Arc<Counters>,
) {
    let (queue, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader_counters = counters.clone();
    thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok(len) = from.recv(&mut buf) else { return };
            match shaper.admit(Instant::now(), len) {
                Verdict::Deliver(at) => {
                    if queue.send((at, buf[..len].to_vec())).is_err() {
                        return;
                    }
                }
                Verdict::Lost => {
                    reader_counters.lost.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::Overflow => {
                    reader_counters.overflow.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    thread::spawn(move || {
        while let Ok((at, packet)) = due.recv() {
            let now = Instant::now();
            if at > now {
                thread::sleep(at - now);
            }
            // A full device queue on the other side drops the packet, as a wire would.
            if to.send(&packet).is_ok() {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                counters
                    .bytes
                    .fetch_add(packet.len() as u64, Ordering::Relaxed);
            }
        }
    });
}
