//! Which peers the TURN relay may send to: the shared address verdict (`crate::address`, which
//! outbound requests use too) plus the server's own ports, tested exhaustively without sending a
//! packet.
//!
//! A relay that forwards to any address is an open proxy into the server's own network (coturn
//! CVE-2020-26262 reached loopback through `0.0.0.0` and `::`). By default everything that is not
//! a public unicast address is refused: loopback, private, shared (CGNAT), link-local (with the
//! cloud metadata address), multicast and broadcast, unspecified, documentation and benchmark
//! ranges, reserved space, IPv6 unique-local and site-local, and IPv6 forms that embed an IPv4
//! address (mapped, compatible, NAT64, 6to4, Teredo) are judged by that address. An allow-list
//! (`turn.allow_peers`) opens chosen ranges for LAN installs. Unspecified, multicast and
//! broadcast addresses, and the server's own service ports, stay refused whatever it says.

use std::net::{IpAddr, SocketAddr};

use crate::address::AddressPolicy;
pub use crate::address::Cidr;

/// The relay's verdict on peers.
#[derive(Clone, Debug, Default)]
pub struct PeerFilter {
    policy: AddressPolicy,
    /// The server's own service sockets (TURN listen, HTTP); refused always.
    own: Vec<SocketAddr>,
}

impl PeerFilter {
    /// `allow` are `turn.allow_peers`; an entry that is not a range is an error naming it.
    pub fn new(allow: &[String], own: Vec<SocketAddr>) -> Result<PeerFilter, String> {
        Ok(PeerFilter { policy: AddressPolicy::parse("turn.allow_peers", allow)?, own })
    }

    /// Whether the relay may exchange packets with `peer`.
    pub fn allows(&self, peer: SocketAddr) -> bool {
        !self.is_own(peer.ip().to_canonical(), peer.port()) && self.policy.allows(peer.ip())
    }

