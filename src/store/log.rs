//! The message log: every message stored under a number that grows in commit order
//! (`MESSAGE_LOG`), and found by (conversation, seq) through `MESSAGE_INDEX`. New messages land at
//! the end of the log whatever their conversation, so a commit writes a few full log pages rather
//! than one half-empty page per conversation it touches (docs/benchmarks.md, "fewer pages per
//! message"); only the small index entries are placed per conversation.

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::StoreError;
use super::tables::{MESSAGE_INDEX, MESSAGE_LOG};
use crate::protocol::Message;

/// (conversation key a, conversation key b, seq).
pub(super) type MsgKey = (u64, u64, u64);

/// Messages keyed by (conversation, seq) as schemas 1 to 4 kept them; read only by the
/// migrations up to schema 5, which moves them into the log and deletes this table.
pub(super) const LEGACY_MESSAGES: TableDefinition<MsgKey, &[u8]> = TableDefinition::new("conv_seq_message");

/// The log and its index, as one transaction sees them.
pub(super) struct Log<L, I> {
    log: L,
    index: I,
}

pub(super) type ReadLog = Log<ReadOnlyTable<u64, &'static [u8]>, ReadOnlyTable<MsgKey, u64>>;
pub(super) type WriteLog<'t> = Log<Table<'t, u64, &'static [u8]>, Table<'t, MsgKey, u64>>;

/// The log for reading.
pub(super) fn read(txn: &ReadTransaction) -> Result<ReadLog, StoreError> {
    Ok(Log { log: txn.open_table(MESSAGE_LOG)?, index: txn.open_table(MESSAGE_INDEX)? })
}

/// The log for writing; while it is open, this transaction cannot open its tables again.
pub(super) fn write(txn: &WriteTransaction) -> Result<WriteLog<'_>, StoreError> {
    Ok(Log { log: txn.open_table(MESSAGE_LOG)?, index: txn.open_table(MESSAGE_INDEX)? })
}

fn decode(v: &[u8]) -> Result<Message, StoreError> {
    Ok(serde_json::from_slice(v)?)
}

impl<L: ReadableTable<u64, &'static [u8]>, I: ReadableTable<MsgKey, u64>> Log<L, I> {
    /// The message at `key`, if there is one.
    pub fn get(&self, key: MsgKey) -> Result<Option<Message>, StoreError> {
        Ok(self.numbered(key)?.map(|(_, m)| m))
    }

    /// The message at `key` with its log number, if there is one.
    pub fn numbered(&self, key: MsgKey) -> Result<Option<(u64, Message)>, StoreError> {
        match self.index.get(key)? {
            Some(no) => {
                let no = no.value();
                Ok(Some((no, self.at(no)?)))
            }
            None => Ok(None),
        }
    }

    pub fn contains(&self, key: MsgKey) -> Result<bool, StoreError> {
        Ok(self.index.get(key)?.is_some())
    }

    /// The message numbered `no`; the index pointing at a missing one is corruption.
    fn at(&self, no: u64) -> Result<Message, StoreError> {
        let v = self.log.get(no)?.ok_or_else(|| StoreError::Corrupt(format!("the message index points at missing message {no}")))?;
        decode(v.value())
    }

    /// Messages `from..=to` of the conversation `conv`, ascending, at most `limit`: the oldest
    /// of the range, or with `newest_first` the newest. `true` when the range held more.
    pub fn range(
        &self,
        conv: (u64, u64),
        from: u64,
        to: u64,
        newest_first: bool,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        if from > to || limit == 0 {
            return Ok((Vec::new(), false));
        }
        let range = self.index.range((conv.0, conv.1, from)..=(conv.0, conv.1, to))?;
        let iter: Box<dyn Iterator<Item = _>> = if newest_first { Box::new(range.rev()) } else { Box::new(range) };
        let mut out = Vec::with_capacity(limit.min(128));
        let mut more = false;
        for entry in iter {
            if out.len() == limit {
                more = true;
                break;
            }
            let (_, no) = entry?;
            out.push(self.at(no.value())?);
        }
        if newest_first {
            out.reverse();
        }
        Ok((out, more))
    }

    /// The newest message of `conv` in `from..=to` that `skip` does not leave out, looking at no
    /// more than `max` of them.
    pub fn newest_where(
        &self,
        conv: (u64, u64),
        from: u64,
        to: u64,
        max: usize,
        mut skip: impl FnMut(u64) -> Result<bool, StoreError>,
    ) -> Result<Option<Message>, StoreError> {
        if from > to {
            return Ok(None);
        }
        for entry in self.index.range((conv.0, conv.1, from)..=(conv.0, conv.1, to))?.rev().take(max) {
            let (k, no) = entry?;
            if !skip(k.value().2)? {
                return self.at(no.value()).map(Some);
            }
        }
        Ok(None)
    }

    /// How many messages are stored.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.index.len()?)
    }
}

