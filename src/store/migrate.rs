//! Schema migrations: each step takes a database from version N to N+1, and a database written
//! by a newer Chinwag is refused.

use redb::{Database, ReadableTable};

use super::tables::{self, META};
use super::{StoreError, client_ids, log, messages, replies};

/// The schema this build writes. Opening a newer one is refused; older ones are migrated.
pub const SCHEMA_VERSION: u64 = 7;

/// Brings an older database up to [`SCHEMA_VERSION`] and refuses a newer one.
pub(super) fn migrate(db: &Database) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    let found = {
        let t = txn.open_table(META)?;
        t.get("schema_version")?.map(|v| v.value())
    };
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            txn.abort()?;
            return Err(StoreError::TooNew { found: v, known: SCHEMA_VERSION });
        }
        Some(v) if v == SCHEMA_VERSION => {}
        // A fresh database, or an older one: each step takes version N to N+1.
        from => {
            let mut v = from.unwrap_or(0);
            while v < SCHEMA_VERSION {
                match v {
                    // Version 1 is the first layout, version 3 added the Web Push tables and
                    // version 4 the tables of favourites, hidden messages, contact remarks and
                    // link previews: create every table that is missing, so that readers never
                    // meet one.
                    0 | 2 => tables::create_all(&txn)?,
                    3 => {
                        tables::create_all(&txn)?;
                        replies::migrate_reply_index(&txn)?;
                    }
                    1 => messages::migrate_file_shares(&txn)?,
                    // Version 5 keeps messages in commit order (`log.rs`).
                    4 => log::migrate_to_log(&txn)?,
                    // Version 6 keeps the newest client ids in memory (`client_ids.rs`).
                    5 => client_ids::mark_all_moved(&txn)?,
                    // Version 7 links each conversation's messages instead of indexing each.
                    6 => log::migrate_to_tails(&txn)?,
                    _ => unreachable!("no migration from schema {v}"),
                }
                v += 1;
            }
            txn.open_table(META)?.insert("schema_version", SCHEMA_VERSION)?;
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DB_FILE, Store, StoreOptions};

    #[tokio::test]
    async fn a_newer_schema_is_refused_and_the_current_one_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
            s.write(|txn| {
                txn.open_table(META)?.insert("schema_version", SCHEMA_VERSION + 1)?;
                Ok(())
            })
            .await
            .unwrap();
        }
        // The writer thread holds the database until it sees its queue close.
        let err = loop {
            match Store::open(dir.path(), &StoreOptions::default()) {
                Err(StoreError::InUse(_)) => tokio::task::yield_now().await,
                other => break other.err().unwrap(),
            }
        };
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer Chinwag"));
    }

    #[tokio::test]
    async fn schema_1_files_are_shared_per_message_after_the_upgrade() {
        use crate::ids::{ConvId, UserId};
        use crate::protocol::{Content, Message, Recall};
        let dir = tempfile::tempdir().unwrap();
        let conv: ConvId = "d:1:2".parse().unwrap();
        let (kept, recalled) = ("a".repeat(32), "b".repeat(32));
        {
            // A schema 1 database: files shared per conversation, one of them by a message
            // recalled since.
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            tables::create_all(&txn).unwrap();
            txn.delete_table(tables::FILE_MSGS).unwrap();
            txn.delete_table(tables::PUSH_SUBS).unwrap();
            txn.delete_table(tables::PUSH_PREFS).unwrap();
            let key = conv.key();
            let mut shared = txn.open_table(tables::FILE_CONVS).unwrap();
            let mut msgs = txn.open_table(log::LEGACY_MESSAGES).unwrap();
            let contents = [
                serde_json::json!({"kind":"image","file_id":kept}),
                serde_json::json!({"kind":"file","file_id":recalled}),
                serde_json::json!({"kind":"text","text":"hi"}),
            ];
            for (i, c) in contents.into_iter().enumerate() {
                let seq = i as u64 + 1;
                let mut m = Message::new(conv, seq, UserId(1), format!("c{seq}"), 1, serde_json::from_value::<Content>(c).unwrap());
                for f in m.content.files() {
                    shared.insert((f, key.0, key.1), ()).unwrap();
                }
                if seq == 2 {
                    m.content = Content::Recalled {};
                    m.recalled = Some(Recall { by: UserId(1), at: 2 });
                }
                msgs.insert((key.0, key.1, seq), serde_json::to_vec(&m).unwrap().as_slice()).unwrap();
            }
            drop((shared, msgs));
            txn.open_table(META).unwrap().insert("schema_version", 1).unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert!(s.push_subscribers().await.unwrap().is_empty(), "schema 3's push tables were made");
        assert_eq!(s.file_audience(kept).await.unwrap(), (false, vec![conv]));
        assert_eq!(s.file_audience(recalled).await.unwrap(), (false, vec![]), "its message was recalled before the upgrade");
        let old_table = s.read(|txn| Ok(txn.open_table(tables::FILE_CONVS).is_ok())).await.unwrap();
        assert!(!old_table, "the schema 1 table is gone");
        s.close().await;
    }

    #[tokio::test]
    async fn schema_3_replies_join_the_reply_index_and_quotes_of_recalled_messages_lose_their_text() {
        use crate::ids::{ConvId, UserId};
        use crate::protocol::{Content, Message, Recall, ReplyRef};
        let dir = tempfile::tempdir().unwrap();
        let conv: ConvId = "d:1:2".parse().unwrap();
        let key = conv.key();
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            tables::create_all(&txn).unwrap();
            txn.delete_table(tables::REPLIES).unwrap();
            let mut msgs = txn.open_table(log::LEGACY_MESSAGES).unwrap();
            let text = |seq: u64, t: &str| Message::new(conv, seq, UserId(1), format!("c{seq}"), 1, Content::Text { text: t.into() });
            let reply = |seq: u64, to: u64, preview: &str| {
                let mut m = text(seq, "a reply");
                m.reply_to = Some(ReplyRef { seq: to, sender: UserId(1), preview: preview.into(), recalled: false });
                m
            };
            let mut gone = text(3, "");
            gone.content = Content::Recalled {};
            gone.recalled = Some(Recall { by: UserId(1), at: 2 });
            for m in [text(1, "kept"), reply(2, 1, "kept"), gone, reply(4, 3, "the secret")] {
                msgs.insert((key.0, key.1, m.seq), serde_json::to_vec(&m).unwrap().as_slice()).unwrap();
            }
            drop(msgs);
            txn.open_table(META).unwrap().insert("schema_version", 3).unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
        let index: Vec<(u64, u64, u64, u64)> =
            s.read(|txn| Ok(txn.open_table(tables::REPLIES)?.iter()?.map(|e| e.unwrap().0.value()).collect())).await.unwrap();
        assert_eq!(index, vec![(key.0, key.1, 1, 2)], "the reply to a live message is indexed for a later recall");
        let quote = s.message(conv, 4).await.unwrap().unwrap().reply_to.unwrap();
        assert_eq!((quote.preview.as_str(), quote.recalled), ("", true), "the recalled text is out of the old quote");
        assert_eq!(s.message(conv, 2).await.unwrap().unwrap().reply_to.unwrap().preview, "kept");
        s.close().await;
    }

    #[tokio::test]
    async fn schema_4_messages_move_into_the_log_and_the_next_one_follows_them() {
        use crate::ids::{ConvId, UserId};
        use crate::protocol::{Content, Message};
        use redb::ReadableTableMetadata;
        let dir = tempfile::tempdir().unwrap();
        let (x, y): (ConvId, ConvId) = ("d:1:2".parse().unwrap(), "d:1:3".parse().unwrap());
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            tables::create_all(&txn).unwrap();
            let mut msgs = txn.open_table(log::LEGACY_MESSAGES).unwrap();
            let mut heads = txn.open_table(tables::CONV_HEADS).unwrap();
            let mut client_ids = txn.open_table(tables::CLIENT_IDS).unwrap();
            for c in [x, y] {
                let key = c.key();
                for seq in 1..=3 {
                    let m = Message::new(c, seq, UserId(1), format!("{c}-{seq}"), 1, Content::Text { text: format!("{c} {seq}") });
                    msgs.insert((key.0, key.1, seq), serde_json::to_vec(&m).unwrap().as_slice()).unwrap();
                    client_ids.insert((1, m.client_id.as_str()), (key.0, key.1, seq)).unwrap();
                }
                heads.insert(key, (3, 0, 0)).unwrap();
            }
            drop((msgs, heads, client_ids));
            txn.open_table(META).unwrap().insert("schema_version", 4).unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert_eq!(s.read(crate::store::indexer::lag).await.unwrap(), 0, "their search tokens were written with them");
        let (page, more) = s.history(y, None, None, 2, 0).await.unwrap();
        assert_eq!((page.iter().map(|m| m.seq).collect::<Vec<_>>(), more), (vec![2, 3], true));
        assert_eq!(page[1].content.search_text().unwrap(), format!("{y} 3"));
        let sent = crate::store::send_text(&s, x, "new", "after").await;
        assert_eq!(sent.message.seq, 4);
        let again = crate::store::send_text(&s, y, &format!("{y}-2"), "resent").await;
        assert!(again.duplicate && again.message.seq == 2, "a resend of a migrated message finds it");
        let (legacy, logged) =
            s.read(|txn| Ok((txn.open_table(log::LEGACY_MESSAGES).is_ok(), txn.open_table(tables::MESSAGE_LOG)?.len()?))).await.unwrap();
        assert!(!legacy, "the schema 4 table is gone");
        assert_eq!(logged, 7);
        s.close().await;
    }

    #[tokio::test]
    async fn schema_6_messages_keep_their_index_entries_and_the_next_ones_link_back_to_them() {
        use std::collections::HashMap;

        use crate::ids::{ConvId, UserId};
        use crate::protocol::{Content, Message};
        let dir = tempfile::tempdir().unwrap();
        let conv: ConvId = "d:1:2".parse().unwrap();
        let key = conv.key();
        let old = 20;
        {
            // As schema 6 stored them: plain JSON in the log, every message in the index.
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            tables::create_all(&txn).unwrap();
            let mut msgs = txn.open_table(tables::MESSAGE_LOG).unwrap();
            let mut index = txn.open_table(tables::MESSAGE_INDEX).unwrap();
            for seq in 1..=old {
                let m = Message::new(conv, seq, UserId(1), format!("old-{seq}"), 1, Content::Text { text: format!("hello old {seq}") });
                // Another conversation's message between each, as in a busy log.
                msgs.insert(2 * seq, serde_json::to_vec(&m).unwrap().as_slice()).unwrap();
                index.insert((key.0, key.1, seq), 2 * seq).unwrap();
            }
            txn.open_table(tables::CONV_HEADS).unwrap().insert(key, (old, 0, 0)).unwrap();
            drop((msgs, index));
            txn.open_table(META).unwrap().insert("schema_version", 6).unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
        for seq in old + 1..=old + 40 {
            assert_eq!(crate::store::send_text(&s, conv, &format!("new-{seq}"), &format!("hello new {seq}")).await.message.seq, seq);
        }
        let (page, more) = s.history(conv, Some(old + 6), None, 10, 0).await.unwrap();
        assert_eq!((page.iter().map(|m| m.seq).collect::<Vec<_>>(), more), ((old - 4..=old + 5).collect::<Vec<_>>(), true));
        assert_eq!(s.message(conv, 3).await.unwrap().unwrap().client_id, "old-3");
        assert_eq!(s.message(conv, old + 31).await.unwrap().unwrap().client_id, format!("new-{}", old + 31));
        let again = crate::store::send_text(&s, conv, "old-7", "resent").await;
        assert!(again.duplicate && again.message.seq == 7, "a resend of a schema 6 message finds it");
        let found = s.search_messages(UserId(1), "hello".into(), HashMap::from([(conv, 1)]), 0, 100).await.unwrap();
        assert_eq!(found.len() as u64, old + 40, "old and new messages are found");
        s.close().await;
    }
}
