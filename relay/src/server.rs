//! The running relay: listeners, their accept loops, one task per connection, reloads and the
//! graceful stop.
//!
//! Each listener binds one socket per runtime worker with `SO_REUSEPORT`, so the kernel spreads
//! new connections over the workers (and a second relay can bind beside this one during an
//! upgrade). With port 0 the first socket gets a port from the kernel and the others bind that
//! same port; the bound address is logged (`listening`, field `address`) and shown in the
//! metrics. A listener's settings sit behind a lock as an `Arc<ListenerState>` that a reload
//! swaps: a connection keeps the state it was accepted with, so nothing open is disturbed. A
//! reload keeps the sockets of every listener whose name and configured address are unchanged
//! (so a port the kernel chose stays), and binds anew only where they changed.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{Config, ListenerConfig};
use crate::connection::{self, ClientOptions, ListenerState};
use crate::health;
use crate::limits::Limits;
use crate::metrics::{ListenerMetrics, Registry};
use crate::metrics_endpoint;
use crate::upstream::{Pool, Upstream};

/// Why the relay could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listener {name:?}: cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("metrics: cannot listen on {addr}: {source}")]
    Metrics { addr: SocketAddr, source: io::Error },
}

/// Open connections, for the graceful stop: counted, and cut (reset) when the grace is over.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    idle: Notify,
    cut: watch::Sender<bool>,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections {
            open: AtomicUsize::new(0),
            idle: Notify::new(),
            cut: watch::Sender::new(false),
        }
    }
}

impl Connections {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard {
            connections: Arc::clone(self),
        }
    }

    /// Resets every open connection (both of its sockets) and every one accepted later.
    pub fn cut_all(&self) {
        self.cut.send_replace(true);
    }

    /// Completes once [`Connections::cut_all`] was called.
    pub fn cut(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut cut = self.cut.subscribe();
        async move {
            // An error means the sender is gone: the relay is exiting anyway.
            let _ = cut.wait_for(|cut| *cut).await;
        }
    }

    /// Waits until no connection is open.
    pub async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.open() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Counts one open connection while it lives.
#[derive(Debug)]
pub struct ConnectionGuard {
    connections: Arc<Connections>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.connections.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.connections.idle.notify_waiters();
        }
    }
}

struct Running {
    /// As configured: a reload that keeps it keeps the sockets.
    listen: SocketAddr,
    /// As bound (the port the kernel chose, where `listen` has port 0).
    bound: SocketAddr,
    state: Arc<RwLock<Arc<ListenerState>>>,
    accept: Vec<JoinHandle<()>>,
    health_stop: watch::Sender<bool>,
}

