//! The HTTP accept loop: hyper's connection builder with a header-read deadline (a socket that
//! never sends a full request is closed after `limits.header_timeout_secs`), a cap on open
//! connections per client address, WebSocket upgrades, and graceful shutdown.
//!
//! axum's own `serve` has neither the deadline nor the cap, hence this small loop. Loopback
//! addresses are exempt from the cap: behind a reverse proxy every client arrives from it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The connection's slot, put into each request so that a WebSocket keeps it after the HTTP
/// connection is upgraded away.
#[derive(Clone)]
pub struct ConnSlot(pub Arc<Slot>);

/// Counts open connections per client address; a slot is given back when dropped.
#[derive(Clone, Default)]
pub struct PerIp {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

pub struct Slot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut map = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

impl PerIp {
    /// A slot for `ip` if it has fewer than `cap` open; loopback is never limited.
    pub fn take(&self, ip: IpAddr, cap: usize) -> Option<Slot> {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            return Some(Slot { counts: self.counts.clone(), ip: None });
        }
        let mut map = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot { counts: self.counts.clone(), ip: Some(ip) })
    }
}

/// Serves `router` on `listener` until `shutdown`, then waits up to `drain` for requests in
/// flight. Upgraded connections (WebSockets) are handed off and tracked by their own tasks.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    per_ip_cap: usize,
    shutdown: CancellationToken,
    drain: Duration,
) {
    // HTTP/1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy terminates; and
    // version sniffing would wait for a first byte before the header deadline even starts.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let per_ip = PerIp::default();
    loop {
        let (stream, addr) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = per_ip.take(addr.ip(), per_ip_cap) else {
            tracing::debug!(%addr, "too many connections from this address; refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnSlot(Arc::new(slot));
        // The client's address and the slot go into each request's extensions (what axum's
        // `Extension` layer does, without `Router::layer` rebuilding every route per connection).
        let (router, req_slot) = (router.clone(), slot.clone());
        let svc = tower::service_fn(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(addr));
            req.extensions_mut().insert(req_slot.clone());
            tower::ServiceExt::oneshot(router.clone(), req)
        });
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            // hyper's header deadline only runs once a request has begun; a socket that sends
            // nothing at all is closed here.
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(header_timeout, stream.peek(&mut first)).await, Ok(Ok(n)) if n > 0) {
                tracing::debug!(%addr, "closed a connection that sent no request");
                return;
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("some HTTP connections did not finish in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_each_address_and_come_back() {
        let p = PerIp::default();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = p.take(ip, 2).unwrap();
        let _b = p.take(ip, 2).unwrap();
        assert!(p.take(ip, 2).is_none());
        assert!(p.take("203.0.113.8".parse().unwrap(), 2).is_some(), "other addresses are separate");
        drop(a);
        assert!(p.take(ip, 2).is_some());
        for lo in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let lo: IpAddr = lo.parse().unwrap();
            let held: Vec<_> = (0..5).map(|_| p.take(lo, 2).unwrap()).collect();
            assert_eq!(held.len(), 5, "loopback is not capped");
        }
    }
}
