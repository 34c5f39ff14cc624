//! The one way the server sends HTTP requests to URLs it did not choose (push endpoints today;
//! link previews, identity providers and webhooks go through it as they come).
//!
//! Architecture invariant: a URL is resolved once, every resolved address is judged by the
//! shared address verdict (`crate::address`, the TURN relay's too), and the connection goes to
//! the address that was checked, so DNS rebinding cannot slip a private address in between.
//! Only `https` (and `http` when a setting allows it), no user info in URLs, a deadline on the
//! whole exchange and a cap on the answer's size. [`Outbound::send`] follows no redirects;
//! [`Outbound::get`] follows a few, and each hop is a new URL checked, resolved and judged like
//! the first, so a public page cannot redirect the server to a private address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use crate::address::AddressPolicy;

/// Why a request was not made or did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The URL or the address it resolved to is not allowed; nothing was sent.
    #[error("refused: {0}")]
    Refused(String),
    #[error("no answer within the deadline")]
    Timeout,
    #[error("{0}")]
    Failed(String),
    /// The answer was an HTTP error status.
    #[error("the server answered {0}")]
    Status(u16),
    /// The answer's type is not one that was asked for.
    #[error("unwanted content type `{0}`")]
    Type(String),
    /// The answer is larger than its cap.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// More redirects than allowed, or a redirect without a usable `Location`.
    #[error("too many redirects")]
    Redirects,
}

/// What [`Outbound::get`] accepts and how long it waits.
#[derive(Clone, Debug)]
pub struct GetRules {
    /// Redirects followed (each hop is checked like the first URL).
    pub max_redirects: u8,
    /// Accepted media types: exact (`text/html`) or a prefix ending in `/` (`image/`).
    pub accept: &'static [&'static str],
    /// Bytes of the body read.
    pub max_bytes: usize,
    /// Past `max_bytes`, keep what was read (a page's head is at its start) rather than fail.
    pub truncate: bool,
    /// For each TCP connection (and its TLS handshake).
    pub connect_timeout: Duration,
    /// For the whole exchange, every hop included.
    pub total_timeout: Duration,
    /// Sent as `Accept`.
    pub accept_header: &'static str,
}

/// The answer of [`Outbound::get`].
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL the body came from, after redirects.
    pub url: String,
    /// The media type, lower-cased, without parameters.
    pub mime: String,
    /// The `charset` parameter of `Content-Type`, if any.
    pub charset: Option<String>,
    pub body: Bytes,
    /// Whether the body was cut at `max_bytes`.
    pub truncated: bool,
}

/// Sent with every `get`, so that site owners can tell what fetched their page.
const USER_AGENT: &str = concat!("Chinwag/", env!("CARGO_PKG_VERSION"), " (link preview)");

/// An answer: its status, `Retry-After` in seconds when given as a number, and its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// A checked URL: scheme, host, port and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub uri: Uri,
}

impl Target {
    /// `https://host[:port]`, what VAPID calls the audience.
    pub fn origin(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.host_header())
    }

    /// The `Host` header: the host (IPv6 in brackets), and the port unless it is the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.https { 443 } else { 80 } { host } else { format!("{host}:{}", self.port) }
    }
}

/// The outbound client with its policy.
#[derive(Clone)]
pub struct Outbound {
    policy: AddressPolicy,
    allow_http: bool,
    timeout: Duration,
    tls: TlsConnector,
}

impl Outbound {
    /// # Panics
    /// Never in practice: ring supports rustls's default protocol versions.
    pub fn new(policy: AddressPolicy, allow_http: bool, timeout: Duration) -> Outbound {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Outbound { policy, allow_http, timeout, tls: TlsConnector::from(Arc::new(config)) }
    }

    /// Checks a URL's form: scheme, host, no user info, at most 2,048 bytes.
    pub fn check_url(&self, url: &str) -> Result<Target, OutboundError> {
        let refuse = |m: &str| Err(OutboundError::Refused(m.into()));
        if url.len() > 2048 {
            return refuse("the URL is longer than 2,048 bytes");
        }
        let Ok(uri) = url.parse::<Uri>() else { return refuse("not a URL") };
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if self.allow_http => false,
            _ => return refuse("only https URLs are accepted"),
        };
        let Some(authority) = uri.authority() else { return refuse("the URL has no host") };
        if authority.as_str().contains('@') {
            return refuse("the URL carries a user name or password");
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return refuse("the URL has no host");
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Target { https, host, port, uri })
    }

    /// Resolves the target once and returns the first address the policy allows; refused when
    /// there is none (a name that resolves only to private addresses, say).
    pub async fn resolve(&self, t: &Target) -> Result<SocketAddr, OutboundError> {
        let addrs: Vec<SocketAddr> = match t.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, t.port)],
            Err(_) => tokio::time::timeout(self.timeout, tokio::net::lookup_host((t.host.as_str(), t.port)))
                .await
                .map_err(|_| OutboundError::Timeout)?
                .map_err(|e| OutboundError::Failed(format!("cannot resolve the host: {e}")))?
                .collect(),
        };
        addrs
            .into_iter()
            .find(|a| self.policy.allows(a.ip()))
            .ok_or_else(|| OutboundError::Refused("the host is not on a public address".into()))
    }

    /// Sends `req` (its URI must be `t`'s) to the checked address of `t`, reading at most
    /// `max_answer` bytes of the answer. Redirects are answers like any other: not followed.
    pub async fn send(&self, t: &Target, req: http::Request<Vec<u8>>, max_answer: usize) -> Result<Answer, OutboundError> {
        tokio::time::timeout(self.timeout, async {
            let addr = self.resolve(t).await?;
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| OutboundError::Failed(format!("cannot connect: {e}")))?;
            if t.https {
                let name = ServerName::try_from(t.host.clone()).map_err(|_| OutboundError::Refused("not a valid host name".into()))?;
                let tls = self.tls.connect(name, tcp).await.map_err(|e| OutboundError::Failed(format!("TLS: {e}")))?;
                exchange(TokioIo::new(tls), t, req, max_answer).await
            } else {
                exchange(TokioIo::new(tcp), t, req, max_answer).await
            }
        })
        .await
        .map_err(|_| OutboundError::Timeout)?
    }
}

