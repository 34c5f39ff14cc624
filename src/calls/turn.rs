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
//! - every message, whatever it came over, is screened first ([`handle_message`]):
//!   permissions, channel binds and Send indications towards a peer the [`PeerFilter`] refuses
//!   are answered 403 (or dropped), failed credentials get a proper 401, and an Allocate past
//!   the user's or the server's quota gets 486;
//! - relay sockets are [`FilteredConn`]s that refuse to send to, and drop packets from, refused
//!   peers, so nothing reaches a private address even if a check above were bypassed.

mod stream;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS};
use stun::error_code::{CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, CODE_UNAUTHORIZED, ErrorCode, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION,
    METHOD_SEND, Message, MessageType, Setter,
};
use stun::textattrs::{Nonce, Realm, Username};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turn::allocation::allocation_manager::{Manager, ManagerConfig};
use turn::relay::RelayAddressGenerator;
use turn::server::request::Request;
use webrtc_util::Conn;

use super::credentials::{self, RestAuth};
use super::filter::PeerFilter;
use crate::config;

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

/// Screens one message (a datagram, or one framed off a TCP or TLS stream) from `src` and hands
/// it to the crate with `manager`; answers and relayed data go back through `conn`.
async fn handle_message(shared: &Shared, manager: &Arc<Manager>, conn: &Arc<dyn Conn + Send + Sync>, src: SocketAddr, data: &[u8]) {
    let allocate = match screen(shared, data, src).await {
        Screened::Pass { allocate } => allocate,
        Screened::Reply(bytes) => {
            let _ = conn.send_to(&bytes, src).await;
            return;
        }
        Screened::Drop => return,
    };
    // Allocations are rare: counting them under one lock makes the quota exact.
    let _held = match &allocate {
        Some(username) => {
            let held = shared.allocating.lock().await;
            if let Some(code) = over_quota(shared, username).await {
                shared.stats.quota_refusals.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = Message::decode_from(data).and_then(|m| error_response(&m, code, "Allocation quota reached", None)) {
                    let _ = conn.send_to(&reply, src).await;
                }
                return;
            }
            Some(held)
        }
        None => None,
    };
    let mut request = Request {
        conn: conn.clone(),
        src_addr: src,
        buff: data.to_vec(),
        allocation_manager: manager.clone(),
        nonces: shared.nonces.clone(),
        auth_handler: shared.auth.clone(),
        realm: REALM.into(),
        channel_bind_timeout: Duration::from_secs(600),
    };
    if let Err(e) = request.handle_request().await {
        tracing::trace!(%src, error = %e, "TURN request not handled");
    }
}

/// Allocations open now (all, and those of `user` when given).
async fn count_allocations(managers: &[Arc<Manager>], user: Option<u64>) -> (usize, usize) {
    let (mut all, mut mine) = (0, 0);
    for m in managers {
        for info in m.get_allocations_info(None).await.values() {
            all += 1;
            if user.is_some() && credentials::parse_username(&info.username).map(|(_, u)| u.0) == user {
                mine += 1;
            }
        }
    }
    (all, mine)
}

async fn over_quota(shared: &Shared, username: &str) -> Option<ErrorCode> {
    let user = credentials::parse_username(username).map(|(_, u)| u.0);
    let (all, mine) = count_allocations(&shared.managers, user).await;
    (mine >= shared.user_quota || all >= shared.total_quota).then_some(CODE_ALLOC_QUOTA_REACHED)
}

/// What to do with a datagram before the crate sees it.
enum Screened {
    /// Hand it to the crate; `allocate` is the username of an authenticated Allocate.
    Pass {
        allocate: Option<String>,
    },
    Reply(Vec<u8>),
    Drop,
}

trait DecodeFrom: Sized {
    fn decode_from(data: &[u8]) -> Option<Self>;
}

impl DecodeFrom for Message {
    fn decode_from(data: &[u8]) -> Option<Message> {
        let mut m = Message { raw: data.to_vec(), ..Message::default() };
        m.decode().ok().map(|()| m)
    }
}

