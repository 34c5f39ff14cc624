//! Answering a search of messages from the full-text index (`SEARCH`, written by
//! `indexer.rs` from the tokens of `search.rs`): each word's postings per conversation, newest
//! first, intersected over the query's words.

use std::collections::{BTreeSet, HashMap};

use super::log;
use super::search::{self, QueryToken};
use super::tables::{HIDDEN_MESSAGES, SEARCH};
use super::{Store, StoreError};
use crate::ids::{ConvId, UserId};
use crate::protocol::Message;

impl Store {
    /// Messages matching every token of `query`, newest first, within `convs` (each with the
    /// first seq the user may see), leaving out those `user` deleted for themselves. At most
    /// `limit` after skipping `offset`.
    pub async fn search_messages(
        &self,
        user: UserId,
        query: String,
        convs: HashMap<ConvId, u64>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        // The last word of a query matches as a prefix of at most this many words.
        const MAX_PREFIX_WORDS: usize = 64;
        self.index_search().await?;
        self.read(move |txn| {
            let tokens = search::query_tokens(&query);
            if tokens.is_empty() || convs.is_empty() {
                return Ok(Vec::new());
            }
            let index = txn.open_table(SEARCH)?;
            let allowed: HashMap<(u64, u64), u64> = convs.iter().map(|(c, f)| (c.key(), *f)).collect();
            let mut hits: Option<BTreeSet<(u64, u64, u64)>> = None;
            for token in tokens {
                let mut found = BTreeSet::new();
                match &token {
                    QueryToken::Exact(t) => postings_newest_first(&index, t, &allowed, &mut found)?,
                    QueryToken::Prefix(p) => {
                        // Each word that starts with the prefix (the prefix itself first), up to
                        // MAX_PREFIX_WORDS of them in alphabetical order.
                        let end = search::prefix_end(p);
                        let mut from = p.clone();
                        for _ in 0..MAX_PREFIX_WORDS {
                            let Some(entry) = index.range((from.as_str(), 0, 0, 0)..(end.as_str(), 0, 0, 0))?.next() else { break };
                            let word = entry?.0.value().0.to_owned();
                            postings_newest_first(&index, &word, &allowed, &mut found)?;
                            // Words hold no NUL: the next word sorts after this one followed by NUL.
                            from = format!("{word}\u{0}");
                        }
                    }
                }
                hits = Some(match hits {
                    None => found,
                    Some(prev) => prev.intersection(&found).copied().collect(),
                });
            }
            let hidden = txn.open_table(HIDDEN_MESSAGES)?;
            let mut shown = Vec::new();
            // Newest first within each conversation, so that the log walks each stretch once.
            for k in hits.unwrap_or_default().into_iter().rev() {
                if hidden.get((user.0, k.0, k.1, k.2))?.is_none() {
                    shown.push(k);
                }
            }
            let mut out = log::read(txn)?.get_many(shown)?;
            out.retain(|m| m.recalled.is_none());
            out.sort_by(|x, y| y.ts.cmp(&x.ts).then(y.seq.cmp(&x.seq)));
            Ok(out.into_iter().skip(offset).take(limit).collect())
        })
        .await
    }
}

/// The most postings one word adds to a search of one conversation: bounds a query's time and
/// memory.
const MAX_POSTINGS: usize = 20_000;
/// In a search of many conversations, each may add at least this many of a word's postings.
const MIN_PER_CONV: usize = 500;
/// ... until one query token has added this many in all.
const MAX_POSTINGS_IN_ALL: usize = 10 * MAX_POSTINGS;

/// Adds to `found` the postings of `word` in each allowed conversation (from its first visible
/// seq), newest first: a word's postings are kept per conversation, so a word common in some
/// conversations cannot crowd another's matches out of the budget.
fn postings_newest_first(
    index: &redb::ReadOnlyTable<(&str, u64, u64, u64), ()>,
    word: &str,
    allowed: &HashMap<(u64, u64), u64>,
    found: &mut BTreeSet<(u64, u64, u64)>,
) -> Result<(), StoreError> {
    let per_conv = (MAX_POSTINGS / allowed.len().max(1)).max(MIN_PER_CONV);
    for (&(a, b), &first) in allowed {
        if found.len() >= MAX_POSTINGS_IN_ALL {
            break;
        }
        for entry in index.range((word, a, b, first)..=(word, a, b, u64::MAX))?.rev().take(per_conv) {
            found.insert((a, b, entry?.0.value().3));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::ids::{ConvId, UserId};
    use crate::store::tables::SEARCH;
    use crate::store::{Store, StoreOptions, send_text};

    #[tokio::test]
    async fn a_word_common_in_one_conversation_does_not_hide_it_in_another() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let busy = ConvId::Direct(UserId(1), UserId(2));
        let quiet = ConvId::Direct(UserId(1), UserId(3));
        let old = send_text(&s, busy, "c-old", "hello from long ago").await.message.seq;
        // 30,000 more postings of "hello" in the busy conversation (more than one word may add
        // to a search), the conversation's newest, with a key below the quiet one's.
        let (a, b) = busy.key();
        s.write(move |txn| {
            let mut index = txn.open_table(SEARCH)?;
            for seq in 1_000..31_000 {
                index.insert(("hello", a, b, seq), ())?;
            }
            Ok(())
        })
        .await
        .unwrap();
        let newest = send_text(&s, quiet, "c-new", "hello from the quiet chat").await.message;
        assert!(busy.key() < quiet.key());
        let both = HashMap::from([(busy, 1), (quiet, 1)]);
        let found = s.search_messages(UserId(1), "hello".into(), both.clone(), 0, 20).await.unwrap();
        assert_eq!(found.iter().map(|m| (m.conv, m.seq)).collect::<Vec<_>>(), vec![(quiet, newest.seq)]);
        // The same as a prefix of the word, the way a query's last word is matched.
        let found = s.search_messages(UserId(1), "hel".into(), both.clone(), 0, 20).await.unwrap();
        assert_eq!(found.iter().map(|m| (m.conv, m.seq)).collect::<Vec<_>>(), vec![(quiet, newest.seq)]);
        // With two words, the intersection still reaches the quiet conversation.
        let found = s.search_messages(UserId(1), "hello quiet".into(), both, 0, 20).await.unwrap();
        assert_eq!(found.len(), 1);
        // The busy conversation's own real message is older than its newest 20,000 postings:
        // the search keeps the newest of a conversation's matches.
        let found = s.search_messages(UserId(1), "hello".into(), HashMap::from([(busy, 1)]), 0, 20).await.unwrap();
        assert!(found.iter().all(|m| m.seq != old), "{found:?}");
    }
}
