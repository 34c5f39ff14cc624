//! ICE over TCP on the media port (RFC 6544, framed as RFC 4571: each packet after a two-byte
//! length), for clients whose network blocks UDP: the SFU offers a passive TCP candidate on the
//! same port number as its UDP one. Each connection gets a reader task, which hands the packets
//! to the loop, and a writer task, which the loop feeds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Largest packet accepted or sent (a datagram's worth).
pub const MAX_PACKET: usize = 2048;
/// Connections the media port holds at once, and per client address.
const MAX_CONNECTIONS: usize = 1000;
const MAX_PER_IP: usize = 16;
/// A connection that sends nothing for this long is closed (ICE keeps a live one busy).
const IDLE: Duration = Duration::from_secs(60);
/// Packets queued towards one connection; past it, packets are dropped, as UDP would.
const WRITE_QUEUE: usize = 256;

/// What a connection tells the loop.
pub enum TcpEvent {
    Open { from: SocketAddr, tx: mpsc::Sender<Vec<u8>> },
    Packet { from: SocketAddr, data: Vec<u8> },
    Closed { from: SocketAddr },
}

/// Adds the RFC 4571 length to one packet.
pub fn frame(packet: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(packet.len()).ok().filter(|n| usize::from(*n) <= MAX_PACKET)?;
    let mut out = Vec::with_capacity(packet.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(out)
}

/// Accepts connections on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, events: mpsc::Sender<TcpEvent>, shutdown: CancellationToken) {
    let counts: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let (stream, from) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "SFU TCP accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        {
            let mut c = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let total: usize = c.values().sum();
            let mine = c.entry(from.ip()).or_default();
            if total >= MAX_CONNECTIONS || *mine >= MAX_PER_IP {
                continue;
            }
            *mine += 1;
        }
        let _ = stream.set_nodelay(true);
        let (events, shutdown, counts) = (events.clone(), shutdown.clone(), counts.clone());
        tokio::spawn(async move {
            connection(stream, from, &events, &shutdown).await;
            let _ = events.send(TcpEvent::Closed { from }).await;
            let mut c = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = c.get_mut(&from.ip()) {
                *n -= 1;
                if *n == 0 {
                    c.remove(&from.ip());
                }
            }
        });
    }
}

async fn connection(stream: TcpStream, from: SocketAddr, events: &mpsc::Sender<TcpEvent>, shutdown: &CancellationToken) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if events.send(TcpEvent::Open { from, tx }).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if wr.write_all(&p).await.is_err() {
                return;
            }
        }
    });
    let mut len = [0u8; 2];
    loop {
        let read = async {
            rd.read_exact(&mut len).await?;
            let n = usize::from(u16::from_be_bytes(len));
            if n == 0 || n > MAX_PACKET {
                return Err(std::io::Error::other("bad length"));
            }
            let mut data = vec![0u8; n];
            rd.read_exact(&mut data).await?;
            Ok(data)
        };
        let data = tokio::select! {
            () = shutdown.cancelled() => break,
            r = tokio::time::timeout(IDLE, read) => match r {
                Ok(Ok(d)) => d,
                _ => break,
            },
        };
        if events.send(TcpEvent::Packet { from, data }).await.is_err() {
            break;
        }
    }
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_framed_with_their_length_and_oversized_ones_refused() {
        assert_eq!(frame(b"abc"), Some(vec![0, 3, b'a', b'b', b'c']));
        assert_eq!(frame(&[7u8; 300]).map(|f| (f[0], f[1], f.len())), Some((1, 44, 302)));
        assert!(frame(&vec![0u8; MAX_PACKET + 1]).is_none());
        assert_eq!(frame(b""), Some(vec![0, 0]));
    }
}
