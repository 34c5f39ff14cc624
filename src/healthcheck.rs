//! `chinwag healthcheck`: asks the running server's `/healthz` over loopback and says whether it
//! answered `200 ok`. The container image's `HEALTHCHECK` runs it, so the image needs no curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The address to ask: the listen address, with an unspecified IP (`0.0.0.0`, `::`) replaced by
/// the loopback address of its family.
pub fn target(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// Sends `GET /healthz` to `addr` and returns `Ok` when the answer is `200` with the body `ok`,
/// within `timeout` for the connection and again for each read and write.
pub fn check(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("cannot send to {addr}: {e}"))?;
    // The answer is a few dozen bytes; read at most 8 KiB of it.
    let mut answer = Vec::new();
    stream.take(8192).read_to_end(&mut answer).map_err(|e| format!("no answer from {addr}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if status.split_whitespace().nth(1) == Some("200") && body.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("{addr}/healthz answered {status:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server on loopback that answers the first request with `answer`.
    fn answering(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(answer.as_bytes());
        });
        addr
    }

    #[test]
    fn unspecified_addresses_become_loopback() {
        assert_eq!(target("0.0.0.0:8080".parse().unwrap()), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(target("[::]:8080".parse().unwrap()), "[::1]:8080".parse().unwrap());
        assert_eq!(target("127.0.0.2:81".parse().unwrap()), "127.0.0.2:81".parse().unwrap());
    }

    #[test]
    fn ok_only_for_200_with_body_ok() {
        let t = Duration::from_secs(5);
        let good = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(check(good, t), Ok(()));
        let down = answering("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nok");
        assert!(check(down, t).unwrap_err().contains("503"));
        let other = answering("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnope");
        assert!(check(other, t).is_err());
    }

    #[test]
    fn nothing_listening_is_an_error() {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(check(addr, Duration::from_secs(2)).unwrap_err().contains("cannot connect"));
    }
}
