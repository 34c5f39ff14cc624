//! Which peers the TURN relay may send to: a pure verdict over addresses, so that it is tested
//! exhaustively without sending a packet.
//!
//! A relay that forwards to any address is an open proxy into the server's own network (coturn
//! CVE-2020-26262 reached loopback through `0.0.0.0` and `::`). By default everything that is not
//! a public unicast address is refused: loopback, private, shared (CGNAT), link-local (with the
//! cloud metadata address), multicast and broadcast, unspecified, documentation and benchmark
//! ranges, reserved space, IPv6 unique-local and site-local, and IPv6 forms that embed an IPv4
//! address (mapped, compatible, NAT64, 6to4, Teredo) are judged by that address. An allow-list
//! (`turn.allow_peers`) opens chosen ranges for LAN installs. Unspecified, multicast and
//! broadcast addresses, and the server's own service ports, stay refused whatever it says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address range such as `192.168.1.0/24` or `fd00::/8`; a bare address is a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { net: addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        (a[full] & mask) == (b[full] & mask)
    }
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    prefix_eq(&ip.octets(), &net, prefix)
}

/// IPv4 ranges that are never a public peer (RFC 6890 and friends).
const V4_DENIED: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network", including 0.0.0.0 (reaches loopback on Linux)
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, with the cloud metadata address 169.254.169.254
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the broadcast address
];

/// Whether an IPv4 address is outside public unicast space.
pub fn v4_is_special(ip: Ipv4Addr) -> bool {
    V4_DENIED.iter().any(|(net, p)| v4_in(ip, *net, *p))
}

/// The IPv4 address an IPv6 address stands for, for the forms that carry one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let seg = ip.segments();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4); // ::ffff:a.b.c.d
    }
    if seg[..6] == [0; 6] && !(seg[6] == 0 && seg[7] <= 1) {
        return Some(tail); // ::a.b.c.d (IPv4-compatible, deprecated)
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail); // 64:ff9b::/96 well-known NAT64 prefix
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])); // 6to4
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        // Teredo: the client's address is the last 32 bits, inverted.
        return Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    None
}

/// Whether an IPv6 address is outside public unicast space, judging embedded IPv4 addresses by
/// the IPv4 rules.
pub fn v6_is_special(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return v4_is_special(v4);
    }
    let seg = ip.segments();
    let in6 = |net: [u16; 8], prefix: u8| {
        let n: Ipv6Addr = net.into();
        prefix_eq(&n.octets(), &ip.octets(), prefix)
    };
    seg[..6] == [0; 6] // the rest of ::/96
        || in6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48) // local-use NAT64
        || in6([0x100, 0, 0, 0, 0, 0, 0, 0], 64) // discard-only
        || in6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23) // IETF protocol assignments
        || in6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32) // documentation
        || in6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20) // documentation (RFC 9637)
        || in6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7) // unique-local
        || in6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10) // link-local
        || in6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10) // site-local (deprecated)
}

/// Addresses no allow-list can open: they reach the server itself or many hosts at once.
fn never(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// The relay's verdict on peers.
#[derive(Clone, Debug, Default)]
pub struct PeerFilter {
    allow: Vec<Cidr>,
    /// The server's own service sockets (TURN listen, HTTP); refused always.
    own: Vec<SocketAddr>,
}

impl PeerFilter {
    /// `allow` are `turn.allow_peers`; an entry that is not a range is an error naming it.
    pub fn new(allow: &[String], own: Vec<SocketAddr>) -> Result<PeerFilter, String> {
        let allow = allow
            .iter()
            .map(|s| Cidr::parse(s).ok_or_else(|| format!("turn.allow_peers: `{s}` is not an address range like 192.168.1.0/24")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PeerFilter { allow, own })
    }

    /// Whether the relay may exchange packets with `peer`.
    pub fn allows(&self, peer: SocketAddr) -> bool {
        // `::ffff:127.0.0.1` is 127.0.0.1: judge (and match the allow-list) in one form.
        let ip = peer.ip().to_canonical();
        if never(ip) || self.is_own(ip, peer.port()) {
            return false;
        }
        let special = match ip {
            IpAddr::V4(v4) => v4_is_special(v4),
            IpAddr::V6(v6) => v6_is_special(v6),
        };
        !special || self.allow.iter().any(|c| c.contains(ip))
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
        assert_eq!(Cidr::parse("192.168.1.0/24").map(|c| c.prefix), Some(24));
        assert_eq!(Cidr::parse("10.0.0.7").map(|c| c.prefix), Some(32));
        assert_eq!(Cidr::parse("fd00::/8").map(|c| c.prefix), Some(8));
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