async fn screen(shared: &Shared, data: &[u8], src: SocketAddr) -> Screened {
    // ChannelData (the bulk of relayed media) goes to channels that were screened when bound.
    if data.first().is_some_and(|b| (0x40..=0x7f).contains(b)) {
        return Screened::Pass { allocate: None };
    }
    let Some(m) = Message::decode_from(data) else { return Screened::Drop };
    let (class, method) = (m.typ.class, m.typ.method);
    let peer_carrying = method == METHOD_CREATE_PERMISSION || method == METHOD_CHANNEL_BIND || method == METHOD_SEND;
    if peer_carrying && (class == CLASS_REQUEST || class == CLASS_INDICATION) {
        let peers = xor_peer_addresses(&m);
        if peers.iter().any(|p| !p.is_some_and(|p| shared.filter.allows(p))) {
            shared.stats.refused_peers.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, ?peers, "TURN peer refused");
            if class == CLASS_INDICATION {
                return Screened::Drop;
            }
            return error_response(&m, CODE_FORBIDDEN, "Peer address not allowed", None).map_or(Screened::Drop, Screened::Reply);
        }
    }
    if class == CLASS_REQUEST && method != METHOD_BINDING && m.contains(ATTR_MESSAGE_INTEGRITY) {
        let username = text_attr(&m, ATTR_USERNAME);
        let realm = text_attr(&m, ATTR_REALM);
        let verified = match (&username, &realm) {
            (Some(u), Some(r)) => credentials::key_for(&shared.auth.secret, REALM, u, r, credentials::now_secs())
                .ok()
                .is_some_and(|key| MessageIntegrity(key).check(&mut m.clone()).is_ok()),
            _ => false,
        };
        if !verified {
            shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, username = username.as_deref().unwrap_or(""), "TURN credentials refused");
            let nonce = new_nonce(&shared.nonces).await;
            return error_response(&m, CODE_UNAUTHORIZED, "Unauthorized", Some(nonce)).map_or(Screened::Drop, Screened::Reply);
        }
        if method == METHOD_ALLOCATE {
            return Screened::Pass { allocate: username };
        }
    }
    Screened::Pass { allocate: None }
}

fn text_attr(m: &Message, attr: stun::attributes::AttrType) -> Option<String> {
    let mut a = Username::new(attr, String::new());
    stun::message::Getter::get_from(&mut a, m).ok().map(|()| a.text)
}

async fn new_nonce(nonces: &Nonces) -> String {
    let mut raw = [0u8; 16];
    rand::fill(&mut raw);
    let nonce = hex::encode(raw);
    nonces.lock().await.insert(nonce.clone(), Instant::now());
    nonce
}

/// An error response to `m` with `code`, and a fresh nonce and the realm for a 401.
fn error_response(m: &Message, code: ErrorCode, reason: &str, nonce: Option<String>) -> Option<Vec<u8>> {
    let mut attrs: Vec<Box<dyn Setter>> = vec![
        Box::new(m.transaction_id),
        Box::new(MessageType::new(m.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute { code, reason: reason.as_bytes().to_vec() }),
    ];
    if let Some(n) = nonce {
        attrs.push(Box::new(Nonce::new(stun::attributes::ATTR_NONCE, n)));
        attrs.push(Box::new(Realm::new(ATTR_REALM, REALM.into())));
    }
    let mut out = Message::new();
    out.build(&attrs).ok()?;
    Some(out.raw)
}

/// Every XOR-PEER-ADDRESS of a message, decoded (`None` for one that does not decode). The
/// crate reads only the first; all of them are checked here.
pub fn xor_peer_addresses(m: &Message) -> Vec<Option<SocketAddr>> {
    m.attributes.0.iter().filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS).map(|a| decode_xor_address(&a.value, &m.transaction_id.0)).collect()
}

const MAGIC_COOKIE: u32 = 0x2112_A442;

