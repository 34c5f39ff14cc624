//! Favourites ("Saved"): each user's copies of messages they could read, with a full-text
//! index of their own (texts, file names, sender names, a card's contents; CJK as in
//! `search.rs`) and the files they hold, which their owner may download whatever happens to the
//! original (recalled, or the user left the conversation).

use std::collections::{BTreeSet, HashMap};

use redb::{ReadableTable, WriteTransaction};

use super::facts::ConvFacts;
use super::forward::{display_name, readable_sources};
use super::messages::MessageRefusal;
use super::search::{self, QueryToken};
use super::tables::{FAVORITE_MSGS, FAVORITE_SEARCH, FAVORITES, FILE_FAVS, META};
use super::{Store, StoreError, now_ms};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::Favorite;

/// Most favourites one user keeps.
pub const MAX_FAVORITES: usize = 5000;

/// The result of saving: the favourite, and whether it existed already.
#[derive(Clone, Debug)]
pub struct Saved {
    pub favorite: Favorite,
    pub existing: bool,
}

fn decode(v: &[u8]) -> Result<Favorite, StoreError> {
    Ok(serde_json::from_slice(v)?)
}

fn searchable(f: &Favorite) -> String {
    format!("{} {}", f.sender_name, f.content.search_text().unwrap_or_default())
}

fn index(txn: &WriteTransaction, user: UserId, f: &Favorite, insert: bool) -> Result<(), StoreError> {
    let mut t = txn.open_table(FAVORITE_SEARCH)?;
    for token in search::index_tokens(&searchable(f)) {
        if insert {
            t.insert((user.0, token.as_str(), f.id), ())?;
        } else {
            t.remove((user.0, token.as_str(), f.id))?;
        }
    }
    let mut files = txn.open_table(FILE_FAVS)?;
    for file in f.content.files() {
        if insert {
            files.insert((file, user.0, f.id), ())?;
        } else {
            files.remove((file, user.0, f.id))?;
        }
    }
    Ok(())
}

impl Store {
    /// Saves message `seq` of `conv` for `user`, if `read_gate` (inside the transaction) lets
    /// them read the conversation and the message is theirs to see and not recalled. Saving a
    /// message twice answers the first favourite.
    pub async fn save_favorite(
        &self,
        user: UserId,
        conv: ConvId,
        seq: u64,
        read_gate: impl Fn(&ConvFacts) -> Result<(), Refusal> + Send + 'static,
    ) -> Result<Result<Saved, MessageRefusal>, StoreError> {
        self.write(move |txn| {
            let m = match readable_sources(txn, user, conv, &[seq], &read_gate)? {
                Ok(mut s) => s.remove(0),
                Err(r) => return Ok(Err(r)),
            };
            let (a, b) = conv.key();
            let mut favs = txn.open_table(FAVORITES)?;
            if let Some(id) = txn.open_table(FAVORITE_MSGS)?.get((user.0, a, b, seq))?.map(|v| v.value())
                && let Some(v) = favs.get((user.0, id))?
            {
                return Ok(Ok(Saved { favorite: decode(v.value())?, existing: true }));
            }
            if favs.range((user.0, 0)..=(user.0, u64::MAX))?.count() >= MAX_FAVORITES {
                return Ok(Err(MessageRefusal::Denied(Refusal::TooMany("You can keep at most 5,000 saved messages."))));
            }
            let mut meta = txn.open_table(META)?;
            let id = meta.get("next_favorite_id")?.map_or(1, |v| v.value());
            meta.insert("next_favorite_id", id + 1)?;
            let sender_name = display_name(txn, m.sender, &mut HashMap::new())?;
            let favorite = Favorite { id, conv, seq, sender: m.sender, sender_name, ts: m.ts, saved_at: now_ms(), content: m.content };
            let bytes = serde_json::to_vec(&favorite)?;
            favs.insert((user.0, id), bytes.as_slice())?;
            txn.open_table(FAVORITE_MSGS)?.insert((user.0, a, b, seq), id)?;
            index(txn, user, &favorite, true)?;
            Ok(Ok(Saved { favorite, existing: false }))
        })
        .await
    }

    /// Removes one of `user`'s favourites; whether it existed.
    pub async fn remove_favorite(&self, user: UserId, id: u64) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let Some(f) = txn.open_table(FAVORITES)?.remove((user.0, id))?.map(|v| decode(v.value())).transpose()? else {
                return Ok(false);
            };
            let (a, b) = f.conv.key();
            txn.open_table(FAVORITE_MSGS)?.remove((user.0, a, b, f.seq))?;
            index(txn, user, &f, false)?;
            Ok(true)
        })
        .await
    }

    /// `user`'s favourites, newest first, with an id below `before`, matching every token of
    /// `query` when given; at most `limit`, and whether there are more.
    pub async fn favorites(
        &self,
        user: UserId,
        query: Option<String>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Favorite>, bool), StoreError> {
        const MAX_POSTINGS: usize = 20_000;
        self.read(move |txn| {
            let favs = txn.open_table(FAVORITES)?;
            let below = before.unwrap_or(u64::MAX);
            let mut out = Vec::new();
            let mut more = false;
            match query {
                None => {
                    for e in favs.range((user.0, 0)..(user.0, below))?.rev() {
                        if out.len() == limit {
                            more = true;
                            break;
                        }
                        out.push(decode(e?.1.value())?);
                    }
                }
                Some(q) => {
                    let tokens = search::query_tokens(&q);
                    let index = txn.open_table(FAVORITE_SEARCH)?;
                    let mut hits: Option<BTreeSet<u64>> = None;
                    for token in tokens {
                        let (start, end) = match &token {
                            QueryToken::Exact(t) => (t.clone(), format!("{t}\u{0}")),
                            QueryToken::Prefix(p) => (p.clone(), search::prefix_end(p)),
                        };
                        let mut found = BTreeSet::new();
                        for e in index.range((user.0, start.as_str(), 0)..(user.0, end.as_str(), 0))?.take(MAX_POSTINGS) {
                            let id = e?.0.value().2;
                            if id < below {
                                found.insert(id);
                            }
                        }
                        hits = Some(match hits {
                            None => found,
                            Some(prev) => prev.intersection(&found).copied().collect(),
                        });
                    }
                    for id in hits.unwrap_or_default().into_iter().rev() {
                        if out.len() == limit {
                            more = true;
                            break;
                        }
                        if let Some(v) = favs.get((user.0, id))? {
                            out.push(decode(v.value())?);
                        }
                    }
                }
            }
            Ok((out, more))
        })
        .await
    }

    /// Whether file `id` is in one of `user`'s favourites (so they may download it).
    pub async fn file_saved_by(&self, id: String, user: UserId) -> Result<bool, StoreError> {
        self.read(move |txn| {
            Ok(txn.open_table(FILE_FAVS)?.range((id.as_str(), user.0, 0)..=(id.as_str(), user.0, u64::MAX))?.next().is_some())
        })
        .await
    }
}
