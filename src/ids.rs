//! Newtype identifiers and validate-once value types shared by every feature.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// A user's numeric id, assigned by the store in registration order (the first user is 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct UserId(pub u64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A conversation: a 1:1 chat between two users (stored lower id first) or a group.
///
/// On the wire it is a string, `d:<low>:<high>` or `g:<group>`; in the store it is the key
/// prefix `(low, high)` for a 1:1 chat and `(0, group)` for a group, so every message key of one
/// conversation is contiguous and appended in sequence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvId {
    Direct(UserId, UserId),
    Group(u64),
}

impl ConvId {
    /// The 1:1 conversation of two distinct users, in canonical order.
    pub fn direct(a: UserId, b: UserId) -> Option<ConvId> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Some(ConvId::Direct(a, b)),
            std::cmp::Ordering::Greater => Some(ConvId::Direct(b, a)),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// The store's two-number key prefix.
    pub fn key(self) -> (u64, u64) {
        match self {
            ConvId::Direct(a, b) => (a.0, b.0),
            ConvId::Group(g) => (0, g),
        }
    }

    pub fn from_key((a, b): (u64, u64)) -> ConvId {
        if a == 0 { ConvId::Group(b) } else { ConvId::Direct(UserId(a), UserId(b)) }
    }

    /// For a 1:1 conversation that `me` is part of, the other participant.
    pub fn peer_of(self, me: UserId) -> Option<UserId> {
        match self {
            ConvId::Direct(a, b) if a == me => Some(b),
            ConvId::Direct(a, b) if b == me => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for ConvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvId::Direct(a, b) => write!(f, "d:{a}:{b}"),
            ConvId::Group(g) => write!(f, "g:{g}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("not a conversation id (expected d:<low>:<high> or g:<id>)")]
pub struct BadConvId;

impl FromStr for ConvId {
    type Err = BadConvId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let num = |p: &str| -> Result<u64, BadConvId> {
            // Leading zeros or signs would give two spellings of one id.
            if p.is_empty() || p.len() > 20 || !p.bytes().all(|c| c.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0')) {
                return Err(BadConvId);
            }
            p.parse().map_err(|_| BadConvId)
        };
        let mut parts = s.split(':');
        let conv = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("d"), Some(a), Some(b), None) => {
                let (a, b) = (num(a)?, num(b)?);
                if a == 0 || a >= b {
                    return Err(BadConvId);
                }
                ConvId::Direct(UserId(a), UserId(b))
            }
            (Some("g"), Some(g), None, None) => {
                let g = num(g)?;
                if g == 0 {
                    return Err(BadConvId);
                }
                ConvId::Group(g)
            }
            _ => return Err(BadConvId),
        };
        Ok(conv)
    }
}

impl Serialize for ConvId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConvId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for ConvId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^(d:[1-9][0-9]*:[1-9][0-9]*|g:[1-9][0-9]*)$"))
            .examples(["d:3:7"])
            .into()
    }
}
impl ToSchema for ConvId {}

/// A username: 3 to 32 characters of `a-z 0-9 _ . -`, stored lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Option<Username> {
        let s = raw.trim().to_ascii_lowercase();
        let ok = (3..=32).contains(&s.len())
            && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'));
        ok.then_some(Username(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_ids_round_trip_and_reject_other_spellings() {
        for s in ["d:1:2", "d:3:70000000000", "g:1", "g:18446744073709551615"] {
            let c: ConvId = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
            assert_eq!(ConvId::from_key(c.key()), c);
        }
        for s in ["", "d:2:1", "d:1:1", "d:0:1", "d:01:2", "d:+1:2", "g:0", "g:-1", "x:1", "d:1:2:3", "g:1:", "d:1:18446744073709551616"] {
            assert_eq!(s.parse::<ConvId>(), Err(BadConvId), "{s}");
        }
    }

    #[test]
    fn direct_is_symmetric() {
        assert_eq!(ConvId::direct(UserId(7), UserId(3)), ConvId::direct(UserId(3), UserId(7)));
        assert_eq!(ConvId::direct(UserId(3), UserId(3)), None);
        let c = ConvId::direct(UserId(7), UserId(3)).unwrap();
        assert_eq!(c.peer_of(UserId(3)), Some(UserId(7)));
        assert_eq!(c.peer_of(UserId(9)), None);
    }

    #[test]
    fn usernames_are_validated_and_lowercased() {
        assert_eq!(Username::parse(" Ann_1 ").unwrap().as_str(), "ann_1");
        for bad in ["ab", "a b c", "ünï", "x".repeat(33).as_str(), "a/b"] {
            assert!(Username::parse(bad).is_none(), "{bad}");
        }
    }
}
