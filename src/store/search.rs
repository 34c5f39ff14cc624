//! The full-text index: tokens of a message's text -> (conversation, seq).
//!
//! Words in scripts with spaces are indexed whole (lower-cased) and found by prefix; Chinese,
//! Japanese and Korean text, which has no spaces between words, is indexed as single characters
//! and overlapping character pairs, so any run of two or more characters matches as a chain of
//! pairs. A message contributes at most [`MAX_TOKENS`] tokens.

use std::collections::BTreeSet;

pub const MAX_TOKENS: usize = 256;
const MAX_WORD: usize = 32;

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // Hiragana, Katakana
        | 0x3400..=0x4DBF // CJK Extension A
        | 0x4E00..=0x9FFF // CJK Unified Ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F)
}

/// A query token: whole (must equal an indexed token) or a prefix (the last word typed).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueryToken {
    Exact(String),
    Prefix(String),
}

fn scan(text: &str, mut emit: impl FnMut(String, bool)) {
    let lower = text.to_lowercase();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    let flush_word = |w: &mut String, emit: &mut dyn FnMut(String, bool)| {
        if !w.is_empty() {
            emit(w.chars().take(MAX_WORD).collect(), false);
            w.clear();
        }
    };
    let flush_cjk = |run: &mut Vec<char>, emit: &mut dyn FnMut(String, bool)| {
        for (i, c) in run.iter().enumerate() {
            emit(c.to_string(), true);
            if let Some(next) = run.get(i + 1) {
                emit(format!("{c}{next}"), true);
            }
        }
        run.clear();
    };
    for c in lower.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut emit);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut emit);
            word.push(c);
        } else {
            flush_word(&mut word, &mut emit);
            flush_cjk(&mut cjk, &mut emit);
        }
    }
    flush_word(&mut word, &mut emit);
    flush_cjk(&mut cjk, &mut emit);
}

/// The tokens under which a text is indexed.
pub fn index_tokens(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    scan(text, |t, _| {
        if out.len() < MAX_TOKENS {
            out.insert(t);
        }
    });
    out
}

/// The tokens a query must match, all of them. In a CJK run of two or more characters only
/// the pairs are needed; the last non-CJK word matches as a prefix.
pub fn query_tokens(query: &str) -> Vec<QueryToken> {
    let mut raw: Vec<(String, bool)> = Vec::new();
    scan(query, |t, cjk| raw.push((t, cjk)));
    let has_pairs = |s: &str| s.chars().count() == 2;
    let mut out: Vec<QueryToken> = Vec::new();
    let last_word = raw.iter().rposition(|(_, cjk)| !cjk);
    for (i, (t, cjk)) in raw.iter().enumerate() {
        if *cjk {
            // A single character is only needed when its run has no pairs.
            let single = t.chars().count() == 1;
            let neighbour_pair = raw.get(i + 1).is_some_and(|(n, c)| *c && has_pairs(n) && n.starts_with(t.as_str()))
                || (i > 0 && raw[i - 1].1 && has_pairs(&raw[i - 1].0) && raw[i - 1].0.ends_with(t.as_str()));
            if single && neighbour_pair {
                continue;
            }
            out.push(QueryToken::Exact(t.clone()));
        } else if Some(i) == last_word {
            out.push(QueryToken::Prefix(t.clone()));
        } else {
            out.push(QueryToken::Exact(t.clone()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The smallest string greater than every string starting with `prefix`, for range scans.
pub fn prefix_end(prefix: &str) -> String {
    let mut s = prefix.to_owned();
    s.push(char::MAX);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_words_are_lowercased_whole() {
        let t = index_tokens("Hello, WORLD! hello-world 42");
        assert_eq!(t.into_iter().collect::<Vec<_>>(), vec!["42", "hello", "world"]);
    }

    #[test]
    fn chinese_is_indexed_as_characters_and_pairs() {
        let t = index_tokens("我爱北京");
        for want in ["我", "爱", "北", "京", "我爱", "爱北", "北京"] {
            assert!(t.contains(want), "{want}");
        }
        assert_eq!(query_tokens("北京"), vec![QueryToken::Exact("北京".into())]);
        assert_eq!(query_tokens("京"), vec![QueryToken::Exact("京".into())]);
        assert_eq!(query_tokens("爱北京"), vec![QueryToken::Exact("北京".into()), QueryToken::Exact("爱北".into())]);
    }

    #[test]
    fn mixed_queries_match_as_the_index_does() {
        let indexed = index_tokens("明天 meeting 在北京 at 3pm");
        for q in query_tokens("北京 meet") {
            match q {
                QueryToken::Exact(t) => assert!(indexed.contains(&t), "{t}"),
                QueryToken::Prefix(p) => assert!(indexed.iter().any(|t| t.starts_with(&p)), "{p}"),
            }
        }
    }

    #[test]
    fn token_count_is_capped() {
        let text: String = (0..1000).map(|i| format!("w{i} ")).collect();
        assert_eq!(index_tokens(&text).len(), MAX_TOKENS);
        assert!(query_tokens("  ,,, ").is_empty());
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        let end = prefix_end("mee");
        for inside in ["mee", "meeting", "meeu"] {
            assert!(inside < end.as_str(), "{inside}");
        }
        assert!("mef" > end.as_str());
    }
}