/// RFC 5389 section 15.2: port and address are XOR-ed with the magic cookie (and, for IPv6,
/// the transaction id).
pub fn decode_xor_address(v: &[u8], transaction_id: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (v[1], v.len()) {
        (1, 8) => {
            let ip: [u8; 4] = std::array::from_fn(|i| v[4 + i] ^ cookie[i]);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        (2, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&cookie);
            key[4..].copy_from_slice(transaction_id);
            let ip: [u8; 16] = std::array::from_fn(|i| v[4 + i] ^ key[i]);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    }
}

/// Opens relay sockets in the configured port range, wrapped in [`FilteredConn`].
struct Relays {
    bind_ip: IpAddr,
    relay_ip: IpAddr,
    min: u16,
    max: u16,
    filter: Arc<PeerFilter>,
    stats: Arc<TurnStats>,
}

struct RelayGen(Arc<Relays>);

#[async_trait]
impl RelayAddressGenerator for RelayGen {
    fn validate(&self) -> Result<(), turn::Error> {
        if self.0.min == 0 || self.0.max < self.0.min { Err(turn::Error::ErrMaxPortLessThanMinPort) } else { Ok(()) }
    }

    async fn allocate_conn(&self, use_ipv4: bool, requested_port: u16) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let r = &self.0;
        if use_ipv4 != r.bind_ip.is_ipv4() {
            return Err(turn::Error::Other("this server relays only one address family".into()));
        }
        let span = u32::from(r.max - r.min) + 1;
        for attempt in 0..64u32 {
            let port = if requested_port != 0 && attempt == 0 {
                requested_port
            } else {
                let pick: u32 = rand::random();
                r.min + u16::try_from(pick % span).unwrap_or(0)
            };
            let Ok(socket) = bind_udp(SocketAddr::new(r.bind_ip, port), false) else { continue };
            let local = socket.local_addr().map_err(|e| turn::Error::Other(e.to_string()))?;
            let conn = FilteredConn { socket, filter: r.filter.clone(), stats: r.stats.clone(), closed: CancellationToken::new() };
            r.stats.allocations.fetch_add(1, Ordering::Relaxed);
            return Ok((Arc::new(conn), SocketAddr::new(r.relay_ip, local.port())));
        }
        Err(turn::Error::ErrMaxRetriesExceeded)
    }
}

/// A relay socket that only talks to peers the filter allows.
pub struct FilteredConn {
    socket: UdpSocket,
    filter: Arc<PeerFilter>,
    stats: Arc<TurnStats>,
    closed: CancellationToken,
}

impl Drop for FilteredConn {
    fn drop(&mut self) {
        self.stats.allocations.fetch_sub(1, Ordering::Relaxed);
    }
}

fn refused(peer: SocketAddr) -> webrtc_util::Error {
    webrtc_util::Error::Other(format!("relaying to {peer} is not allowed"))
}

#[async_trait]
impl Conn for FilteredConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        if !self.filter.allows(addr) {
            return Err(refused(addr));
        }
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = tokio::select! {
                () = self.closed.cancelled() => return Err(webrtc_util::Error::Other("relay closed".into())),
                r = self.socket.recv_from(buf) => r?,
            };
            if self.filter.allows(from) {
                self.stats.bytes_from_peers.fetch_add(n as u64, Ordering::Relaxed);
                return Ok((n, from));
            }
            self.stats.filtered_packets.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("relay sockets send to a peer address".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.filter.allows(target) {
            self.stats.filtered_packets.fetch_add(1, Ordering::Relaxed);
            return Err(refused(target));
        }
        let n = self.socket.send_to(buf, target).await?;
        self.stats.bytes_to_peers.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.closed.cancel();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::agent::TransactionId;
    use stun::message::BINDING_REQUEST;
    use stun::xoraddr::XorMappedAddress;

    /// Our decoder agrees with the stun crate's encoder for both families.
    #[test]
    fn xor_peer_addresses_decode_every_attribute() {
        let tid = TransactionId::new();
        let mut m = Message::new();
        let peers: [SocketAddr; 3] =
            ["8.8.8.8:3000".parse().unwrap(), "[2606:4700::1111]:443".parse().unwrap(), "127.0.0.1:9".parse().unwrap()];
        let mut setters: Vec<Box<dyn Setter>> = vec![Box::new(tid), Box::new(BINDING_REQUEST)];
        for p in peers {
            setters.push(Box::new(PeerAddr(XorMappedAddress { ip: p.ip(), port: p.port() })));
        }
        m.build(&setters).unwrap();
        let decoded = Message::decode_from(&m.raw).unwrap();
        assert_eq!(xor_peer_addresses(&decoded), peers.iter().map(|p| Some(*p)).collect::<Vec<_>>());
        assert_eq!(decode_xor_address(&[0, 1, 0], &[0; 12]), None);
        assert_eq!(decode_xor_address(&[0, 3, 0, 0, 1, 2, 3, 4], &[0; 12]), None);
    }

    /// XOR-MAPPED-ADDRESS written under the XOR-PEER-ADDRESS type (the same encoding).
    struct PeerAddr(XorMappedAddress);

    impl Setter for PeerAddr {
        fn add_to(&self, m: &mut Message) -> Result<(), stun::Error> {
            self.0.add_to_as(m, ATTR_XOR_PEER_ADDRESS)
        }
    }
}
