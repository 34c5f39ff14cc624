//! What counts as one emoji: the rule behind `emoji` message content and reactions.
//!
//! One emoji is one pictograph with what may follow it (variation selectors, skin tones, tag
//! characters), several such joined by zero-width joiners (families, professions), a flag (two
//! regional indicators), or a keycap (`1️⃣`). Written from the Unicode emoji ranges rather than a
//! table, so a new emoji in an existing block is accepted without a release.

/// Longest emoji accepted, in bytes (the longest ZWJ sequences are about 35).
pub const MAX_EMOJI_BYTES: usize = 64;

/// Characters that are emoji (or may be shown as one) on their own.
fn is_pictograph(c: char) -> bool {
    matches!(c,
        '\u{A9}' | '\u{AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
        | '\u{2194}'..='\u{21AA}' | '\u{231A}'..='\u{23FF}' | '\u{24C2}' | '\u{25AA}'..='\u{27BF}'
        | '\u{2934}' | '\u{2935}' | '\u{2B05}'..='\u{2B55}' | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
        | '\u{1F000}'..='\u{1FAFF}')
}

/// Characters that only change the emoji before them: variation selectors, the keycap mark,
/// skin tones and tag characters (subdivision flags).
fn is_modifier(c: char) -> bool {
    matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{20E3}' | '\u{1F3FB}'..='\u{1F3FF}' | '\u{E0020}'..='\u{E007F}')
}

/// Whether `s` is exactly one emoji.
pub fn is_one_emoji(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_EMOJI_BYTES {
        return false;
    }
    let (mut bases, mut regional, mut joined, mut keycap) = (0usize, 0usize, false, false);
    for c in s.chars() {
        match c {
            '\u{200D}' => {
                if bases == 0 || joined {
                    return false;
                }
                joined = true;
                continue;
            }
            c if is_modifier(c) => {
                if bases == 0 || joined {
                    return false;
                }
                continue;
            }
            '0'..='9' | '#' | '*' => keycap = true,
            '\u{1F1E6}'..='\u{1F1FF}' => {
                regional += 1;
                // The second regional indicator completes the flag the first one started.
                if regional % 2 == 0 {
                    continue;
                }
            }
            c if is_pictograph(c) => {}
            _ => return false,
        }
        if !joined {
            bases += 1;
        }
        joined = false;
    }
    bases == 1 && !joined && regional % 2 == 0 && (!keycap || (s.ends_with('\u{20E3}') && s.chars().count() <= 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_emoji_of_every_shape_pass() {
        for e in
            ["👍", "❤️", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "🇨🇳", "🇬🇧", "1️⃣", "#️⃣", "©️", "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", "🫶"]
        {
            assert!(is_one_emoji(e), "{e:?} is one emoji");
        }
    }

    #[test]
    fn text_and_several_emoji_do_not() {
        for s in [
            "",
            "a",
            "not an emoji",
            "1",
            "12",
            "好",
            "👍👍",
            "👍 ",
            " 👍",
            "\u{FE0F}",
            "\u{200D}👍",
            "👍\u{200D}",
            "🇨",
            "🇨🇳🇬",
            "👍a",
            "<b>",
        ] {
            assert!(!is_one_emoji(s), "{s:?} is not one emoji");
        }
        let too_long: String = std::iter::once('👍').chain(std::iter::repeat_n('\u{FE0F}', 30)).collect();
        assert!(too_long.len() > MAX_EMOJI_BYTES && !is_one_emoji(&too_long), "too long");
    }

    #[test]
    fn every_emoji_of_the_web_clients_picker_passes() {
        let picker = include_str!("../web/src/lib/emoji.ts");
        let lists: Vec<&str> = picker.split("split(`").skip(1).map(|rest| rest.split('`').next().unwrap_or("")).collect();
        assert!(lists.len() >= 5, "the picker's lists were found");
        for e in lists.iter().flat_map(|l| l.split_whitespace()) {
            assert!(is_one_emoji(e), "the picker offers {e:?}, which the server must accept");
        }
    }
}
