//! The embedded TURN/STUN server: webrtc-rs `turn` 0.17 for the protocol, with Chinwag's own
//! sockets and read loops around it.
//!
//! The crate's `Server` reads one UDP socket in one task and has no peer filter, no quota and
//! no TCP or TLS, so this module runs the crate's per-message `Request` handler from its own
//! loops instead:
//! - several UDP sockets share the port (`SO_REUSEPORT`, one read task each, big receive
//!   buffers), because one task copying every packet is what lost packets under load;
//! - [`stream`] serves TURN over TCP (same port) and over TLS: one task per connection cuts
//!   the byte stream into STUN and `ChannelData` messages and hands each to the same handler,
//!   with a per-connection `Conn` that writes the answers and the relayed data back to it;
//! - every message, whatever it came over, is screened first ([`screen::handle_message`]):
//!   permissions, channel binds and Send indications towards a peer the [`PeerFilter`] refuses
//!   are answered 403 (or dropped), failed credentials get a proper 401, and an Allocate past
//!   the user's or the server's quota gets 486;
//! - relay sockets are [`FilteredConn`]s (in [`relay`]) that refuse to send to, and drop
//!   packets from, refused peers, so nothing reaches a private address even if a check above were bypassed.

mod refusals;
mod relay;
mod screen;
mod stream;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use stun::message::Message;
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turn::allocation::allocation_manager::{Manager, ManagerConfig};
use webrtc_util::Conn;

use super::credentials::RestAuth;
use super::filter::PeerFilter;
use crate::config;

use self::refusals::RefusalLog;
use self::relay::{RelayGen, Relays};
use self::screen::{DecodeFrom, MAGIC_COOKIE, count_allocations, handle_message};

pub use self::relay::FilteredConn;
pub use self::screen::{decode_xor_address, xor_peer_addresses};
pub use self::stream::tls_acceptor;
pub use tokio_rustls::TlsAcceptor;

/// The realm in every 401 and in the credentials' key.
pub const REALM: &str = "chinwag";
/// Largest datagram read; TURN over UDP stays below the path MTU.
const READ_BUF: usize = 2048;
/// Receive and send buffer asked of the kernel per socket (it may grant less).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// Nonces older than this are stale (the crate's own lifetime).
const NONCE_LIFETIME: Duration = Duration::from_secs(3600);
/// Past this many outstanding nonces (a flood of unauthenticated requests), all are forgotten;
/// clients just retry with a fresh one.
const MAX_NONCES: usize = 200_000;

type Nonces = Arc<tokio::sync::Mutex<HashMap<String, Instant>>>;

/// Counters for logs, tests and metrics.
#[derive(Debug, Default)]
pub struct TurnStats {
    /// Requests and indications refused because of their peer address.
    pub refused_peers: AtomicU64,
    /// Packets a relay socket dropped or refused to send because of the peer.
    pub filtered_packets: AtomicU64,
    /// Allocations refused by a quota.
    pub quota_refusals: AtomicU64,
    /// Requests refused for bad or expired credentials.
    pub auth_failures: AtomicU64,
    /// Relay sockets open now, one per allocation.
    pub allocations: AtomicU64,
    /// Bytes relayed from peers to clients, and from clients to peers.
    pub bytes_from_peers: AtomicU64,
    pub bytes_to_peers: AtomicU64,
    /// TURN over TCP and TLS connections open now.
    pub stream_connections: AtomicU64,
    /// TCP and TLS connections refused at once because a connection cap was reached.
    pub stream_refused: AtomicU64,
}

/// What the rest of Chinwag needs to know about the running TURN server.
#[derive(Clone, Debug)]
pub struct TurnInfo {
    /// Where the server listens (the real port when `turn.listen` asked for port 0), on UDP
    /// and, when `tcp` is set, on TCP too.
    pub local_addr: SocketAddr,
    pub tcp: bool,
    /// Where TURN over TLS listens, when it is configured.
    pub tls_addr: Option<SocketAddr>,
    /// The address relays are advertised on.
    pub relay_ip: IpAddr,
    pub secret: String,
    pub stats: Arc<TurnStats>,
}

