//! TURN over TCP and over TLS (RFC 5766 section 2.1): the client's side runs over one stream
//! connection, the relayed side stays UDP (not the RFC 6062 TCP relay).
//!
//! Each accepted connection gets one task that cuts the byte stream into messages (a STUN
//! message is its 20-byte header plus the length at bytes 2..4; `ChannelData` is a 4-byte header
//! plus its length padded to a multiple of 4) and hands each to [`super::handle_message`], the
//! same screening and crate handler as UDP. The connection's own [`StreamConn`] is the `Conn`
//! the crate answers through and relays through, so an allocation made over a connection
//! sends everything back over it; a writer task drains what it queues. When the connection
//! ends, its allocation is deleted.
//!
//! Limits: connections per client address and in total, a deadline for the TLS handshake and
//! the first valid STUN message, an idle deadline while the connection holds no allocation, a
//! deadline per write, and the connection is dropped on anything that is neither STUN nor
//! `ChannelData`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turn::allocation::allocation_manager::Manager;
use turn::allocation::five_tuple::FiveTuple;
use webrtc_util::Conn;

use super::{DecodeFrom, MAGIC_COOKIE, Message, Shared, TurnStats};
use crate::config;

/// Largest STUN message accepted over a stream. Real ones are a few hundred bytes; the cap
/// keeps one connection's buffer small. `ChannelData` is bounded by its 16-bit length.
const MAX_STUN: usize = 8 * 1024;
/// A connection that holds no allocation and says nothing for this long is closed. One that
/// holds an allocation lives as long as the allocation (which its client must refresh).
const IDLE: Duration = Duration::from_secs(120);
/// One write to a client (or a wait for room in its queue) longer than this ends the
/// connection: the client is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers queued for one connection. They are sent from the read task without waiting (it may
/// hold the server-wide allocation lock), so a client that lets this many pile up is dropped.
const CONTROL_QUEUE: usize = 64;
/// Relayed packets queued for one connection; the relay waits for room (its socket's receive
/// buffer holds far more).
const MEDIA_QUEUE: usize = 64;
/// Bytes of queued messages written to a TCP connection at once, and the most messages.
const WRITE_BUF: usize = 16 * 1024;
const BATCH_FRAMES: usize = 32;

