//! WebSocket close codes with a meaning in this protocol.

pub const GOING_AWAY: u16 = 1001;
pub const TOO_BIG: u16 = 1009;
pub const SESSION_REVOKED: u16 = 4001;
pub const TOO_SLOW: u16 = 4008;
