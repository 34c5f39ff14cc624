//! Table definitions. Each name reads key-to-value; the comment gives the key layout.
//! A conversation key is `(low, high)` for a 1:1 chat and `(0, group id)` for a group.

use redb::{TableDefinition, WriteTransaction};

use super::StoreError;

/// setting name -> number (`schema_version`, `next_user_id`, `next_group_id`)
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// user id -> JSON `UserRecord`
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("userid_user");
/// lower-cased username, phone or e-mail -> user id
pub const LOGIN_NAMES: TableDefinition<&str, u64> = TableDefinition::new("loginname_userid");
/// SHA-256 of a session token -> JSON `SessionRecord`
pub const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokenhash_session");
/// (user id, SHA-256 of a session token) -> (), to find and revoke a user's sessions
pub const USER_SESSIONS: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("userid_tokenhash");
/// message number (grows in commit order) -> JSON `Message` (`log.rs`)
pub const MESSAGE_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("msgno_message");
/// (conversation key, seq) -> message number in `MESSAGE_LOG`, for every sixteenth seq (and every
/// message stored before schema 7); one conversation's keys are contiguous
pub const MESSAGE_INDEX: TableDefinition<(u64, u64, u64), u64> = TableDefinition::new("conv_seq_msgno");
/// conversation key -> (seq, message number) of its newest message, where its chain of links begins
pub const CONV_TAILS: TableDefinition<(u64, u64), (u64, u64)> = TableDefinition::new("conv_lastseq_msgno");
/// conversation key -> (last seq, last rev, seq of the last @all)
pub const CONV_HEADS: TableDefinition<(u64, u64), (u64, u64, u64)> = TableDefinition::new("conv_head");
/// (conversation key, rev) -> seq of the message that change touched
pub const REVS: TableDefinition<(u64, u64, u64), u64> = TableDefinition::new("conv_rev_seq");
/// (conversation key, quoted seq, reply seq) -> (): replies that quote a message (a recall rewrites them)
pub const REPLIES: TableDefinition<(u64, u64, u64, u64), ()> = TableDefinition::new("conv_quotedseq_replyseq");
/// (sender id, client id) -> (conversation key, seq) of the message it created
pub const CLIENT_IDS: TableDefinition<(u64, &str), (u64, u64, u64)> = TableDefinition::new("sender_clientid_msgkey");
/// (user id, conversation key) -> JSON `UserConv`: the user's view of a conversation they are in
pub const USER_CONVS: TableDefinition<(u64, u64, u64), &[u8]> = TableDefinition::new("userid_conv_state");
/// (conversation key, user id) -> seq the user has read up to
pub const READS: TableDefinition<(u64, u64, u64), u64> = TableDefinition::new("conv_userid_readseq");
/// (user id, conversation key, seq) -> (): messages that mention the user
pub const MENTIONS: TableDefinition<(u64, u64, u64, u64), ()> = TableDefinition::new("userid_conv_seq_mention");
/// (search token, conversation key, seq) -> (): the full-text index
pub const SEARCH: TableDefinition<(&str, u64, u64, u64), ()> = TableDefinition::new("token_conv_seq");
/// (user id, other user id) -> JSON `ContactSide`: the user's side of the relation
pub const CONTACTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("userid_otherid_contact");
/// (to user id, from user id) -> JSON `RequestRecord`
pub const REQUESTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("toid_fromid_request");
/// (from user id, to user id) -> (): outgoing requests
pub const REQUESTS_OUT: TableDefinition<(u64, u64), ()> = TableDefinition::new("fromid_toid");
/// group id -> JSON `GroupRecord`
pub const GROUPS: TableDefinition<u64, &[u8]> = TableDefinition::new("groupid_group");
/// (group id, user id) -> JSON `MemberRecord`
pub const MEMBERS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("groupid_userid_member");
/// (group id, user id) -> JSON `Application`: pending requests to join
pub const APPLICATIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("groupid_userid_application");
/// file id (32 hex digits) -> JSON `FileRecord`
pub const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("fileid_file");
/// Schema 1 only, dropped by the migration to 2: (file id, conversation key) -> ().
pub const FILE_CONVS: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("fileid_conv");
/// (file id, conversation key, seq) -> (): the messages a file was sent in that are not
/// recalled; their conversations' members may download it
pub const FILE_MSGS: TableDefinition<(&str, u64, u64, u64), ()> = TableDefinition::new("fileid_conv_seq");
/// (file id, use kind, owner) -> (): 1 = a user's avatar, 2 = a group's avatar, 3 = a sticker of pack `owner`
pub const FILE_USES: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("fileid_kind_owner");
/// user id -> bytes of the files they uploaded
pub const USER_FILE_BYTES: TableDefinition<u64, u64> = TableDefinition::new("userid_filebytes");
/// sticker pack id -> JSON `StickerPack`
pub const STICKER_PACKS: TableDefinition<u64, &[u8]> = TableDefinition::new("packid_stickerpack");

