//! `Refusal`: why a domain rule said no, shared by every feature. The HTTP layer turns it into a
//! status code and the socket layer into an error frame, so a rule is written once.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Does not exist, or is not visible to the caller (the two look the same).
    NotFound(&'static str),
    /// Exists, and the caller may see it, but may not do this.
    Forbidden(&'static str),
    /// Would contradict the current state (already contacts, already a member, ...).
    Conflict(&'static str),
    /// The input is wrong.
    Invalid(String),
    /// A count limit is reached.
    TooMany(&'static str),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound(_) => "not_found",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::Conflict(_) => "conflict",
            Refusal::Invalid(_) => "invalid",
            Refusal::TooMany(_) => "limit_reached",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::NotFound(m) | Refusal::Forbidden(m) | Refusal::Conflict(m) | Refusal::TooMany(m) => (*m).to_owned(),
            Refusal::Invalid(m) => m.clone(),
        }
    }
}
