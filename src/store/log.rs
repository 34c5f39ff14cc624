//! The message log: every message stored under a number that grows in commit order
//! (`MESSAGE_LOG`). New messages land at the end of the log whatever their conversation, so a
//! commit writes a few full log pages rather than one page per conversation it touches
//! (docs/benchmarks.md, "fewer pages per message").
//!
//! A conversation's messages are found without an index entry per message. Each stored message
//! begins with how far back in the log its conversation's previous message is, so one
//! conversation's messages form a chain from its newest (`CONV_TAILS`) backwards; seqs are dense
//! (1, 2, 3, … with no gaps), so a seq is found by walking back from the nearest known point:
//! every [`INDEXED_EVERY`]th message of a conversation is in `MESSAGE_INDEX`, and the newest is in
//! `CONV_TAILS`. A commit of many conversations' messages thus writes one small index entry per
//! sixteen messages instead of one per message, and a lookup walks back at most fifteen.
//!
//! Messages stored before schema 7 are plain JSON with no link, and each has its index entry; a
//! walk that reaches one continues through the index.

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::StoreError;
use super::tables::{CONV_HEADS, CONV_TAILS, MESSAGE_INDEX, MESSAGE_LOG};
use crate::protocol::Message;

/// (conversation key a, conversation key b, seq).
pub(super) type MsgKey = (u64, u64, u64);

/// A conversation's messages whose seq is a multiple of this have an index entry.
pub(super) const INDEXED_EVERY: u64 = 16;

/// The first byte of a message stored with its link; a message stored as plain JSON begins
/// with `{`.
const LINKED: u8 = 0x01;

/// Messages keyed by (conversation, seq) as schemas 1 to 4 kept them; read only by the
/// migrations up to schema 5, which moves them into the log and deletes this table.
pub(super) const LEGACY_MESSAGES: TableDefinition<MsgKey, &[u8]> = TableDefinition::new("conv_seq_message");

/// The log, its index and each conversation's newest message, as one transaction sees them.
pub(super) struct Log<L, I, T> {
    messages: L,
    index: I,
    tails: T,
}

pub(super) type ReadLog = Log<ReadOnlyTable<u64, &'static [u8]>, ReadOnlyTable<MsgKey, u64>, ReadOnlyTable<(u64, u64), (u64, u64)>>;
pub(super) type WriteLog<'t> = Log<Table<'t, u64, &'static [u8]>, Table<'t, MsgKey, u64>, Table<'t, (u64, u64), (u64, u64)>>;

/// The log for reading.
pub(super) fn read(txn: &ReadTransaction) -> Result<ReadLog, StoreError> {
    Ok(Log { messages: txn.open_table(MESSAGE_LOG)?, index: txn.open_table(MESSAGE_INDEX)?, tails: txn.open_table(CONV_TAILS)? })
}

/// The log for writing; while it is open, this transaction cannot open its tables again.
pub(super) fn write(txn: &WriteTransaction) -> Result<WriteLog<'_>, StoreError> {
    Ok(Log { messages: txn.open_table(MESSAGE_LOG)?, index: txn.open_table(MESSAGE_INDEX)?, tails: txn.open_table(CONV_TAILS)? })
}

/// Where a stored message's conversation continues backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Stored before schema 7: the index has the message before it.
    Unlinked,
    /// The first message of its conversation.
    First,
    /// The conversation's previous message is this many numbers back in the log.
    Back(u64),
}

/// A message as stored: its link, then its JSON.
fn encode(link: Link, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 11);
    match link {
        Link::Unlinked => {}
        Link::First => out.extend_from_slice(&[LINKED, 0]),
        Link::Back(d) => {
            out.push(LINKED);
            put_varint(&mut out, d);
        }
    }
    out.extend_from_slice(json);
    out
}

