//! Contacts and groups: the rules (pure functions over the stored state) and their routes.
//!
//! Architecture invariant: rules take the state the store loaded inside the write transaction
//! and return a change or a `Refusal`; they do no I/O, so they are tested without a server.

pub mod contacts;
pub mod group_invites;
pub mod group_routes;
pub mod groups;