/// A running TURN server; [`TurnServer::stop`] ends it.
pub struct TurnServer {
    pub info: TurnInfo,
    /// Every allocation manager: one per UDP socket, then the one for TCP and TLS.
    managers: Arc<Vec<Arc<Manager>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// State the read loops share.
struct Shared {
    auth: Arc<RestAuth>,
    nonces: Nonces,
    filter: Arc<PeerFilter>,
    /// All of them, for the quota counts.
    managers: Arc<Vec<Arc<Manager>>>,
    user_quota: usize,
    total_quota: usize,
    /// Held from the quota count to the end of an Allocate, so that two at once cannot both
    /// squeeze under the quota.
    allocating: tokio::sync::Mutex<()>,
    stats: Arc<TurnStats>,
    /// Rate-limited log lines for refused peers.
    refusals: RefusalLog,
}

impl TurnServer {
    /// Binds the TURN ports and starts serving. `http` is the chat server's own address, which
    /// relays may never reach; `tls` is what [`tls_acceptor`] made of the settings.
    pub async fn start(cfg: &config::Turn, secret: String, http: SocketAddr, tls: Option<TlsAcceptor>) -> anyhow::Result<TurnServer> {
        let n = if cfg.sockets == 0 { std::thread::available_parallelism().map_or(1, std::num::NonZero::get) } else { cfg.sockets };
        let (first, tcp) = bind_udp_and_tcp(cfg.listen, n > 1, cfg.tcp)?;
        let local_addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..n {
            sockets.push(bind_udp(local_addr, true).map_err(|e| anyhow::anyhow!("cannot open another TURN socket on {local_addr}: {e}"))?);
        }
        let tls_listener = match (cfg.tls_listen, tls) {
            (Some(addr), Some(acceptor)) => {
                let l = bind_tcp(addr).map_err(|e| anyhow::anyhow!("cannot listen for TURN over TLS on {addr}: {e}"))?;
                Some((l, acceptor))
            }
            _ => None,
        };
        let tls_addr = tls_listener.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        if tls_addr.is_some() && cfg.public_host.is_none() {
            tracing::warn!(
                "turn.public_host is not set: turns: URLs carry the host of each request, which must match the TURN certificate"
            );
        }
        let relay_ip = advertised_ip(cfg, local_addr.ip());
        let own = [Some(local_addr), tls_addr, Some(http)].into_iter().flatten().collect();
        let filter = Arc::new(PeerFilter::new(&cfg.allow_peers, own).map_err(anyhow::Error::msg)?);
        if let Some(warning) = refused_relay_ip(relay_ip, cfg.public_ip.is_some(), &filter, cfg.relay_min_port) {
            tracing::warn!(%relay_ip, "{warning}");
        }
        let stats = Arc::new(TurnStats::default());
        let relays = Arc::new(Relays {
            bind_ip: local_addr.ip(),
            relay_ip,
            min: cfg.relay_min_port,
            max: cfg.relay_max_port,
            filter: filter.clone(),
            stats: stats.clone(),
        });
        let new_manager =
            || Arc::new(Manager::new(ManagerConfig { relay_addr_generator: Box::new(RelayGen(relays.clone())), alloc_close_notify: None }));
        let udp_managers: Vec<Arc<Manager>> = (0..n).map(|_| new_manager()).collect();
        // TCP and TLS get their own manager: the crate keys allocations by a five-tuple that
        // always says UDP, so a stream client could otherwise collide with a UDP one that has
        // the same address and port.
        let stream_manager = new_manager();
        let managers: Arc<Vec<Arc<Manager>>> = Arc::new(udp_managers.iter().cloned().chain([stream_manager.clone()]).collect());
        let shared = Arc::new(Shared {
            auth: Arc::new(RestAuth { secret: secret.clone(), realm: REALM.into() }),
            nonces: Arc::default(),
            filter,
            managers: managers.clone(),
            user_quota: cfg.user_quota,
            total_quota: cfg.total_quota,
            allocating: tokio::sync::Mutex::new(()),
            stats: stats.clone(),
            refusals: RefusalLog::default(),
        });
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        for (socket, manager) in sockets.into_iter().zip(udp_managers) {
            tasks.spawn(read_loop(Arc::new(socket), manager, shared.clone(), shutdown.clone()));
        }
        tasks.spawn(sweep_nonces(shared.nonces.clone(), shutdown.clone()));
        let streams = stream::Streams::new(cfg, shared, stream_manager, shutdown.clone(), tasks.clone());
        let tcp_on = tcp.is_some();
        if let Some(l) = tcp {
            tasks.spawn(streams.clone().accept_loop(l, None));
        }
        if let Some((l, acceptor)) = tls_listener {
            tasks.spawn(streams.accept_loop(l, Some(acceptor)));
        }
        tracing::info!(addr = %local_addr, tcp = tcp_on, tls = ?tls_addr, %relay_ip, sockets = n, ports = %format!("{}-{}", cfg.relay_min_port, cfg.relay_max_port), "TURN/STUN server is listening");
        Ok(TurnServer { info: TurnInfo { local_addr, tcp: tcp_on, tls_addr, relay_ip, secret, stats }, managers, shutdown, tasks })
    }

    /// Stops reading, closes every connection and allocation, and waits for the tasks to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        for m in self.managers.iter() {
            let _ = m.close().await;
        }
    }

    /// Allocations open now, over all sockets and connections.
    pub async fn allocations(&self) -> usize {
        count_allocations(&self.managers, None).await.0
    }
}

