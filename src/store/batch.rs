//! One group commit's transaction, and the tables new messages are written through, opened once
//! per batch instead of once per message.
//!
//! Opening a redb table checks its stored type names and looks it up in the table tree, and
//! closing it writes its root back: a fifth of the writer's time when every message opened its
//! ten tables itself (docs/benchmarks.md, "Tables opened once per batch"). So a batch keeps the
//! message tables open from its first message to its last. redb refuses to open a table twice
//! in one transaction, so the rule is: while [`MessageTables`] are open, nothing opens one of
//! their tables directly; [`Batch::txn`] closes them before it hands out the transaction.

use redb::{Table, WriteTransaction};

use super::StoreError;
use super::log::{self, WriteLog};
use super::tables::{CLIENT_IDS, CONTACTS, CONV_HEADS, DAILY_MESSAGES, GROUPS, MEMBERS, READS, USER_CONVS, USERS};

/// The tables every new message writes: the log, the conversation heads, the sender's read
/// position, the conversation-list entries of a 1:1 chat and the daily count.
pub(super) struct InsertTables<'t> {
    pub(super) log: WriteLog<'t>,
    pub(super) heads: Table<'t, (u64, u64), (u64, u64, u64)>,
    pub(super) reads: Table<'t, (u64, u64, u64), u64>,
    pub(super) user_convs: Table<'t, (u64, u64, u64), &'static [u8]>,
    pub(super) daily: Table<'t, u64, u64>,
}

impl<'t> InsertTables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(InsertTables {
            log: log::write(txn)?,
            heads: txn.open_table(CONV_HEADS)?,
            reads: txn.open_table(READS)?,
            user_convs: txn.open_table(USER_CONVS)?,
            daily: txn.open_table(DAILY_MESSAGES)?,
        })
    }
}

/// What a send reads before it writes: the sender's place in the conversation (`facts.rs`) and
/// earlier client ids; and what it writes.
pub(super) struct MessageTables<'t> {
    pub(super) insert: InsertTables<'t>,
    pub(super) client_ids: Table<'t, (u64, &'static str), (u64, u64, u64)>,
    pub(super) users: Table<'t, u64, &'static [u8]>,
    pub(super) contacts: Table<'t, (u64, u64), &'static [u8]>,
    pub(super) members: Table<'t, (u64, u64), &'static [u8]>,
    pub(super) groups: Table<'t, u64, &'static [u8]>,
}

impl<'t> MessageTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(MessageTables {
            insert: InsertTables::open(txn)?,
            client_ids: txn.open_table(CLIENT_IDS)?,
            users: txn.open_table(USERS)?,
            contacts: txn.open_table(CONTACTS)?,
            members: txn.open_table(MEMBERS)?,
            groups: txn.open_table(GROUPS)?,
        })
    }
}

/// The writes of one commit share this: the transaction, and the message tables while
/// consecutive sends use them.
pub(super) struct Batch<'t> {
    txn: &'t WriteTransaction,
    messages: Option<MessageTables<'t>>,
}

impl<'t> Batch<'t> {
    pub(super) fn new(txn: &'t WriteTransaction) -> Self {
        Batch { txn, messages: None }
    }

    /// The transaction, for writes that open their own tables: the message tables are closed
    /// first (a send after this opens them again).
    pub(super) fn txn(&mut self) -> &'t WriteTransaction {
        self.messages = None;
        self.txn
    }

    /// The transaction and the open message tables. Through the transaction, open only tables
    /// that are not among them.
    pub(super) fn messages(&mut self) -> Result<(&'t WriteTransaction, &mut MessageTables<'t>), StoreError> {
        let tables = match &mut self.messages {
            Some(t) => t,
            slot @ None => slot.insert(MessageTables::open(self.txn)?),
        };
        Ok((self.txn, tables))
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTableMetadata};

    use super::*;

    #[test]
    fn message_tables_stay_open_across_sends_and_close_for_other_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let mut b = Batch::new(&txn);
        b.messages().unwrap().1.insert.daily.insert(1, 5).unwrap();
        // Still open: the second send sees the first one's write without opening anything.
        let (txn_ref, t) = b.messages().unwrap();
        assert_eq!(t.insert.daily.len().unwrap(), 1);
        // Opening one of them directly is what redb refuses; this is why `txn()` closes them.
        assert!(txn_ref.open_table(DAILY_MESSAGES).is_err());
        let raw = b.txn();
        raw.open_table(DAILY_MESSAGES).unwrap().insert(2, 7).unwrap();
        b.messages().unwrap().1.insert.daily.insert(3, 9).unwrap();
        drop(b);
        txn.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert_eq!(r.open_table(DAILY_MESSAGES).unwrap().len().unwrap(), 3);
    }

    /// The rules hold at commit time within a batch too: a send after a removal that an earlier
    /// write of the same batch made is refused, though the message tables were open before it.
    #[tokio::test]
    async fn a_send_after_a_removal_in_the_same_batch_is_refused() {
        use crate::ids::{ConvId, UserId};
        use crate::outcome::Refusal;
        use crate::protocol::Content;
        use crate::store::client_ids::ClientIds;
        use crate::store::facts::ConvFacts;
        use crate::store::messages::{Extras, MessageRefusal, append_in_txn};
        use crate::store::social::{GroupLimits, GroupRecord};
        use crate::store::{DB_FILE, Store, StoreOptions};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let (owner, member) = (UserId(1), UserId(2));
        let record = GroupRecord::for_test(owner);
        let limits = GroupLimits { max_members: 10, max_groups_per_user: 10, history_for_new_members: true };
        let gid = store.create_group(owner, record, vec![owner, member], limits, |_| {}).await.unwrap().unwrap().after.group.id;
        store.close().await;

        let db = redb::Database::open(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        let ids = ClientIds::default();
        let mut b = Batch::new(&txn);
        let send = |b: &mut Batch<'_>, id: &str| {
            let members_only = |f: &ConvFacts| if matches!(f, ConvFacts::Group { .. }) { Ok(()) } else { Err(Refusal::Forbidden("gone")) };
            let text = Content::Text { text: format!("text of {id}") };
            append_in_txn(b, &ids, member, ConvId::Group(gid), &[], id.into(), text, Extras::default(), members_only).unwrap()
        };
        let first = send(&mut b, "a").unwrap();
        assert!(!first.duplicate);
        b.txn().open_table(MEMBERS).unwrap().remove((gid, member.0)).unwrap();
        assert_eq!(send(&mut b, "b").unwrap_err(), MessageRefusal::Denied(Refusal::Forbidden("gone")));
        // A resend of the first is answered with it: it was allowed when it was stored.
        let again = send(&mut b, "a").unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message.seq, first.message.seq);
        drop(b);
        txn.commit().unwrap();
    }
}