/// The relay's listeners and what they share.
pub struct Server {
    running: HashMap<String, Running>,
    registry: Arc<Registry>,
    connections: Arc<Connections>,
    workers: usize,
    metrics_task: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds every listener (and the metrics endpoint) and starts serving.
    pub async fn start(settings: &Config) -> Result<Server, ServerError> {
        let mut server = Server {
            running: HashMap::new(),
            registry: Arc::new(Registry::default()),
            connections: Arc::new(Connections::default()),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            metrics_task: None,
        };
        if let Some(addr) = settings.metrics {
            let metrics_error = |source| ServerError::Metrics { addr, source };
            let listener = TcpListener::bind(addr).await.map_err(metrics_error)?;
            let bound = listener.local_addr().map_err(metrics_error)?;
            let registry = Arc::clone(&server.registry);
            server.metrics_task = Some(tokio::spawn(metrics_endpoint::serve(listener, registry)));
            tracing::info!(address = %bound, "metrics endpoint listening");
        }
        for listener in &settings.listeners {
            server.add(listener)?;
        }
        Ok(server)
    }

    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Each listener's name and bound address.
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        let mut all: Vec<_> = self
            .running
            .iter()
            .map(|(name, running)| (name.clone(), running.bound))
            .collect();
        all.sort();
        all
    }

    /// Applies a new configuration: changed listeners get the new settings for their next
    /// connections, new ones are bound, removed ones stop accepting. Open connections go on
    /// untouched. A listener that appears on the address of one that goes (a rename, or two
    /// listeners swapping addresses) takes over its sockets and accept loops, so no connection
    /// queued on them is lost. A listener that cannot be bound is reported and skipped; the
    /// rest applies.
    pub fn reload(&mut self, settings: &Config) -> Vec<ServerError> {
        let mut errors = Vec::new();
        let names: Vec<&str> = settings.listeners.iter().map(|l| l.name.as_str()).collect();
        // Listeners that go away or move, by the address they leave: still accepting until a
        // new listener takes their sockets or the reload stops them.
        let mut leaving: HashMap<SocketAddr, (String, Running)> = HashMap::new();
        let moving: Vec<String> = self
            .running
            .iter()
            .filter(|(name, running)| {
                !settings
                    .listeners
                    .iter()
                    .any(|l| &l.name == *name && l.listen == running.listen)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in moving {
            if let Some(running) = self.running.remove(&name) {
                leaving.insert(running.listen, (name, running));
            }
        }
        self.registry.retain(|n| names.contains(&n));
        for listener in &settings.listeners {
            if self.running.contains_key(&listener.name) {
                self.update(listener);
            } else if let Some((old_name, running)) = leaving.remove(&listener.listen) {
                tracing::info!(
                    listener = %listener.name, was = %old_name, address = %running.bound,
                    "listener renamed: its sockets are kept"
                );
                self.running.insert(listener.name.clone(), running);
                self.update(listener);
            } else if let Err(e) = self.add(listener) {
                errors.push(e);
            }
        }
        for (_, (name, running)) in leaving {
            tracing::info!(listener = %name, "listener removed: no longer accepting");
            running.stop();
        }
        errors
    }

    /// Stops accepting everywhere; open connections go on.
    pub fn stop_accepting(&mut self) {
        for (_, running) in self.running.drain() {
            running.stop();
        }
    }

    fn add(&mut self, settings: &ListenerConfig) -> Result<(), ServerError> {
        let pool = new_pool(settings);
        let metrics = Arc::new(ListenerMetrics::default());
        let limits = Arc::new(Limits::new(settings.max_connections, settings.max_per_ip));
        let state = Arc::new(RwLock::new(Arc::new(ListenerState::new(
            settings.clone(),
            Arc::clone(&pool),
            limits,
            Arc::clone(&metrics),
        ))));
        let options = ClientOptions::of(settings);
        let (sockets, bound) =
            bind_reuseport(settings.listen, self.workers, options).map_err(|source| {
                ServerError::Bind {
                    name: settings.name.clone(),
                    addr: settings.listen,
                    source,
                }
            })?;
        let accept = sockets
            .into_iter()
            .map(|socket| {
                tokio::spawn(accept_loop(
                    socket,
                    Arc::clone(&state),
                    Arc::clone(&self.connections),
                    options,
                ))
            })
            .collect();
        let health_stop = spawn_health(settings, &pool);
        self.registry
            .set_listener(&settings.name, bound, metrics, pool);
        tracing::info!(
            listener = %settings.name, address = %bound,
            upstreams = settings.upstreams.len(), "listening"
        );
        self.running.insert(
            settings.name.clone(),
            Running {
                listen: settings.listen,
                bound,
                state,
                accept,
                health_stop,
            },
        );
        Ok(())
    }

    /// New settings for a listener that keeps its address: counters and open-connection
    /// counts carry on; the upstream pool (and its health) is kept if the upstreams are the
    /// same.
    fn update(&mut self, settings: &ListenerConfig) {
        let Some(running) = self.running.get_mut(&settings.name) else {
            return;
        };
        let old = running
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let same_upstreams = old.settings.upstreams == settings.upstreams
            && old.settings.balance == settings.balance
            && old.settings.health == settings.health
            && old.settings.congestion == settings.congestion;
        let pool = if same_upstreams {
            // The warm pools resize in place (a smaller one closes its extra connections).
            for upstream in old.pool.upstreams() {
                upstream
                    .warm
                    .configure(settings.warm, settings.warm_max_idle);
            }
            Arc::clone(&old.pool)
        } else {
            let pool = new_pool(settings);
            let health_stop = spawn_health(settings, &pool);
            let _ = std::mem::replace(&mut running.health_stop, health_stop).send(true);
            pool
        };
        old.limits
            .set(settings.max_connections, settings.max_per_ip);
        let state = Arc::new(ListenerState::new(
            settings.clone(),
            Arc::clone(&pool),
            Arc::clone(&old.limits),
            Arc::clone(&old.metrics),
        ));
        *running.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        self.registry.set_listener(
            &settings.name,
            running.bound,
            Arc::clone(&old.metrics),
            pool,
        );
        tracing::info!(listener = %settings.name, address = %running.bound, "listener reloaded");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_accepting();
        if let Some(task) = self.metrics_task.take() {
            task.abort();
        }
    }
}

impl Running {
    fn stop(self) {
        for task in self.accept {
            // Aborting drops the listening sockets: the port closes at once.
            task.abort();
        }
        let _ = self.health_stop.send(true);
    }
}

/// Starts the health checks of `pool` and the refill of its warm connections; sending `true`
/// (or dropping the sender) stops both, and the warm connections are closed.
fn spawn_health(settings: &ListenerConfig, pool: &Arc<Pool>) -> watch::Sender<bool> {
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(health::run(
        settings.name.clone(),
        Arc::clone(pool),
        settings.health,
        settings.proxy_protocol,
        stop_rx.clone(),
    ));
    let timeout = settings.connect_timeout;
    tokio::spawn(crate::upstream::keep_warm(
        Arc::clone(pool),
        stop_rx,
        move |upstream: Arc<Upstream>| async move { upstream.connect(timeout).await },
    ));
    stop
}

fn new_pool(settings: &ListenerConfig) -> Arc<Pool> {
    let congestion = usable_congestion(&settings.name, settings.congestion.as_deref());
    let upstreams = settings
        .upstreams
        .iter()
        .map(|u| {
            let upstream = Upstream::new(u.addr, u.backup).with_congestion(congestion.clone());
            upstream
                .warm
                .configure(settings.warm, settings.warm_max_idle);
            Arc::new(upstream)
        })
        .collect();
    Arc::new(Pool::new(upstreams, settings.balance))
}

/// `algorithm` if this kernel lets a socket use it (tried on a socket that is never
/// connected); otherwise `None`, with one line saying the kernel's default is used.
fn usable_congestion(listener: &str, algorithm: Option<&str>) -> Option<String> {
    let algorithm = algorithm?;
    let tried = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .and_then(|socket| socket.set_tcp_congestion(algorithm.as_bytes()));
    match tried {
        Ok(()) => {
            tracing::info!(
                listener,
                congestion = algorithm,
                "congestion control towards the upstreams"
            );
            Some(algorithm.to_owned())
        }
        Err(e) => {
            let available =
                std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                    .unwrap_or_default();
            tracing::warn!(
                listener, congestion = algorithm, error = %e, available = available.trim(),
                "this kernel does not offer the congestion control asked for; the upstream connections use the kernel's default"
            );
            None
        }
    }
}

/// `count` listening sockets, all with `SO_REUSEPORT`, and the address they share (with port
/// 0, the port the kernel chose for the first: the others bind that one).
///
/// `SO_REUSEPORT` would also let this relay join a port another process holds with it (a second
/// relay started by mistake, which would then take a share of the connections): a bind without
/// it first proves the port free, and the group binds right after.
fn bind_reuseport(
    addr: SocketAddr,
    count: usize,
    options: ClientOptions,
) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    if addr.port() != 0 {
        let probe = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        probe.set_reuse_address(true)?;
        if let Err(e) = probe.bind(&addr.into()) {
            return Err(if e.kind() == io::ErrorKind::AddrInUse {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "the address is in use by another process (ferry-relay shares a port only among its own sockets)",
                )
            } else {
                e
            });
        }
    }
    let first = bind_one(addr, options)?;
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(bound, options)?);
    }
    Ok((sockets, bound))
}