/// The first UDP socket and, when `tcp`, a TCP listener on the same port. With port 0 the
/// kernel picks the UDP port, which may be taken on TCP: then both are tried again.
fn bind_udp_and_tcp(addr: SocketAddr, reuse_port: bool, tcp: bool) -> anyhow::Result<(UdpSocket, Option<TcpListener>)> {
    // Many tries: under a load test most of the ephemeral range can be in use on TCP.
    let mut tries = if addr.port() == 0 { 64 } else { 1 };
    loop {
        let udp = bind_udp(addr, reuse_port).map_err(|e| anyhow::anyhow!("cannot listen for TURN on UDP {addr}: {e}"))?;
        if !tcp {
            return Ok((udp, None));
        }
        let at = udp.local_addr()?;
        match bind_tcp(at) {
            Ok(l) => return Ok((udp, Some(l))),
            Err(e) if tries > 1 && addr.port() == 0 => {
                tracing::debug!(%at, error = %e, "TCP port taken; picking another TURN port");
                tries -= 1;
            }
            Err(e) => return Err(anyhow::anyhow!("cannot listen for TURN on TCP {at}: {e} (set turn.tcp = false to serve UDP only)")),
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    // A restarted server can take its port back while old connections sit in TIME_WAIT.
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// A UDP socket on `addr` with big buffers, shareable with `SO_REUSEPORT`.
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    // Best effort: the kernel caps these at net.core.rmem_max / wmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// The address relays are given out on: `turn.public_ip`, else the listen address, else the
/// first non-loopback interface (with a warning, because behind a NAT that one is private).
fn advertised_ip(cfg: &config::Turn, listen: IpAddr) -> IpAddr {
    if let Some(ip) = cfg.public_ip {
        return ip;
    }
    if !listen.is_unspecified() {
        if !listen.is_loopback() {
            tracing::warn!(%listen, "turn.public_ip is not set: relays are advertised on the listen address; calls across NATs need the public address in turn.public_ip");
        }
        return listen;
    }
    let guess = webrtc_util::ifaces::ifaces()
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|i| i.addr.map(|a| a.ip()))
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    tracing::warn!(relay_ip = %guess, "turn.public_ip is not set: relays are advertised on this interface address; calls between people behind different NATs need turn.public_ip set to the server's public address");
    guess
}

/// A warning when relays are advertised on an address the relay itself refuses as a peer: then
/// two people who both go through the relay (relay-only calls, or two NATs that need it) cannot
/// reach each other's relay address, and their calls fail. `set`: it came from `turn.public_ip`.
fn refused_relay_ip(relay_ip: IpAddr, set: bool, filter: &PeerFilter, relay_port: u16) -> Option<String> {
    if filter.allows(SocketAddr::new(relay_ip, relay_port)) {
        return None;
    }
    let whence = if set { "turn.public_ip" } else { "the relay address (turn.public_ip is not set)" };
    Some(format!(
        "{whence} {relay_ip} is in a range the relay refuses as a peer: calls where both sides go through the relay will fail. \
         Set turn.public_ip to the server's public address, or, for a LAN install, open the range with turn.allow_peers"
    ))
}

/// Forgets stale nonces now and then (the crate only removes one when it is presented again).
async fn sweep_nonces(nonces: Nonces, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {
                let mut map = nonces.lock().await;
                let now = Instant::now();
                map.retain(|_, made| now.duration_since(*made) < NONCE_LIFETIME);
                if map.len() > MAX_NONCES {
                    map.clear();
                }
            }
        }
    }
}

async fn read_loop(socket: Arc<UdpSocket>, manager: Arc<Manager>, shared: Arc<Shared>, shutdown: CancellationToken) {
    let conn: Arc<dyn Conn + Send + Sync> = socket.clone();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let (n, src) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                // ICMP errors (a client went away) surface here on some systems: keep reading.
                Err(e) => {
                    tracing::debug!(error = %e, "TURN socket read failed");
                    continue;
                }
            },
        };
        handle_message(&shared, &manager, &conn, src, &buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_address_the_relay_refuses_is_warned_about() {
        let own = vec![SocketAddr::from(([0, 0, 0, 0], 3478))];
        let default = PeerFilter::new(&[], own.clone()).unwrap();
        let public: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(refused_relay_ip(public, true, &default, 49152), None, "a public address is fine");
        for private in ["10.0.0.5", "192.168.1.2", "127.0.0.1", "203.0.113.7", "fd00::1"] {
            let ip: IpAddr = private.parse().unwrap();
            let w = refused_relay_ip(ip, true, &default, 49152).unwrap_or_else(|| panic!("{private} is refused: a warning"));
            assert!(
                w.starts_with(&format!("turn.public_ip {ip} is in a range the relay refuses")) && w.contains("turn.allow_peers"),
                "{w}"
            );
        }
        let guessed = refused_relay_ip("10.0.0.5".parse().unwrap(), false, &default, 49152).unwrap();
        assert!(guessed.contains("turn.public_ip is not set"), "{guessed}");
        // A LAN install that opens its range is fine.
        let lan = PeerFilter::new(&["10.0.0.0/8".into()], own).unwrap();
        assert_eq!(refused_relay_ip("10.0.0.5".parse().unwrap(), true, &lan, 49152), None);
    }
}