/// A stored message's link and JSON; `None` when the link cannot be read.
fn split(value: &[u8]) -> Option<(Link, &[u8])> {
    match value.split_first() {
        Some((&LINKED, rest)) => {
            let (d, n) = varint(rest)?;
            Some((if d == 0 { Link::First } else { Link::Back(d) }, &rest[n..]))
        }
        _ => Some((Link::Unlinked, value)),
    }
}

/// The JSON of a stored message, for the readers that go through the log in its own order (the
/// search indexer, the client ids read back at start). Bytes whose link cannot be read give an
/// empty slice, which no parser accepts.
pub(super) fn json_of(value: &[u8]) -> &[u8] {
    split(value).map_or(&[], |(_, json)| json)
}

/// LEB128: seven bits a byte, low bits first, the high bit set on every byte but the last.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn decode(no: u64, seq: u64, json: &[u8]) -> Result<Message, StoreError> {
    let m: Message = serde_json::from_slice(json)?;
    if m.seq != seq {
        return Err(StoreError::Corrupt(format!("message {no} holds seq {} where seq {seq} was expected", m.seq)));
    }
    Ok(m)
}

fn missing(no: u64) -> StoreError {
    StoreError::Corrupt(format!("the message log has no message {no}"))
}

impl<L, I, T> Log<L, I, T>
where
    L: ReadableTable<u64, &'static [u8]>,
    I: ReadableTable<MsgKey, u64>,
    T: ReadableTable<(u64, u64), (u64, u64)>,
{
    /// The newest message of `conv`: (its seq, its number).
    fn tail(&self, conv: (u64, u64)) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self.tails.get(conv)?.map(|v| v.value()))
    }

    /// Goes back through `conv` from its message numbered `no` at `seq`, handing each message's
    /// (seq, number, JSON) to `visit` while it returns `true` and the seq is above `down_to`.
    fn walk(
        &self,
        conv: (u64, u64),
        mut seq: u64,
        mut no: u64,
        down_to: u64,
        mut visit: impl FnMut(u64, u64, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        loop {
            let value = self.messages.get(no)?.ok_or_else(|| missing(no))?;
            let (link, json) =
                split(value.value()).ok_or_else(|| StoreError::Corrupt(format!("message {no} begins with an unreadable link")))?;
            if !visit(seq, no, json)? || seq <= down_to.max(1) {
                return Ok(());
            }
            no = match link {
                Link::Back(d) if d < no => no - d,
                Link::Unlinked => self
                    .index
                    .get((conv.0, conv.1, seq - 1))?
                    .map(|v| v.value())
                    .ok_or_else(|| StoreError::Corrupt(format!("seq {} of {conv:?} is neither indexed nor linked", seq - 1)))?,
                _ => return Err(StoreError::Corrupt(format!("message {no} (seq {seq} of {conv:?}) does not lead back"))),
            };
            seq -= 1;
        }
    }

    /// The number of `conv`'s message at `seq`, if there is one.
    fn locate(&self, conv: (u64, u64), seq: u64, near: Option<(u64, u64)>) -> Result<Option<u64>, StoreError> {
        match self.tail(conv)? {
            Some(tail) if (1..=tail.0).contains(&seq) => self.find(conv, seq, tail, near).map(Some),
            _ => Ok(None),
        }
    }

    /// The number of `conv`'s message at `seq`, which exists (it is at most the newest, `tail`),
    /// walking back from the nearest known point at or above it: an index entry, `near` (a
    /// message found just before), or the newest.
    fn find(&self, conv: (u64, u64), seq: u64, tail: (u64, u64), near: Option<(u64, u64)>) -> Result<u64, StoreError> {
        let (mut from, mut from_no) = match self.index.range((conv.0, conv.1, seq)..=(conv.0, conv.1, tail.0))?.next() {
            Some(entry) => {
                let (k, v) = entry?;
                (k.value().2, v.value())
            }
            None => tail,
        };
        if let Some((s, no)) = near
            && (seq..from).contains(&s)
        {
            (from, from_no) = (s, no);
        }
        let mut found = None;
        self.walk(conv, from, from_no, seq, |s, no, _| {
            if s == seq {
                found = Some(no);
            }
            Ok(s > seq)
        })?;
        found.ok_or_else(|| StoreError::Corrupt(format!("seq {seq} of {conv:?} was not reached")))
    }

    /// The message at `key`, if there is one.
    pub fn get(&self, key: MsgKey) -> Result<Option<Message>, StoreError> {
        Ok(self.numbered(key)?.map(|(_, m)| m))
    }

    /// The message at `key` with its log number, if there is one.
    pub fn numbered(&self, key: MsgKey) -> Result<Option<(u64, Message)>, StoreError> {
        match self.locate((key.0, key.1), key.2, None)? {
            Some(no) => Ok(Some((no, self.at(no, key.2)?))),
            None => Ok(None),
        }
    }

    /// The messages at `keys` that exist, in the order of `keys`. Keys of one conversation in
    /// descending seq order walk each stretch of it once, rather than once per key.
    pub fn get_many(&self, keys: impl IntoIterator<Item = MsgKey>) -> Result<Vec<Message>, StoreError> {
        let mut out = Vec::new();
        let mut near: Option<(MsgKey, u64)> = None;
        for key in keys {
            let conv = (key.0, key.1);
            let hint = near.filter(|(k, _)| (k.0, k.1) == conv).map(|(k, no)| (k.2, no));
            if let Some(no) = self.locate(conv, key.2, hint)? {
                out.push(self.at(no, key.2)?);
                near = Some((key, no));
            }
        }
        Ok(out)
    }

    /// Whether `conv` has a message at `seq` (seqs are dense: every one up to the newest).
    pub fn contains(&self, key: MsgKey) -> Result<bool, StoreError> {
        Ok(key.2 >= 1 && self.tail((key.0, key.1))?.is_some_and(|(last, _)| key.2 <= last))
    }

    /// The message numbered `no`, which should be at `seq` of its conversation.
    fn at(&self, no: u64, seq: u64) -> Result<Message, StoreError> {
        let value = self.messages.get(no)?.ok_or_else(|| missing(no))?;
        decode(no, seq, json_of(value.value()))
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
        let from = from.max(1);
        let Some(tail) = self.tail(conv)? else { return Ok((Vec::new(), false)) };
        let to = to.min(tail.0);
        if from > to || limit == 0 {
            return Ok((Vec::new(), false));
        }
        let span = to - from + 1;
        let take = span.min(limit as u64);
        let (top, bottom) = if newest_first { (to, to + 1 - take) } else { (from + take - 1, from) };
        let start = self.find(conv, top, tail, None)?;
        let mut out = Vec::with_capacity(take.min(128) as usize);
        self.walk(conv, top, start, bottom, |seq, no, json| {
            out.push(decode(no, seq, json)?);
            Ok(true)
        })?;
        out.reverse();
        Ok((out, span > take))
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
        let from = from.max(1);
        let Some(tail) = self.tail(conv)? else { return Ok(None) };
        let to = to.min(tail.0);
        if from > to || max == 0 {
            return Ok(None);
        }
        let bottom = from.max(to.saturating_sub(max as u64 - 1));
        let start = self.find(conv, to, tail, None)?;
        let mut found = None;
        self.walk(conv, to, start, bottom, |seq, no, json| {
            if skip(seq)? {
                return Ok(true);
            }
            found = Some(decode(no, seq, json)?);
            Ok(false)
        })?;
        Ok(found)
    }

    /// How many messages are stored.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.messages.len()?)
    }
}