/// Reads the TURN-over-TLS certificate and key named in the settings. An error here stops the
/// server from starting: a TLS port that silently does not work would be worse.
pub fn tls_acceptor(cfg: &config::Turn) -> anyhow::Result<Option<TlsAcceptor>> {
    let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else { return Ok(None) };
    let read =
        |path: &Path, name: &str| std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read turn.{name} {}: {e}", path.display()));
    let certs = CertificateDer::pem_slice_iter(&read(cert, "tls_cert")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("turn.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("turn.tls_cert {}: no PEM certificate in it", cert.display());
    }
    let private =
        PrivateKeyDer::from_pem_slice(&read(key, "tls_key")?).map_err(|e| anyhow::anyhow!("turn.tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| anyhow::anyhow!("turn.tls_cert and turn.tls_key do not go together: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// What every TCP and TLS connection shares.
#[derive(Clone)]
pub(super) struct Streams(Arc<Inner>);

struct Inner {
    shared: Arc<Shared>,
    manager: Arc<Manager>,
    slots: Slots,
    handshake: Duration,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Streams {
    pub(super) fn new(
        cfg: &config::Turn,
        shared: Arc<Shared>,
        manager: Arc<Manager>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Streams {
        let slots = Slots {
            per_ip: cfg.stream_connections_per_ip,
            total: cfg.stream_connections,
            held: Mutex::default(),
            stats: shared.stats.clone(),
        };
        Streams(Arc::new(Inner { shared, manager, slots, handshake: Duration::from_secs(cfg.stream_handshake_secs), shutdown, tasks }))
    }

    /// Accepts connections until shutdown; each runs in its own task.
    pub(super) async fn accept_loop(self, listener: TcpListener, tls: Option<TlsAcceptor>) {
        let s = &self.0;
        loop {
            let (tcp, peer) = tokio::select! {
                () = s.shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(v) => v,
                    Err(e) => {
                        // Out of file descriptors, most likely: back off instead of spinning.
                        tracing::warn!(error = %e, "TURN cannot accept a connection");
                        tokio::select! {
                            () = s.shutdown.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        }
                    }
                },
            };
            let Some(slot) = self.slot(peer.ip()) else {
                s.shared.stats.stream_refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "TURN connection refused: too many connections");
                continue;
            };
            s.tasks.spawn(self.clone().connection(tcp, peer, tls.clone(), slot));
        }
    }

    fn slot(&self, ip: IpAddr) -> Option<Slot> {
        let inner = self.0.clone();
        let key = slot_key(ip);
        // Lazily: a `Slot` gives its place back when dropped.
        inner.slots.take(key).then(|| Slot { inner, key })
    }

    async fn connection(self, tcp: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, _slot: Slot) {
        let deadline = Instant::now() + self.0.handshake;
        let Ok(local) = tcp.local_addr() else { return };
        // Small messages (answers, audio) should not wait for more to fill a segment.
        let _ = tcp.set_nodelay(true);
        match tls {
            None => self.serve(tcp, local, peer, deadline, WRITE_BUF).await,
            Some(acceptor) => {
                let shaken = tokio::select! {
                    () = self.0.shutdown.cancelled() => return,
                    r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => r,
                };
                match shaken {
                    // One TLS record per message: some clients (coturn's among them) read a record at
                    // a time and expect one message in it.
                    Ok(Ok(stream)) => self.serve(stream, local, peer, deadline, 0).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TURN TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TURN TLS handshake timed out"),
                }
            }
        }
    }

    /// Reads messages off `stream` until it ends, goes quiet or sends garbage, then deletes the
    /// connection's allocation. `deadline` is when the first valid STUN message must be in.
    async fn serve<S>(&self, stream: S, local: SocketAddr, peer: SocketAddr, mut deadline: Instant, batch: usize)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let s = &self.0;
        let (rd, wr) = tokio::io::split(stream);
        let closed = s.shutdown.child_token();
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let (media_tx, media_rx) = mpsc::channel(MEDIA_QUEUE);
        let writer = s.tasks.spawn(write_loop(wr, batch, control_rx, media_rx, closed.clone()));
        let conn: Arc<dyn Conn + Send + Sync> =
            Arc::new(StreamConn { local, peer, control: control_tx, media: media_tx, closed: closed.clone() });
        // What the crate keys this connection's allocation by (it always says UDP).
        let five_tuple = FiveTuple { protocol: turn::proto::PROTO_UDP, src_addr: peer, dst_addr: local };
        let mut frames = FramedRead::with_capacity(rd, Frames { stun_only: true }, 4096);
        let mut greeted = false;
        loop {
            let next = tokio::select! {
                () = closed.cancelled() => break,
                r = tokio::time::timeout_at(deadline, frames.next()) => r,
            };
            let frame = match next {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    tracing::debug!(%peer, error = %e, "TURN connection dropped");
                    break;
                }
                Err(_) => {
                    if greeted && s.manager.get_allocation(&five_tuple).await.is_some() {
                        deadline = Instant::now() + IDLE;
                        continue;
                    }
                    tracing::debug!(%peer, greeted, "TURN connection timed out");
                    break;
                }
            };
            if !greeted {
                if Message::decode_from(&frame).is_none() {
                    tracing::debug!(%peer, "TURN connection did not start with a STUN message");
                    break;
                }
                greeted = true;
                frames.decoder_mut().stun_only = false;
            }
            deadline = Instant::now() + IDLE;
            super::handle_message(&s.shared, &s.manager, &conn, peer, &frame).await;
        }
        closed.cancel();
        s.manager.delete_allocation(&five_tuple).await;
        drop(conn);
        let _ = writer.await;
    }
}

/// Cuts a byte stream into STUN messages and `ChannelData` messages (RFC 5766 section 11.5).
struct Frames {
    /// Before the first STUN message nothing else is taken, so that a stray client (an HTTP
    /// request starts like `ChannelData`) is dropped at once, not when its "frame" is complete.
    stun_only: bool,
}

impl Decoder for Frames {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        let garbage = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidData, what.to_owned()));
        if src.len() < 4 {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([src[2], src[3]]));
        let (total, keep) = match src[0] >> 6 {
            0b00 => {
                if len % 4 != 0 || len + 20 > MAX_STUN {
                    return garbage("bad STUN length");
                }
                if src.len() >= 8 && src[4..8] != MAGIC_COOKIE.to_be_bytes() {
                    return garbage("no STUN magic cookie");
                }
                (20 + len, 20 + len)
            }
            // Over a stream ChannelData is padded to a multiple of 4; the padding is dropped.
            0b01 if !self.stun_only => (4 + len.next_multiple_of(4), 4 + len),
            _ => return garbage("neither STUN nor ChannelData where it may be"),
        };
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(total);
        frame.truncate(keep);
        Ok(Some(frame))
    }
}