/// audit entry number -> JSON `AuditEntry`
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("auditno_entry");
/// setting group name (`live`) -> JSON settings an administrator changed at run time
pub const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("name_settings");
/// invite code -> JSON `Invite`
pub const INVITES: TableDefinition<&str, &[u8]> = TableDefinition::new("code_invite");
/// (user id, SHA-256 of a session token) -> JSON `PushSubscription`: the push endpoint of the
/// device signed in with that session (schema 3)
pub const PUSH_SUBS: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("userid_tokenhash_pushsub");
/// user id -> JSON `PushPrefs`: what pushes show, and the do-not-disturb hours (schema 3)
pub const PUSH_PREFS: TableDefinition<u64, &[u8]> = TableDefinition::new("userid_pushprefs");
/// normalized URL -> JSON `CachedPreview`: a link preview or the error of its last fetch, with
/// when it was fetched
pub const LINK_PREVIEWS: TableDefinition<&str, &[u8]> = TableDefinition::new("url_linkpreview");
/// (user id, favourite id) -> JSON `Favorite`: the messages a user saved
pub const FAVORITES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("userid_favid_favorite");
/// (user id, conversation key, seq) -> favourite id: which messages a user saved already
pub const FAVORITE_MSGS: TableDefinition<(u64, u64, u64, u64), u64> = TableDefinition::new("userid_conv_seq_favid");
/// (user id, search token, favourite id) -> (): each user's full-text index of their favourites
pub const FAVORITE_SEARCH: TableDefinition<(u64, &str, u64), ()> = TableDefinition::new("userid_token_favid");
/// (file id, user id, favourite id) -> (): files in a user's favourites, which that user may download
pub const FILE_FAVS: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("fileid_userid_favid");
/// (user id, conversation key, seq) -> (): messages the user deleted for themselves only
pub const HIDDEN_MESSAGES: TableDefinition<(u64, u64, u64, u64), ()> = TableDefinition::new("userid_conv_seq_hidden");
/// (user id, other user id) -> the user's private name (remark) for the other user
pub const REMARKS: TableDefinition<(u64, u64), &str> = TableDefinition::new("userid_otherid_remark");
/// group invite token (32 hex digits) -> group id
pub const GROUP_TOKENS: TableDefinition<&str, u64> = TableDefinition::new("invitetoken_groupid");
/// group id -> its current invite token (the reverse of `GROUP_TOKENS`)
pub const GROUP_INVITE_TOKENS: TableDefinition<u64, &str> = TableDefinition::new("groupid_invitetoken");
/// stable id of an LDAP entry (hex of its `entryUUID` or `objectGUID` bytes) -> user id
pub const LDAP_LINKS: TableDefinition<&str, u64> = TableDefinition::new("ldapid_userid");
/// (issuer URL, subject) -> user id: accounts signed in through OpenID Connect
pub const OIDC_LINKS: TableDefinition<(&str, &str), u64> = TableDefinition::new("issuer_sub_userid");
/// (user id, issuer URL) -> subject: the reverse of `OIDC_LINKS`, to show how a user signs in
pub const OIDC_USER_LINKS: TableDefinition<(u64, &str), &str> = TableDefinition::new("userid_issuer_sub");
/// day number (days since the Unix epoch) -> messages sent that day
pub const DAILY_MESSAGES: TableDefinition<u64, u64> = TableDefinition::new("day_messagecount");

/// Calls `$m!(TABLE)` for every table, so that creating and copying them cannot miss one.
/// A new table is added here and nowhere else.
macro_rules! each_table {
    ($m:ident) => {
        $m!(META);
        $m!(USERS);
        $m!(LOGIN_NAMES);
        $m!(SESSIONS);
        $m!(USER_SESSIONS);
        $m!(MESSAGE_LOG);
        $m!(MESSAGE_INDEX);
        $m!(CONV_TAILS);
        $m!(CONV_HEADS);
        $m!(REVS);
        $m!(REPLIES);
        $m!(CLIENT_IDS);
        $m!(USER_CONVS);
        $m!(READS);
        $m!(MENTIONS);
        $m!(SEARCH);
        $m!(CONTACTS);
        $m!(REQUESTS);
        $m!(REQUESTS_OUT);
        $m!(GROUPS);
        $m!(MEMBERS);
        $m!(APPLICATIONS);
        $m!(FILES);
        $m!(FILE_MSGS);
        $m!(FILE_USES);
        $m!(USER_FILE_BYTES);
        $m!(STICKER_PACKS);
        $m!(AUDIT);
        $m!(SETTINGS);
        $m!(INVITES);
        $m!(DAILY_MESSAGES);
        $m!(PUSH_SUBS);
        $m!(PUSH_PREFS);
        $m!(LINK_PREVIEWS);
        $m!(FAVORITES);
        $m!(FAVORITE_MSGS);
        $m!(FAVORITE_SEARCH);
        $m!(FILE_FAVS);
        $m!(HIDDEN_MESSAGES);
        $m!(REMARKS);
        $m!(GROUP_TOKENS);
        $m!(GROUP_INVITE_TOKENS);
        $m!(LDAP_LINKS);
        $m!(OIDC_LINKS);
        $m!(OIDC_USER_LINKS);
    };
}
pub(crate) use each_table;

/// Creates every table that does not exist yet (all of them in a new database).
pub fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    macro_rules! create {
        ($t:ident) => {
            txn.open_table($t)?;
        };
    }
    each_table!(create);
    Ok(())
}