impl WriteLog<'_> {
    /// Stores a new message at `key`, which must be the next seq of its conversation, as the last
    /// of the log, linked to the conversation's previous message; returns its number.
    pub fn append(&mut self, key: MsgKey, json: &[u8]) -> Result<u64, StoreError> {
        let conv = (key.0, key.1);
        let no = self.messages.last()?.map_or(1, |(k, _)| k.value() + 1);
        let link = match self.tail(conv)? {
            None if key.2 == 1 => Link::First,
            Some((last, last_no)) if key.2 == last + 1 => Link::Back(no - last_no),
            tail => {
                return Err(StoreError::Corrupt(format!("message {key:?} does not follow its conversation's newest, {tail:?}")));
            }
        };
        self.messages.insert(no, encode(link, json).as_slice())?;
        if key.2.is_multiple_of(INDEXED_EVERY) {
            self.index.insert(key, no)?;
        }
        self.tails.insert(conv, (key.2, no))?;
        Ok(no)
    }

    /// Stores `message` in place of the message at `key`, which must exist.
    pub fn replace(&mut self, key: MsgKey, message: &Message) -> Result<(), StoreError> {
        let no = self.locate((key.0, key.1), key.2, None)?.ok_or_else(|| StoreError::Corrupt(format!("no message {key:?} to change")))?;
        let link = {
            let value = self.messages.get(no)?.ok_or_else(|| missing(no))?;
            split(value.value()).map_or(Link::Unlinked, |(link, _)| link)
        };
        self.messages.insert(no, encode(link, &serde_json::to_vec(message)?).as_slice())?;
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

/// Schema 6 to 7: each conversation's newest message goes into `CONV_TAILS`, so that the next
/// one links back to it. The messages stored before keep their index entries and no link.
pub(super) fn migrate_to_tails(txn: &WriteTransaction) -> Result<(), StoreError> {
    let heads = txn.open_table(CONV_HEADS)?;
    let mut log = write(txn)?;
    for entry in heads.iter()? {
        let (k, v) = entry?;
        let (conv, last) = (k.value(), v.value().0);
        if last == 0 || log.tail(conv)?.is_some() {
            continue;
        }
        let no = log
            .index
            .get((conv.0, conv.1, last))?
            .map(|v| v.value())
            .ok_or_else(|| StoreError::Corrupt(format!("the newest message of {conv:?}, seq {last}, is not indexed")))?;
        log.tails.insert(conv, (last, no))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConvId, UserId};
    use crate::protocol::Content;
    use redb::{ReadableDatabase, ReadableTableMetadata};

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

    #[test]
    fn links_read_back_what_was_written_and_a_broken_one_is_refused() {
        for (link, json) in [
            (Link::First, &b"{}"[..]),
            (Link::Back(1), b"{\"a\":1}"),
            (Link::Back(127), b"{}"),
            (Link::Back(128), b"{}"),
            (Link::Back(u64::MAX), b"{}"),
        ] {
            let stored = encode(link, json);
            assert_eq!(split(&stored), Some((link, json)), "{link:?}");
            assert_eq!(json_of(&stored), json);
        }
        assert_eq!(encode(Link::Back(300), b"{}").len(), 1 + 2 + 2, "a short distance takes few bytes");
        assert_eq!(split(b"{\"plain\":1}"), Some((Link::Unlinked, &b"{\"plain\":1}"[..])), "schema 6 and before: plain JSON");
        assert_eq!(encode(Link::Unlinked, b"{}"), b"{}");
        for broken in [&[LINKED][..], &[LINKED, 0x80], &[LINKED, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]] {
            assert_eq!(split(broken), None, "{broken:?}");
            assert_eq!(json_of(broken), b"");
        }
    }

    #[test]
    fn every_seq_is_found_by_walking_back_from_the_nearest_known_point() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let (x, y): (ConvId, ConvId) = ("d:1:2".parse().unwrap(), "g:7".parse().unwrap());
        let (kx, ky) = (x.key(), y.key());
        let n = 5 * INDEXED_EVERY + 3;
        let txn = db.begin_write().unwrap();
        {
            let mut log = write(&txn).unwrap();
            // y gets two messages for each of x's, so x's links skip over y's.
            for seq in 1..=n {
                for (c, k, s) in [(x, kx, seq), (y, ky, 2 * seq - 1), (y, ky, 2 * seq)] {
                    log.append((k.0, k.1, s), &serde_json::to_vec(&message(c, s, &format!("{c} {s}"))).unwrap()).unwrap();
                }
            }
            let mut edited = message(x, INDEXED_EVERY + 1, "edited");
            edited.rev = 3;
            log.replace((kx.0, kx.1, INDEXED_EVERY + 1), &edited).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let log = read(&txn).unwrap();
        assert_eq!(log.len().unwrap(), 3 * n);
        let indexed = txn.open_table(MESSAGE_INDEX).unwrap().len().unwrap();
        assert_eq!(indexed, n / INDEXED_EVERY + 2 * n / INDEXED_EVERY, "one index entry per sixteen messages");
        for seq in 1..=n {
            let m = log.get((kx.0, kx.1, seq)).unwrap().unwrap();
            assert_eq!((m.conv, m.seq), (x, seq));
        }
        assert_eq!(log.get((kx.0, kx.1, INDEXED_EVERY + 1)).unwrap().unwrap().rev, 3, "a changed message keeps its place and link");
        assert_eq!(log.get((kx.0, kx.1, INDEXED_EVERY)).unwrap().unwrap().seq, INDEXED_EVERY, "the walk still passes it");
        for missing in [0, n + 1] {
            assert!(log.get((kx.0, kx.1, missing)).unwrap().is_none());
            assert!(!log.contains((kx.0, kx.1, missing)).unwrap());
        }
        assert!(log.get((9, 9, 1)).unwrap().is_none(), "a conversation with no messages");
        let seqs = |ms: &[Message]| ms.iter().map(|m| m.seq).collect::<Vec<_>>();
        for (from, to, newest_first, limit, want, more) in [
            (1, u64::MAX, true, 5, (n - 4..=n).collect::<Vec<_>>(), true),
            (1, 20, true, 5, (16..=20).collect(), true),
            (3, 40, false, 4, (3..=6).collect(), true),
            (n - 2, u64::MAX, false, 50, (n - 2..=n).collect(), false),
            (0, 2, false, 50, vec![1, 2], false),
            (n + 1, u64::MAX, true, 5, vec![], false),
        ] {
            let (page, m) = log.range(kx, from, to, newest_first, limit).unwrap();
            assert_eq!((seqs(&page), m), (want, more), "{from}..={to} newest_first {newest_first} limit {limit}");
        }
        let newest_even = log.newest_where(kx, 1, 35, 10, |seq| Ok(seq % 2 == 1)).unwrap().unwrap();
        assert_eq!(newest_even.seq, 34);
        let keys = [(ky.0, ky.1, 2 * n), (ky.0, ky.1, 40), (ky.0, ky.1, 38), (ky.0, ky.1, 3), (kx.0, kx.1, 50), (kx.0, kx.1, n + 9)];
        let many = log.get_many(keys).unwrap();
        assert_eq!(many.iter().map(|m| (m.conv, m.seq)).collect::<Vec<_>>(), [(y, 2 * n), (y, 40), (y, 38), (y, 3), (x, 50)]);
    }

    #[test]
    fn an_append_that_does_not_follow_its_conversation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let x: ConvId = "d:1:2".parse().unwrap();
        let k = x.key();
        let txn = db.begin_write().unwrap();
        let mut log = write(&txn).unwrap();
        assert!(log.append((k.0, k.1, 2), b"{}").is_err(), "a conversation starts at seq 1");
        log.append((k.0, k.1, 1), &serde_json::to_vec(&message(x, 1, "a")).unwrap()).unwrap();
        assert!(log.append((k.0, k.1, 3), b"{}").is_err(), "no gap");
        assert!(log.append((k.0, k.1, 1), b"{}").is_err(), "no seq twice");
    }
}