impl WriteLog<'_> {
    /// Stores a new message at `key` as the last of the log; returns its number.
    pub fn append(&mut self, key: MsgKey, bytes: &[u8]) -> Result<u64, StoreError> {
        let no = self.log.last()?.map_or(1, |(k, _)| k.value() + 1);
        self.log.insert(no, bytes)?;
        if self.index.insert(key, no)?.is_some() {
            return Err(StoreError::Corrupt(format!("message {key:?} was stored twice")));
        }
        Ok(no)
    }

    /// Stores `message` in place of the message at `key`, which must exist.
    pub fn replace(&mut self, key: MsgKey, message: &Message) -> Result<(), StoreError> {
        let no = self.index.get(key)?.map(|v| v.value()).ok_or_else(|| StoreError::Corrupt(format!("no message {key:?} to change")))?;
        self.log.insert(no, serde_json::to_vec(message)?.as_slice())?;
        Ok(())
    }
}

/// Schema 4 to 5: the messages move from the table keyed by (conversation, seq) into the log, in
/// that order, and the old table goes.
pub(super) fn migrate_to_log(txn: &WriteTransaction) -> Result<(), StoreError> {
    {
        let old = txn.open_table(LEGACY_MESSAGES)?;
        let mut log = write(txn)?;
        for entry in old.iter()? {
            let (k, v) = entry?;
            log.append(k.value(), v.value())?;
        }
    }
    txn.delete_table(LEGACY_MESSAGES)?;
    // Their search tokens were written with them.
    super::indexer::mark_all_indexed(txn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConvId, UserId};
    use crate::protocol::Content;
    use redb::ReadableDatabase;

    fn message(conv: ConvId, seq: u64, text: &str) -> Message {
        Message::new(conv, seq, UserId(1), format!("c{seq}"), seq, Content::Text { text: text.into() })
    }

    #[test]
    fn messages_of_interleaved_conversations_come_back_by_conversation_and_seq() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let (x, y): (ConvId, ConvId) = ("d:1:2".parse().unwrap(), "d:1:3".parse().unwrap());
        let txn = db.begin_write().unwrap();
        {
            let mut log = write(&txn).unwrap();
            for seq in 1..=5 {
                for c in [x, y] {
                    let (a, b) = c.key();
                    let bytes = serde_json::to_vec(&message(c, seq, &format!("{c} {seq}"))).unwrap();
                    log.append((a, b, seq), &bytes).unwrap();
                }
            }
            let (a, b) = x.key();
            let mut changed = message(x, 2, "edited");
            changed.rev = 1;
            log.replace((a, b, 2), &changed).unwrap();
            assert!(log.replace((a, b, 9), &changed).is_err(), "only a stored message can change");
            let (a, b) = y.key();
            assert!(log.append((a, b, 5), b"{}").is_err(), "a seq is stored once");
        }
        txn.commit().unwrap();
        let log = read(&db.begin_read().unwrap()).unwrap();
        let (a, b) = x.key();
        let texts = |ms: Vec<Message>| ms.into_iter().map(|m| m.content.search_text().unwrap()).collect::<Vec<_>>();
        let (newest, more) = log.range((a, b), 1, u64::MAX, true, 2).unwrap();
        assert_eq!((texts(newest), more), (vec![format!("{x} 4"), format!("{x} 5")], true));
        let (oldest, more) = log.range((a, b), 2, 3, false, 10).unwrap();
        assert_eq!((texts(oldest), more), (vec!["edited".to_owned(), format!("{x} 3")], false));
        assert_eq!(log.get((a, b, 2)).unwrap().unwrap().rev, 1);
        assert!(log.get((a, b, 6)).unwrap().is_none());
        let newest_odd = log.newest_where((a, b), 1, 5, 10, |seq| Ok(seq % 2 == 1)).unwrap().unwrap();
        assert_eq!(newest_odd.seq, 4, "the newest not skipped");
        assert!(log.newest_where((a, b), 1, 5, 1, |seq| Ok(seq == 5)).unwrap().is_none(), "looks at no more than max");
        assert_eq!(log.len().unwrap(), 10);
    }
}
