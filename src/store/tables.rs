//! Table definitions. Each name reads key-to-value; the comment gives the key layout.

use redb::{TableDefinition, WriteTransaction};

use super::StoreError;

/// setting name -> number (`schema_version`, `next_user_id`)
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// user id -> JSON `UserRecord`
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("userid_user");
/// lower-cased username, phone or e-mail -> user id
pub const LOGIN_NAMES: TableDefinition<&str, u64> = TableDefinition::new("loginname_userid");
/// SHA-256 of a session token -> JSON `SessionRecord`
pub const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokenhash_session");
/// (user id, SHA-256 of a session token) -> (), to find and revoke a user's sessions
pub const USER_SESSIONS: TableDefinition<(u64, &[u8; 32]), ()> =
    TableDefinition::new("userid_tokenhash");
/// (conversation key low, high, seq) -> JSON `Message`; one conversation's keys are contiguous
pub const MESSAGES: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("conv_seq_message");
/// (conversation key low, high) -> last seq
pub const CONV_HEADS: TableDefinition<(u64, u64), u64> = TableDefinition::new("conv_lastseq");
/// (sender id, client id) -> (conversation key low, high, seq) of the message it created
pub const CLIENT_IDS: TableDefinition<(u64, &str), (u64, u64, u64)> =
    TableDefinition::new("sender_clientid_msgkey");
/// (user id, conversation key low, high) -> time of the last message, ms
pub const USER_CONVS: TableDefinition<(u64, u64, u64), u64> =
    TableDefinition::new("userid_conv_lastts");

/// Creates every table of schema 1.
pub fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(USERS)?;
    txn.open_table(LOGIN_NAMES)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(USER_SESSIONS)?;
    txn.open_table(MESSAGES)?;
    txn.open_table(CONV_HEADS)?;
    txn.open_table(CLIENT_IDS)?;
    txn.open_table(USER_CONVS)?;
    Ok(())
}
