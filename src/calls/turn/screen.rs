//! The one screening path every TURN message goes through, whatever its transport, before the
//! crate's handler sees it: the peer filter (403 or drop), credentials (401 with a fresh nonce)
//! and the allocation quota (486), and the XOR-PEER-ADDRESS decoding the filter needs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_REALM, ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS};
use stun::error_code::{CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, CODE_UNAUTHORIZED, ErrorCode, ErrorCodeAttribute};
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, METHOD_ALLOCATE, METHOD_BINDING, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION,
    METHOD_SEND, Message, MessageType, Setter,
};
use stun::textattrs::{Nonce, Realm, Username};
use tokio::time::Instant;
use turn::allocation::allocation_manager::Manager;
use turn::server::request::Request;
use webrtc_util::Conn;

use super::{Nonces, REALM, Shared};
use crate::calls::credentials;

/// Screens one message (a datagram, or one framed off a TCP or TLS stream) from `src` and hands
/// it to the crate with `manager`; answers and relayed data go back through `conn`.
pub(super) async fn handle_message(
    shared: &Shared,
    manager: &Arc<Manager>,
    conn: &Arc<dyn Conn + Send + Sync>,
    src: SocketAddr,
    data: &[u8],
) {
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
pub(super) async fn count_allocations(managers: &[Arc<Manager>], user: Option<u64>) -> (usize, usize) {
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

pub(super) trait DecodeFrom: Sized {
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
        if let Some(refused) = peers.iter().find(|p| !p.is_some_and(|p| shared.filter.allows(p))) {
            shared.stats.refused_peers.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, ?peers, "TURN peer refused");
            if let Some(peer) = refused {
                shared.refusals.refused(src, peer.ip());
            }
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

pub(super) const MAGIC_COOKIE: u32 = 0x2112_A442;

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