/// The `Conn` the crate answers and relays through for one connection: it queues framed bytes
/// for the connection's writer task.
struct StreamConn {
    local: SocketAddr,
    peer: SocketAddr,
    control: mpsc::Sender<Vec<u8>>,
    media: mpsc::Sender<Vec<u8>>,
    closed: CancellationToken,
}

fn closed_err() -> webrtc_util::Error {
    webrtc_util::Error::Other("the TURN connection is closed or not reading".into())
}

/// Relayed data towards the client: `ChannelData` or a Data indication (method 0x007, class
/// indication). Everything else the crate sends is an answer to a request.
fn is_media(buf: &[u8]) -> bool {
    buf.first().is_some_and(|b| b >> 6 == 0b01) || buf.starts_with(&[0x00, 0x17])
}

#[async_trait]
impl Conn for StreamConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("a TURN stream connection is already connected".into()))
    }

    async fn recv(&self, _buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("a TURN stream connection is read by its own task".into()))
    }

    async fn recv_from(&self, _buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        Err(webrtc_util::Error::Other("a TURN stream connection is read by its own task".into()))
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.send_to(buf, self.peer).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if target != self.peer {
            return Err(webrtc_util::Error::Other(format!("this TURN connection leads to {}, not {target}", self.peer)));
        }
        // Everything sent over a stream is padded to a multiple of 4 (the crate already pads
        // what it makes; this keeps the framing right whatever it hands us).
        let mut frame = Vec::with_capacity(buf.len().next_multiple_of(4));
        frame.extend_from_slice(buf);
        frame.resize(buf.len().next_multiple_of(4), 0);
        let queued = if is_media(buf) {
            // The relay task of this one allocation waits for room, as a UDP socket would
            // block on a full send buffer; nothing else waits behind it.
            matches!(self.media.send_timeout(frame, WRITE_TIMEOUT).await, Ok(()))
        } else {
            // Answers come from the read task, which may hold the server-wide allocation lock:
            // never wait here.
            self.control.try_send(frame).is_ok()
        };
        if queued {
            Ok(buf.len())
        } else {
            self.closed.cancel();
            Err(closed_err())
        }
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }

    /// Called when the connection's allocation ends; the connection itself lives on (the
    /// client may allocate again) until its own task ends it.
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Writes what the connection's `StreamConn` queued, answers first, batching whatever is
/// waiting into one flush.
async fn write_loop<W: AsyncWrite>(
    w: W,
    batch: usize,
    mut control: mpsc::Receiver<Vec<u8>>,
    mut media: mpsc::Receiver<Vec<u8>>,
    closed: CancellationToken,
) {
    let w = BufWriter::with_capacity(batch, w);
    let mut w = std::pin::pin!(w);
    loop {
        let first = tokio::select! {
            biased;
            () = closed.cancelled() => break,
            Some(f) = control.recv() => f,
            Some(f) = media.recv() => f,
            else => break,
        };
        let wrote = tokio::time::timeout(WRITE_TIMEOUT, async {
            w.write_all(&first).await?;
            for _ in 0..BATCH_FRAMES {
                match control.try_recv().or_else(|_| media.try_recv()) {
                    Ok(f) => w.write_all(&f).await?,
                    Err(_) => break,
                }
            }
            w.flush().await
        })
        .await;
        if !matches!(wrote, Ok(Ok(()))) {
            closed.cancel();
            return;
        }
    }
    // A TLS close_notify, or a FIN; a client that does not take it is not waited for.
    let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
}

