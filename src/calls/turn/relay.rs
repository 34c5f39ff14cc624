//! Relay sockets: [`Relays`] opens them in the configured port range for the crate's
//! allocations, each a [`FilteredConn`] that refuses to send to, and drops packets from, peers
//! the [`PeerFilter`] refuses, so nothing reaches a private address even if a check before it
//! were bypassed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use super::{TurnStats, bind_udp};
use crate::calls::filter::PeerFilter;

/// Opens relay sockets in the configured port range, wrapped in [`FilteredConn`].
pub(super) struct Relays {
    pub(super) bind_ip: IpAddr,
    pub(super) relay_ip: IpAddr,
    pub(super) min: u16,
    pub(super) max: u16,
    pub(super) filter: Arc<PeerFilter>,
    pub(super) stats: Arc<TurnStats>,
}

pub(super) struct RelayGen(pub(super) Arc<Relays>);

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