/// A listening socket whose accepted sockets inherit `options` (set before `listen`, so no
/// connection is accepted without them).
fn bind_one(addr: SocketAddr, options: ClientOptions) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    options.apply(&socket)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// Accepts until aborted. Errors never stop it: resource exhaustion (EMFILE, ENFILE, ENOBUFS,
/// ENOMEM) backs off briefly instead of spinning on a listener that stays readable.
async fn accept_loop(
    listener: TcpListener,
    state: Arc<RwLock<Arc<ListenerState>>>,
    connections: Arc<Connections>,
    inherited: ClientOptions,
) {
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let state = state.read().unwrap_or_else(|e| e.into_inner()).clone();
                let options = ClientOptions::of(&state.settings);
                if options != inherited {
                    // A reload changed them since the bind. Failures only cost latency.
                    let _ = options.apply(&socket2::SockRef::from(&stream));
                }
                // Refused here, before a task exists or a byte is waited for.
                let Some(admitted) = connection::admit(stream, peer, &state) else {
                    continue;
                };
                let guard = connections.enter();
                let cut = connections.cut();
                tokio::spawn(async move {
                    connection::handle(admitted, state, cut).await;
                    drop(guard);
                });
            }
            Err(e) => {
                let state = state.read().unwrap_or_else(|e| e.into_inner()).clone();
                state.metrics.accept_errors.fetch_add(1, Ordering::Relaxed);
                let exhausted = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                let now = tokio::time::Instant::now();
                if last_warning.is_none_or(|t| now - t > Duration::from_secs(5)) {
                    last_warning = Some(now);
                    tracing::warn!(listener = %state.settings.name, error = %e, "accept failed");
                }
                if exhausted {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What spares each connection its `setsockopt` calls: accepted sockets inherit the
    /// listening socket's TCP_NODELAY and keep-alive (time included).
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay_and_keepalive() {
        for options in [
            ClientOptions {
                nodelay: true,
                keepalive: Some(Duration::from_secs(77)),
            },
            ClientOptions {
                nodelay: false,
                keepalive: None,
            },
        ] {
            let (sockets, bound) =
                bind_reuseport(SocketAddr::from(([127, 0, 0, 1], 0)), 1, options).unwrap();
            let _client = std::net::TcpStream::connect(bound).unwrap();
            let (accepted, _) = sockets[0].accept().await.unwrap();
            let socket = socket2::SockRef::from(&accepted);
            assert_eq!(socket.nodelay().unwrap(), options.nodelay, "{options:?}");
            assert_eq!(
                socket.keepalive().unwrap(),
                options.keepalive.is_some(),
                "{options:?}"
            );
            if let Some(idle) = options.keepalive {
                assert_eq!(socket.keepalive_time().unwrap(), idle);
            }
        }
    }

    #[tokio::test]
    async fn every_socket_of_a_listener_shares_the_port_the_kernel_chose() {
        let options = ClientOptions {
            nodelay: true,
            keepalive: None,
        };
        let (sockets, bound) =
            bind_reuseport(SocketAddr::from(([127, 0, 0, 1], 0)), 4, options).unwrap();
        assert_ne!(bound.port(), 0);
        assert_eq!(sockets.len(), 4);
        for socket in &sockets {
            assert_eq!(socket.local_addr().unwrap(), bound);
        }
    }
}