/// Open connections, in total and per client address.
struct Slots {
    per_ip: usize,
    total: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<TurnStats>,
}

impl Slots {
    fn take(&self, key: IpAddr) -> bool {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = usize::try_from(self.stats.stream_connections.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        let mine = held.get(&key).copied().unwrap_or(0);
        if total >= self.total || mine >= self.per_ip {
            return false;
        }
        held.insert(key, mine + 1);
        self.stats.stream_connections.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn give_back(&self, key: IpAddr) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&key);
            }
        }
        self.stats.stream_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's place in [`Slots`], given back when the connection's task ends.
struct Slot {
    inner: Arc<Inner>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.slots.give_back(self.key);
    }
}

/// The address a connection counts against: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64, which one client usually holds whole.
fn slot_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> (Vec<Vec<u8>>, io::Result<()>) {
        decode_all_with(Frames { stun_only: false }, bytes)
    }

    fn decode_all_with(mut frames: Frames, bytes: &[u8]) -> (Vec<Vec<u8>>, io::Result<()>) {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match frames.decode(&mut buf) {
                Ok(Some(f)) => out.push(f.to_vec()),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    fn stun(len: u16) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(9, usize::from(len)));
        m
    }

    #[test]
    fn a_stream_is_cut_into_stun_and_padded_channel_data() {
        let mut bytes = stun(8);
        // ChannelData on channel 0x4001 with 5 bytes, padded with 3 zeros over a stream.
        bytes.extend_from_slice(&[0x40, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        bytes.extend_from_slice(&stun(0));
        let (frames, end) = decode_all(&bytes);
        end.unwrap();
        assert_eq!(frames, vec![stun(8), vec![0x40, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5], stun(0)]);
        // Byte by byte it comes out the same.
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in &bytes {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = (Frames { stun_only: false }).decode(&mut buf).unwrap() {
                out.push(f.to_vec());
            }
        }
        assert_eq!(out, frames);
    }

    #[test]
    fn garbage_and_oversized_messages_end_the_stream() {
        let http = b"GET / HTTP/1.1\r\n\r\n";
        assert!(decode_all_with(Frames { stun_only: true }, http).1.is_err(), "HTTP before any STUN");
        assert!(decode_all_with(Frames { stun_only: true }, &[0x40, 0x01, 0x00, 0x00]).1.is_err(), "ChannelData before any STUN");
        assert!(decode_all(&[0x16, 0x03, 0x01, 0x00, 0xa4, 0x01, 0x00, 0x00]).1.is_err(), "a TLS ClientHello on the TCP port");
        assert!(decode_all(&[0x80, 0, 0, 0]).1.is_err());
        let mut no_cookie = stun(0);
        no_cookie[4] = 0;
        assert!(decode_all(&no_cookie).1.is_err());
        let mut odd = stun(4);
        odd[3] = 5;
        assert!(decode_all(&odd).1.is_err(), "STUN lengths are multiples of 4");
        let (frames, end) = decode_all(&stun(u16::try_from(MAX_STUN).unwrap())[..24]);
        assert!(frames.is_empty() && end.is_err(), "a STUN message bigger than MAX_STUN is refused before it is read");
    }

    #[test]
    fn relayed_data_is_told_from_answers() {
        assert!(is_media(&[0x40, 0x00, 0, 0]));
        assert!(is_media(&[0x00, 0x17, 0, 0]), "Data indication");
        assert!(!is_media(&[0x01, 0x03, 0, 0]), "Allocate success");
        assert!(!is_media(&[0x01, 0x13, 0, 0]), "Allocate error");
    }

    #[test]
    fn connections_count_per_address_and_ipv6_per_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(slot_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(slot_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(slot_key(ip("192.0.2.7")), ip("192.0.2.7"));
        let slots = Slots { per_ip: 2, total: 3, held: Mutex::default(), stats: Arc::default() };
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(slots.take(a) && slots.take(a));
        assert!(!slots.take(a), "per address");
        assert!(slots.take(b));
        assert!(!slots.take(ip("192.0.2.3")), "in total");
        slots.give_back(a);
        assert!(slots.take(ip("192.0.2.3")));
        assert_eq!(slots.stats.stream_connections.load(Ordering::Relaxed), 3);
    }
}
