//! The address verdict shared by everything that sends packets where a user points it: the TURN
//! relay's peers and the server's outbound requests (push endpoints). Pure, so it is tested
//! exhaustively without sending a packet (the range tables are tested through `calls::filter`).
//!
//! By default everything that is not a public unicast address is refused: loopback, private,
//! shared (CGNAT), link-local (with the cloud metadata address), multicast and broadcast,
//! unspecified, documentation and benchmark ranges, reserved space, IPv6 unique-local and
//! site-local, and IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4,
//! Teredo) are judged by that address. An allow-list opens chosen ranges for LAN installs and
//! tests; unspecified, multicast and broadcast addresses stay refused whatever it says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
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
pub fn never(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// Which addresses may be reached: public unicast ones, and the ranges of an allow-list.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    allow: Vec<Cidr>,
}

impl AddressPolicy {
    pub fn new(allow: Vec<Cidr>) -> AddressPolicy {
        AddressPolicy { allow }
    }

    /// Parses an allow-list setting; an entry that is not a range is an error naming `setting`.
    pub fn parse(setting: &str, allow: &[String]) -> Result<AddressPolicy, String> {
        let allow = allow
            .iter()
            .map(|s| Cidr::parse(s).ok_or_else(|| format!("{setting}: `{s}` is not an address range like 192.168.1.0/24")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AddressPolicy { allow })
    }

    /// Whether `ip` may be reached.
    pub fn allows(&self, ip: IpAddr) -> bool {
        // `::ffff:127.0.0.1` is 127.0.0.1: judge (and match the allow-list) in one form.
        let ip = ip.to_canonical();
        if never(ip) {
            return false;
        }
        let special = match ip {
            IpAddr::V4(v4) => v4_is_special(v4),
            IpAddr::V6(v6) => v6_is_special(v6),
        };
        !special || self.allow.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every range the link previews and the push client must never reach, judged without
    /// sending a packet.
    #[test]
    fn every_non_public_range_is_refused_by_default() {
        let p = AddressPolicy::default();
        for bad in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.1",
            "169.254.169.254", // cloud metadata
            "169.254.0.1",
            "100.64.0.1", // CGNAT
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "192.0.2.1", // documentation
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1", // benchmarking 198.18/15
            "198.19.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1", // IPv4-mapped
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1", // IPv4-compatible
            "fc00::1",     // unique-local fc00::/7
            "fd12:3456::1",
            "fe80::1",
            "fec0::1", // site-local fec0::/10
            "feff::1",
            "ff02::1",
            "2001:db8::1",
            "2002:7f00:1::1",                       // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1",                    // 6to4 of the metadata address
            "2002:c0a8:101::",                      // 6to4 of 192.168.1.1
            "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1 (inverted)
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1
            "64:ff9b::7f00:1",                      // NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe",                   // NAT64 of 169.254.169.254
            "64:ff9b::c612:1",                      // NAT64 of 198.18.0.1
            "64:ff9b:1::1",                         // local-use NAT64
        ] {
            assert!(!p.allows(ip(bad)), "{bad} must be refused");
        }
    }

    #[test]
    fn public_addresses_and_their_embedded_forms_pass() {
        let p = AddressPolicy::default();
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "198.17.255.255",
            "198.20.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7", // Teredo, client 8.8.8.8
        ] {
            assert!(p.allows(ip(good)), "{good} is public");
        }
    }

    #[test]
    fn an_allow_list_opens_exactly_its_ranges_but_never_unspecified_or_multicast() {
        let p = AddressPolicy::parse("links.allow", &["127.0.0.1/32".into(), "fd00::/8".into(), "224.0.0.0/4".into()]).unwrap();
        assert!(p.allows(ip("127.0.0.1")));
        assert!(p.allows(ip("::ffff:127.0.0.1")), "the mapped form is the same address");
        assert!(!p.allows(ip("127.0.0.2")), "only the opened host");
        assert!(p.allows(ip("fd00::5")));
        assert!(!p.allows(ip("fc00::5")));
        assert!(!p.allows(ip("224.0.0.1")), "multicast stays closed");
        assert!(!p.allows(ip("0.0.0.0")));
        assert!(AddressPolicy::parse("links.allow", &["not a range".into()]).unwrap_err().contains("links.allow"));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
    }
}