    fn is_own(&self, ip: IpAddr, port: u16) -> bool {
        self.own.iter().any(|o| {
            let oip = o.ip().to_canonical();
            o.port() == port && (oip == ip || oip.is_unspecified() || ip.is_loopback())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        match s.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => SocketAddr::new(s.parse().unwrap(), 5000),
        }
    }

    fn default_filter() -> PeerFilter {
        PeerFilter::new(&[], vec![sa("0.0.0.0:3478"), sa("0.0.0.0:8080")]).unwrap()
    }

    /// Every sample of every denied range, as the brief and the security plan (S15) list them.
    /// No packet is sent: this is the verdict alone.
    const DENIED: &[&str] = &[
        // loopback, in every spelling
        "127.0.0.1",
        "127.0.0.2",
        "127.255.255.254",
        "::1",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        // unspecified
        "0.0.0.0",
        "0.1.2.3",
        "::",
        "::ffff:0.0.0.0",
        // private
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        "::ffff:10.1.2.3",
        "::ffff:192.168.1.1",
        "64:ff9b::a00:1",
        "2002:c0a8:101::1",
        // link-local and metadata
        "169.254.0.1",
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "fe80::1",
        "febf::1",
        // CGNAT
        "100.64.0.1",
        "100.127.255.255",
        // multicast and broadcast
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "ff02::1",
        "ff05::1:3",
        "::ffff:224.0.0.251",
        // unique-local and site-local
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        // documentation, benchmarking, reserved
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "198.19.255.255",
        "240.0.0.1",
        "192.0.0.8",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "64:ff9b:1::1",
        // Teredo hiding 127.0.0.1 (inverted: 80ff:fffe)
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ];

    const ALLOWED: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.255.255",
        "192.169.0.1",
        "11.0.0.1",
        "::ffff:8.8.8.8",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82b::200e",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];

    #[test]
    fn the_default_refuses_every_non_public_range() {
        let f = default_filter();
        for s in DENIED {
            assert!(!f.allows(sa(s)), "{s} must be refused");
        }
        for s in ALLOWED {
            assert!(f.allows(sa(s)), "{s} must be allowed");
        }
    }

    #[test]
    fn range_boundaries_are_exact() {
        let f = default_filter();
        for (inside, outside) in [
            ("10.255.255.255", "11.0.0.0"),
            ("172.16.0.0", "172.15.255.255"),
            ("172.31.255.255", "172.32.0.0"),
            ("192.168.0.0", "192.167.255.255"),
            ("100.64.0.0", "100.63.255.255"),
            ("100.127.255.255", "100.128.0.0"),
            ("169.254.255.255", "169.255.0.0"),
            ("224.0.0.0", "223.255.255.255"),
        ] {
            assert!(!f.allows(sa(inside)), "{inside}");
            assert!(f.allows(sa(outside)), "{outside}");
        }
        assert!(f.allows(sa("fbff:ffff::1")), "just below fc00::/7");
        assert!(!f.allows(sa("fc00::")));
        assert!(!f.allows(sa("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(f.allows(sa("fe00::1")), "fe00::/9 is not link-local");
    }

    #[test]
    fn the_allow_list_opens_chosen_ranges_only() {
        let f = PeerFilter::new(&["192.168.1.0/24".into(), "127.0.0.0/8".into(), "fd00::/8".into()], vec![sa("0.0.0.0:3478")]).unwrap();
        assert!(f.allows(sa("192.168.1.20:5000")));
        assert!(!f.allows(sa("192.168.2.20:5000")));
        assert!(!f.allows(sa("10.0.0.1:5000")));
        assert!(!f.allows(sa("169.254.169.254:80")));
        assert!(f.allows(sa("127.0.0.1:40000")));
        assert!(f.allows(sa("[::ffff:127.0.0.1]:40000")), "mapped addresses match the IPv4 range");
        assert!(f.allows(sa("[fd00::5]:40000")));
        assert!(!f.allows(sa("[::1]:40000")), "::1 is not in 127.0.0.0/8");
        // Never, whatever the list says: unspecified, multicast, broadcast, and our own ports.
        let wide = PeerFilter::new(&["0.0.0.0/0".into(), "::/0".into()], vec![sa("0.0.0.0:3478"), sa("127.0.0.1:8080")]).unwrap();
        for s in ["0.0.0.0:5000", "[::]:5000", "224.0.0.1:5000", "255.255.255.255:5000", "[ff02::1]:5000", "[::ffff:0.0.0.0]:5000"] {
            assert!(!wide.allows(sa(s)), "{s}");
        }
        assert!(!wide.allows(sa("127.0.0.1:3478")), "the TURN port itself");
        assert!(!wide.allows(sa("127.0.0.1:8080")), "the HTTP port");
        assert!(!wide.allows(sa("[::ffff:127.0.0.1]:3478")));
        assert!(wide.allows(sa("127.0.0.1:3479")));
        assert!(wide.allows(sa("10.1.2.3:5000")));
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(Cidr::parse("192.168.1.0/24").map(|c| c.prefix()), Some(24));
        assert_eq!(Cidr::parse("10.0.0.7").map(|c| c.prefix()), Some(32));
        assert_eq!(Cidr::parse("fd00::/8").map(|c| c.prefix()), Some(8));
        for bad in ["", "192.168.1.0/33", "fd00::/129", "nope", "10.0.0.0/x", "10.0.0/8"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        assert!(PeerFilter::new(&["192.168.1.0/99".into()], vec![]).unwrap_err().contains("192.168.1.0/99"));
        let c = Cidr::parse("172.16.0.0/12").unwrap();
        assert!(c.contains("172.20.1.1".parse().unwrap()));
        assert!(!c.contains("172.32.0.0".parse().unwrap()));
        assert!(!c.contains("::ffff:172.20.1.1".parse().unwrap()), "families do not mix");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
    }
}
