//! Group calls through a selective forwarding unit inside the binary (docs/protocol.md, "Group
//! calls through the SFU"): each participant sends its audio, camera (three simulcast layers)
//! and screen once to the server, which forwards them to the others.
//!
//! - [`Sfu`] (here): the handle the signalling side (`calls::Calls`) holds; it binds the one UDP
//!   media port (`calls.media_listen`) and talks to the loop through a bounded channel.
//! - [`engine`]: the loop that owns the socket and every session (str0m, sans-I/O, ICE-lite).
//! - [`peer`]: one participant's session and the server side of its offers and answers.
//! - [`layers`]: which simulcast layer each receiver gets; [`speakers`]: who speaks;
//!   [`clock`]: RTP times kept continuous across layer switches. All three pure.
//!
//! Who may take part is the signalling side's decision: the loop accepts offers only from the
//! (call, user, connection) it was told to admit, and drops a session the moment it is told the
//! person left. Media goes only to the address that completed ICE with that session's
//! credentials (str0m's rule).

pub mod clock;
pub mod engine;
pub mod layers;
pub mod peer;
pub mod speakers;
pub mod tcp;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use self::engine::Connected;
use self::engine::{Command, Engine, Limits};
use crate::config::Config;
use crate::hub::Hub;
use crate::ids::UserId;
use crate::outcome::Refusal;
use crate::protocol::{SfuSource, SfuVideo};

/// What each of a participant's mids carries, as its offer says.
pub type Sources = HashMap<String, SfuSource>;

/// Commands waiting for the loop; past this, offers are refused as busy.
const QUEUE: usize = 4096;
/// Receive and send buffer asked of the kernel for the media socket.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct SfuStats {
    /// Sessions open now.
    pub participants: AtomicU64,
    /// Frames written towards receivers.
    pub frames_forwarded: AtomicU64,
    /// Datagrams no session accepted (stray, late, or not ICE-checked).
    pub unmatched_datagrams: AtomicU64,
    /// Datagrams the socket could not take at once (dropped).
    pub dropped_sends: AtomicU64,
}

/// The running SFU.
pub struct Sfu {
    tx: mpsc::Sender<Command>,
    /// Where the media socket is bound (the real port when `calls.media_listen` asked for 0).
    pub local_addr: SocketAddr,
    /// The address given to clients as the only ICE candidate.
    pub candidate: SocketAddr,
    pub stats: Arc<SfuStats>,
}

impl Sfu {
    /// Binds `calls.media_listen` and starts the loop; the candidate is `turn.public_ip`, else
    /// the bound address, else (bound to all addresses) the address this host would use to
    /// reach the internet, found without sending a packet.
    /// `connected` hears of each session whose media connected.
    pub fn start(config: &Config, hub: Arc<Hub>, connected: mpsc::Sender<Connected>, shutdown: CancellationToken) -> anyhow::Result<Sfu> {
        let listen = config.calls.media_listen;
        let std_socket = bind(listen)?;
        let local_addr = std_socket.local_addr()?;
        let ip = config.turn.public_ip.or_else(|| (!listen.ip().is_unspecified()).then(|| listen.ip())).unwrap_or_else(|| {
            let guess = route_ip();
            tracing::warn!(
                "calls.media_listen is on all addresses and turn.public_ip is unset: group calls tell clients to reach {guess}; set turn.public_ip to the address clients reach this server at"
            );
            guess
        });
        let candidate = SocketAddr::new(ip, local_addr.port());
        let socket = tokio::net::UdpSocket::from_std(std_socket)?;
        let stats = Arc::new(SfuStats::default());
        let limits = Limits {
            max_participants: config.calls.sfu_max_participants,
            max_bps: config.calls.sfu_max_kbps.saturating_mul(1000),
            adapt: config.calls.sfu_adapt_to_bandwidth,
        };
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let mut engine = Engine::new(socket, candidate, hub, crypto, limits, stats.clone(), connected);
        let tcp = if config.calls.media_tcp {
            match bind_tcp(local_addr) {
                Ok(listener) => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(tcp::serve(listener, tx, shutdown.clone()));
                    engine.tcp_candidate = Some(candidate);
                    Some(rx)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "group calls: no ICE over TCP on the media port; clients that block UDP go through the TURN relay");
                    None
                }
            }
        } else {
            None
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(engine.run(rx, tcp, shutdown));
        tracing::info!(%local_addr, %candidate, "group calls: SFU media port open");
        Ok(Sfu { tx, local_addr, candidate, stats })
    }

    fn send(&self, cmd: Command) -> bool {
        match self.tx.try_send(cmd) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "the SFU is not keeping up; a command was dropped");
                false
            }
        }
    }

    pub fn admit(&self, call: &str, user: UserId, conn: u64) {
        self.send(Command::Admit { call: call.to_owned(), user, conn });
    }

    pub fn leave(&self, call: &str, user: UserId) {
        self.send(Command::Leave { call: call.to_owned(), user });
    }

    pub fn close(&self, call: &str) {
        self.send(Command::Close { call: call.to_owned() });
    }

    /// A participant's offer; the answer's SDP.
    pub async fn offer(&self, call: String, user: UserId, conn: u64, sdp: String, sources: Sources) -> Result<String, Refusal> {
        check_sources(&sources)?;
        let (reply, answer) = oneshot::channel();
        if !self.send(Command::Offer { call, user, conn, sdp, sources, reply }) {
            return Err(Refusal::TooMany("The server is busy; try again."));
        }
        answer.await.unwrap_or(Err(Refusal::NotFound("No such call.")))
    }

    pub fn answer(&self, call: String, user: UserId, conn: u64, sdp: String) {
        self.send(Command::Answer { call, user, conn, sdp });
    }

    pub fn view(&self, call: String, user: UserId, conn: u64, videos: Vec<SfuVideo>) {
        self.send(Command::View { call, user, conn, videos });
    }

    pub fn participants(&self) -> u64 {
        self.stats.participants.load(Ordering::Relaxed)
    }
}

/// One audio, one camera and one screen track at most per person.
pub fn check_sources(sources: &Sources) -> Result<(), Refusal> {
    let mut seen = Vec::new();
    for (mid, s) in sources {
        if mid.is_empty() || mid.len() > 16 || seen.contains(s) {
            return Err(Refusal::Invalid("Send at most one audio, one camera and one screen track, each with its mid.".into()));
        }
        seen.push(*s);
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel may grant less.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&addr.into()).map_err(|e| anyhow::anyhow!("cannot open the group-call media port {addr}: {e}"))?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn bind_tcp(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let std = std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot open TCP {addr}: {e}"))?;
    std.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

/// The address this host sends from towards the internet: a UDP socket `connect`ed to a
/// documentation address picks a route and sends nothing. Loopback when there is no route.
fn route_ip() -> IpAddr {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("203.0.113.1:9").and_then(|()| s.local_addr()))
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_track_per_source() {
        let ok: Sources = [("0".into(), SfuSource::Audio), ("1".into(), SfuSource::Camera), ("2".into(), SfuSource::Screen)].into();
        assert!(check_sources(&ok).is_ok());
        assert!(check_sources(&Sources::new()).is_ok());
        let two: Sources = [("0".into(), SfuSource::Camera), ("1".into(), SfuSource::Camera)].into();
        assert!(check_sources(&two).is_err());
        let long: Sources = [("x".repeat(17), SfuSource::Audio)].into();
        assert!(check_sources(&long).is_err());
    }
}