impl Outbound {
    /// Fetches `url` with GET, following at most `rules.max_redirects` redirects. Every hop's
    /// URL is checked, resolved once and judged, and the connection goes to the checked
    /// address; the answer must be a 2xx with one of the accepted types.
    pub async fn get(&self, url: &str, rules: &GetRules) -> Result<Fetched, OutboundError> {
        tokio::time::timeout(rules.total_timeout, async {
            let mut current = url.to_owned();
            for _ in 0..=rules.max_redirects {
                let t = self.check_url(&current)?;
                let addr = self.resolve(&t).await?;
                let res = tokio::time::timeout(rules.connect_timeout, self.connect(&t, addr))
                    .await
                    .map_err(|_| OutboundError::Failed("cannot connect within the deadline".into()))??;
                let req = http::Request::get(t.uri.clone())
                    .header(http::header::USER_AGENT, USER_AGENT)
                    .header(http::header::ACCEPT, rules.accept_header)
                    .body(Vec::new())
                    .map_err(|e| OutboundError::Failed(e.to_string()))?;
                let (head, body, driver) = match res {
                    Conn::Tls(io) => start(*io, &t, req).await?,
                    Conn::Plain(io) => start(io, &t, req).await?,
                };
                let status = head.status;
                if status.is_redirection() && status != http::StatusCode::NOT_MODIFIED {
                    driver.abort();
                    let location =
                        head.headers.get(http::header::LOCATION).and_then(|v| v.to_str().ok()).ok_or(OutboundError::Redirects)?;
                    let base = url::Url::parse(&current).map_err(|_| OutboundError::Redirects)?;
                    let mut next = base.join(location).map_err(|_| OutboundError::Redirects)?;
                    next.set_fragment(None);
                    current = next.to_string();
                    continue;
                }
                let out = read_answer(&head, body, rules, &current).await;
                driver.abort();
                return out;
            }
            Err(OutboundError::Redirects)
        })
        .await
        .map_err(|_| OutboundError::Timeout)?
    }

    async fn connect(&self, t: &Target, addr: SocketAddr) -> Result<Conn, OutboundError> {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| OutboundError::Failed(format!("cannot connect: {e}")))?;
        if !t.https {
            return Ok(Conn::Plain(TokioIo::new(tcp)));
        }
        let name = ServerName::try_from(t.host.clone()).map_err(|_| OutboundError::Refused("not a valid host name".into()))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| OutboundError::Failed(format!("TLS: {e}")))?;
        Ok(Conn::Tls(Box::new(TokioIo::new(tls))))
    }
}

enum Conn {
    Plain(TokioIo<tokio::net::TcpStream>),
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>),
}

/// Sends `req` on a new HTTP/1.1 connection and returns the answer's head and body, with the
/// task driving the connection (abort it when done).
async fn start<I>(
    io: I,
    t: &Target,
    req: http::Request<Vec<u8>>,
) -> Result<(http::response::Parts, hyper::body::Incoming, tokio::task::JoinHandle<()>), OutboundError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| OutboundError::Failed(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| failed(&e))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let (mut parts, body) = req.into_parts();
    parts.uri = t.uri.path_and_query().map_or("/", |p| p.as_str()).parse().map_err(|e: http::uri::InvalidUri| failed(&e))?;
    parts.headers.insert(http::header::HOST, t.host_header().parse().map_err(|e: http::header::InvalidHeaderValue| failed(&e))?);
    match sender.send_request(http::Request::from_parts(parts, Full::new(Bytes::from(body)))).await {
        Ok(res) => {
            let (head, body) = res.into_parts();
            Ok((head, body, driver))
        }
        Err(e) => {
            driver.abort();
            Err(failed(&e))
        }
    }
}

