//! Log lines for peers the relay refuses, rate-limited per peer range, so that an operator sees
//! why calls fail (usually `turn.public_ip` in a range the relay refuses, or a LAN install
//! without `turn.allow_peers`) without one line per packet.
//!
//! At most one line per [`WINDOW`] per range (an IPv4 /24 or an IPv6 /48), carrying how many
//! refusals it stands for. The table holds at most [`MAX_RANGES`] ranges; past that, refusals
//! from new ranges are counted in the stats but not logged until old entries expire.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most one line per range this often.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Ranges remembered at once.
pub const MAX_RANGES: usize = 1024;

/// A peer range a line speaks for: the peer's IPv4 /24 or IPv6 /48.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerRange {
    V4([u8; 3]),
    V6([u16; 3]),
}

impl PeerRange {
    pub fn of(ip: IpAddr) -> PeerRange {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                PeerRange::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                PeerRange::V6([s[0], s[1], s[2]])
            }
        }
    }
}

impl fmt::Display for PeerRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PeerRange::V4([a, b, c]) => write!(f, "{}/24", Ipv4Addr::new(a, b, c, 0)),
            PeerRange::V6([a, b, c]) => write!(f, "{}/48", Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0)),
        }
    }
}

#[derive(Debug)]
struct Entry {
    logged_at: Instant,
    /// Refusals since the last line.
    since: u64,
}

/// Which refusals get a line. Cheap to call on every refused message: one short lock.
#[derive(Debug, Default)]
pub struct RefusalLog {
    ranges: Mutex<HashMap<PeerRange, Entry>>,
}

impl RefusalLog {
    /// A refusal of `peer` at `now`: `Some(count)` when a line is due, with the refusals of that
    /// range it stands for (this one included); `None` to stay quiet.
    pub fn note(&self, peer: IpAddr, now: Instant) -> Option<(PeerRange, u64)> {
        let range = PeerRange::of(peer);
        let mut map = self.ranges.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = map.get_mut(&range) {
            e.since += 1;
            if now.saturating_duration_since(e.logged_at) < WINDOW {
                return None;
            }
            let count = e.since;
            *e = Entry { logged_at: now, since: 0 };
            return Some((range, count));
        }
        if map.len() >= MAX_RANGES {
            map.retain(|_, e| now.saturating_duration_since(e.logged_at) < WINDOW);
            if map.len() >= MAX_RANGES {
                return None;
            }
        }
        map.insert(range, Entry { logged_at: now, since: 0 });
        Some((range, 1))
    }

    /// Notes a refused message from `client` towards `peers` and logs a line when one is due.
    pub fn refused(&self, client: SocketAddr, peer: IpAddr) {
        if let Some((range, count)) = self.note(peer, Instant::now()) {
            tracing::info!(
                %client,
                %peer,
                %range,
                refused = count,
                "TURN relay refused a peer outside the allowed ranges; calls through it cannot connect. \
                 Check turn.public_ip (the relay refuses private and local addresses, so relays advertised on one cannot reach each other) \
                 or open the range with turn.allow_peers"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn one_line_per_range_per_window_with_the_count_it_stands_for() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        let local = PeerRange::of(ip("127.0.0.1"));
        assert_eq!(log.note(ip("127.0.0.1"), t0), Some((local, 1)), "the first refusal is logged at once");
        for i in 0..5 {
            assert_eq!(log.note(ip("127.0.0.9"), t0 + Duration::from_secs(i)), None, "the same /24 within 10 s stays quiet");
        }
        // Another range has its own budget.
        assert_eq!(log.note(ip("10.1.2.3"), t0), Some((PeerRange::of(ip("10.1.2.3")), 1)));
        // After the window, one line counts the five quiet ones and this one.
        assert_eq!(log.note(ip("127.0.0.2"), t0 + WINDOW), Some((local, 6)));
        assert_eq!(log.note(ip("127.0.0.2"), t0 + WINDOW + Duration::from_secs(1)), None);
        assert_eq!(log.note(ip("127.0.0.2"), t0 + WINDOW * 3), Some((local, 2)));
    }

    #[test]
    fn ranges_are_a_v4_slash_24_or_a_v6_slash_48_and_mapped_addresses_count_as_v4() {
        assert_eq!(PeerRange::of(ip("192.168.1.77")).to_string(), "192.168.1.0/24");
        assert_eq!(PeerRange::of(ip("::ffff:192.168.1.5")), PeerRange::of(ip("192.168.1.200")));
        assert_eq!(PeerRange::of(ip("fd12:3456:789a:1::1")).to_string(), "fd12:3456:789a::/48");
        assert_ne!(PeerRange::of(ip("127.0.0.1")), PeerRange::of(ip("127.0.1.1")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded_and_makes_room_as_entries_expire() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        for i in 0..MAX_RANGES {
            let [a, b] = u16::try_from(i).unwrap().to_be_bytes();
            assert!(log.note(IpAddr::V4(Ipv4Addr::new(10, a, b, 1)), t0).is_some());
        }
        assert_eq!(log.note(ip("203.0.113.1"), t0), None, "full: a new range is not logged");
        assert_eq!(log.note(ip("203.0.113.1"), t0 + WINDOW), Some((PeerRange::of(ip("203.0.113.1")), 1)), "room once old ones expire");
    }
}
