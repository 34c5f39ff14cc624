//! `GET /api/calls/ice-servers`: the STUN and TURN servers a logged-in user's browser should
//! use, with TURN credentials that expire.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Calls;
use super::credentials;
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, AuthUser};

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IceServer {
    /// `stun:HOST:PORT`, `turn:HOST:PORT?transport=udp`, `turn:HOST:PORT?transport=tcp` (when
    /// `turn.tcp`) and `turns:HOST:TLSPORT?transport=tcp` (when TURN over TLS is configured).
    pub urls: Vec<String>,
    /// `expiry:userid`
    pub username: String,
    /// base64(HMAC-SHA1(server secret, username))
    pub credential: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IceServers {
    /// Empty when the server runs no TURN relay.
    pub ice_servers: Vec<IceServer>,
    /// How long the credentials stay valid, seconds; fetch new ones before then.
    pub ttl_secs: u64,
    /// `RTCConfiguration.iceTransportPolicy`: `relay` when `calls.relay_only` is set.
    pub ice_transport_policy: super::IceTransportPolicy,
}

/// The host clients reach the TURN server at: `turn.public_host`, `turn.public_ip`, or the host
/// of this request (without its port).
fn turn_host(config: &Config, relay_ip: std::net::IpAddr, headers: &HeaderMap) -> String {
    if let Some(h) = &config.turn.public_host {
        return h.clone();
    }
    if let Some(ip) = config.turn.public_ip {
        return bracket(ip);
    }
    let from_request = headers.get(HOST).and_then(|h| h.to_str().ok()).map(|h| {
        // `[::1]:8080`, `chat.example.org:443`, `chat.example.org`
        match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']')) => {
                host.to_owned()
            }
            _ => h.to_owned(),
        }
    });
    from_request
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b)))
        .unwrap_or_else(|| bracket(relay_ip))
}

/// UDP first: browsers try the URLs in parallel, and UDP is what media should take when it can.
/// A `turns:` URL only works with a host name the certificate is valid for (`turn.public_host`).
fn turn_urls(host: &str, port: u16, tcp: bool, tls_port: Option<u16>) -> Vec<String> {
    let mut urls = vec![format!("stun:{host}:{port}"), format!("turn:{host}:{port}?transport=udp")];
    if tcp {
        urls.push(format!("turn:{host}:{port}?transport=tcp"));
    }
    if let Some(tls) = tls_port {
        urls.push(format!("turns:{host}:{tls}?transport=tcp"));
    }
    urls
}

fn bracket(ip: std::net::IpAddr) -> String {
    if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() }
}

#[utoipa::path(get, path = "/api/calls/ice-servers", tag = "calls",
    description = "STUN and TURN servers for RTCPeerConnection, with TURN credentials (TURN REST scheme) that expire after ttl_secs. At most calls.ice_servers_per_10_min per user.",
    responses((status = 200, body = IceServers), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn ice_servers(
    auth: AuthUser,
    State(calls): State<Arc<Calls>>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
) -> Result<Json<IceServers>, ApiError> {
    calls.ice_limiter.take(&auth.user.id.0.to_string(), std::time::Instant::now()).map_err(ApiError::rate_limited)?;
    let Some(turn) = &calls.turn else {
        return Ok(Json(IceServers {
            ice_servers: Vec::new(),
            ttl_secs: 0,
            ice_transport_policy: super::IceTransportPolicy::of(&config, false),
        }));
    };
    let ttl = config.turn.credential_ttl_secs;
    let creds = credentials::issue(&turn.secret, auth.user.id, credentials::now_secs() + ttl);
    let host = turn_host(&config, turn.relay_ip, &headers);
    Ok(Json(IceServers {
        ice_servers: vec![IceServer {
            urls: turn_urls(&host, turn.local_addr.port(), turn.tcp, turn.tls_addr.map(|a| a.port())),
            username: creds.username,
            credential: creds.password,
        }],
        ttl_secs: ttl,
        ice_transport_policy: super::IceTransportPolicy::of(&config, true),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_turn_host_comes_from_settings_then_the_request() {
        let mut c = Config::default();
        let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(turn_host(&c, ip, &h), "127.0.0.1");
        h.insert(HOST, "chat.example.org:8443".parse().unwrap());
        assert_eq!(turn_host(&c, ip, &h), "chat.example.org");
        h.insert(HOST, "[2001:db8::1]:8080".parse().unwrap());
        assert_eq!(turn_host(&c, ip, &h), "[2001:db8::1]");
        h.insert(HOST, "evil/<x>".parse().unwrap());
        assert_eq!(turn_host(&c, ip, &h), "127.0.0.1", "junk in Host is not echoed");
        c.turn.public_ip = Some("203.0.113.5".parse().unwrap());
        assert_eq!(turn_host(&c, ip, &h), "203.0.113.5");
        c.turn.public_host = Some("turn.example.org".into());
        assert_eq!(turn_host(&c, ip, &h), "turn.example.org");
    }

    #[test]
    fn tcp_and_tls_urls_follow_the_listeners() {
        assert_eq!(turn_urls("h", 3478, false, None), ["stun:h:3478", "turn:h:3478?transport=udp"]);
        assert_eq!(
            turn_urls("h", 3478, true, Some(5349)),
            ["stun:h:3478", "turn:h:3478?transport=udp", "turn:h:3478?transport=tcp", "turns:h:5349?transport=tcp"]
        );
    }
}