/// Checks the status and type of an answer and reads its body within the cap.
async fn read_answer(
    head: &http::response::Parts,
    mut body: hyper::body::Incoming,
    rules: &GetRules,
    url: &str,
) -> Result<Fetched, OutboundError> {
    if !head.status.is_success() {
        return Err(OutboundError::Status(head.status.as_u16()));
    }
    let content_type = head.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (mime, charset) = parse_content_type(content_type);
    let accepted = rules.accept.iter().any(|a| if a.ends_with('/') { mime.starts_with(a) } else { mime == *a });
    if !accepted {
        return Err(OutboundError::Type(if mime.is_empty() { "none".into() } else { mime }));
    }
    if !rules.truncate
        && let Some(len) = head.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > rules.max_bytes as u64
    {
        return Err(OutboundError::TooLarge(rules.max_bytes));
    }
    let mut buf = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| OutboundError::Failed(format!("the answer: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        let room = rules.max_bytes - buf.len();
        if data.len() > room {
            if !rules.truncate {
                return Err(OutboundError::TooLarge(rules.max_bytes));
            }
            buf.extend_from_slice(&data[..room]);
            truncated = true;
            break;
        }
        buf.extend_from_slice(&data);
    }
    Ok(Fetched { url: url.to_owned(), mime, charset, body: Bytes::from(buf), truncated })
}

/// `text/html; charset=UTF-8` -> (`text/html`, `Some("utf-8")`).
fn parse_content_type(v: &str) -> (String, Option<String>) {
    let mut parts = v.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    });
    (mime, charset)
}

async fn exchange<I>(io: I, t: &Target, req: http::Request<Vec<u8>>, max_answer: usize) -> Result<Answer, OutboundError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| OutboundError::Failed(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| failed(&e))?;
    let driver = tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    // HTTP/1.1 wants the origin form and a Host header.
    parts.uri = t.uri.path_and_query().map_or("/", |p| p.as_str()).parse().map_err(|e: http::uri::InvalidUri| failed(&e))?;
    parts.headers.insert(http::header::HOST, t.host_header().parse().map_err(|e: http::header::InvalidHeaderValue| failed(&e))?);
    let res = sender.send_request(http::Request::from_parts(parts, Full::new(Bytes::from(body)))).await.map_err(|e| failed(&e));
    let out = match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after =
                res.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
            let body = Limited::new(res.into_body(), max_answer)
                .collect()
                .await
                .map_err(|e| OutboundError::Failed(format!("the answer: {e}")))?
                .to_bytes();
            Ok(Answer { status, retry_after, body })
        }
        Err(e) => Err(e),
    };
    driver.abort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(allow_http: bool, allow: &[&str]) -> Outbound {
        let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
        Outbound::new(AddressPolicy::parse("test", &allow).unwrap(), allow_http, Duration::from_secs(2))
    }

    #[test]
    fn content_types_are_split_into_type_and_charset() {
        assert_eq!(parse_content_type("text/html; charset=\"UTF-8\""), ("text/html".into(), Some("utf-8".into())));
        assert_eq!(parse_content_type("Image/PNG"), ("image/png".into(), None));
        assert_eq!(parse_content_type(""), (String::new(), None));
    }

    #[test]
    fn only_https_urls_with_a_host_and_no_user_info_pass_the_form_check() {
        let c = client(false, &[]);
        assert!(c.check_url("https://fcm.googleapis.com/fcm/send/abc").is_ok());
        for bad in ["http://push.example.net/x", "ftp://x/y", "https://user:pw@push.example.net/", "/relative", "https:///x", "not a url"] {
            assert!(matches!(c.check_url(bad), Err(OutboundError::Refused(_))), "{bad}");
        }
        assert!(client(true, &[]).check_url("http://push.example.net/x").is_ok(), "allow_http opens plain http");
        let t = c.check_url("https://[2001:db8::1]:8443/p?q=1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.origin()), ("2001:db8::1", 8443, "https://[2001:db8::1]:8443".to_owned()));
        assert_eq!(c.check_url("https://push.example.net/x").unwrap().origin(), "https://push.example.net");
    }

    /// No packet: literal addresses are judged without a lookup.
    #[tokio::test]
    async fn literal_private_loopback_and_metadata_addresses_are_refused_unless_opened() {
        let c = client(true, &[]);
        for url in [
            "http://127.0.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://224.0.0.1/",
        ] {
            let t = c.check_url(url).unwrap();
            assert!(matches!(c.resolve(&t).await, Err(OutboundError::Refused(_))), "{url}");
        }
        let opened = client(true, &["127.0.0.1/32"]);
        let t = opened.check_url("http://127.0.0.1:9/").unwrap();
        assert_eq!(opened.resolve(&t).await.unwrap(), "127.0.0.1:9".parse().unwrap());
        let t = opened.check_url("http://0.0.0.0:9/").unwrap();
        assert!(opened.resolve(&t).await.is_err(), "0.0.0.0 stays refused whatever the allow-list says");
    }
}
