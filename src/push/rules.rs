//! When a push goes out and what it carries, as pure functions: do-not-disturb hours, muted
//! conversations (a mention still gets through), and the payload the preview setting allows.

use serde_json::{Value, json};

use crate::store::push::{Dnd, Preview, PushPrefs};

/// Longest text a message push carries, in characters (the payload stays far below the 4 KiB
/// a push service accepts).
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest payload, bytes (RFC 8291 leaves 3,993 bytes of plaintext in a 4,096-byte record).
pub const MAX_PAYLOAD_BYTES: usize = 3_900;

/// Minutes since midnight of `"HH:MM"`.
pub fn minutes_of(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && hhmm.len() == 5).then_some(h * 60 + m)
}

/// Whether a do-not-disturb schedule is valid: two times and an offset within a day.
pub fn dnd_is_valid(d: &Dnd) -> bool {
    minutes_of(&d.start).is_some() && minutes_of(&d.end).is_some() && d.utc_offset_minutes.abs() <= 14 * 60
}

/// Whether `now_ms` (UTC) falls in the quiet hours; `start == end` is never.
pub fn in_dnd(d: &Dnd, now_ms: u64) -> bool {
    let (Some(start), Some(end)) = (minutes_of(&d.start), minutes_of(&d.end)) else { return false };
    let utc_min = i64::try_from((now_ms / 60_000) % 1440).unwrap_or(0);
    let local = u32::try_from((utc_min + i64::from(d.utc_offset_minutes)).rem_euclid(1440)).unwrap_or(0);
    if start <= end { (start..end).contains(&local) } else { local >= start || local < end }
}

/// Whether a message reaches the user's closed devices: not in quiet hours, and not in a muted
/// conversation unless it mentions them.
pub fn wants_message(prefs: &PushPrefs, muted: bool, mentioned: bool, now_ms: u64) -> bool {
    !prefs.dnd.as_ref().is_some_and(|d| in_dnd(d, now_ms)) && (!muted || mentioned)
}

/// Whether a call or contact request reaches them: not in quiet hours.
pub fn wants_other(prefs: &PushPrefs, now_ms: u64) -> bool {
    !prefs.dnd.as_ref().is_some_and(|d| in_dnd(d, now_ms))
}

fn cut(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_TEXT_CHARS).collect();
    if text.chars().count() > MAX_TEXT_CHARS {
        out.push('…');
    }
    out
}

/// What a message push tells the device.
pub struct MessageFacts<'a> {
    pub conv: String,
    pub seq: u64,
    pub sender_name: &'a str,
    pub group_name: Option<&'a str>,
    pub text: &'a str,
    pub mention: bool,
    pub unread: u64,
    pub total_unread: u64,
}

/// The payload of a message push: names and text only as far as `preview` allows.
pub fn message_payload(preview: Preview, f: &MessageFacts<'_>) -> Value {
    let mut v = json!({"type":"message","conv":f.conv,"seq":f.seq,"mention":f.mention,"unread":f.unread,"total_unread":f.total_unread});
    if preview != Preview::None {
        v["sender_name"] = json!(cut(f.sender_name));
        if let Some(g) = f.group_name {
            v["group_name"] = json!(cut(g));
        }
    }
    if preview == Preview::Full {
        v["text"] = json!(cut(f.text));
    }
    v
}

/// The payload of an incoming call.
pub fn call_payload(preview: Preview, call: &str, conv: &str, video: bool, caller_name: &str) -> Value {
    let mut v = json!({"type":"call","call":call,"conv":conv,"media": if video { "video" } else { "audio" }});
    if preview != Preview::None {
        v["caller_name"] = json!(cut(caller_name));
    }
    v
}

/// The payload of a contact request.
pub fn request_payload(preview: Preview, from: u64, from_name: &str) -> Value {
    let mut v = json!({"type":"contact_request","user":from});
    if preview != Preview::None {
        v["from_name"] = json!(cut(from_name));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dnd(start: &str, end: &str, off: i32) -> Dnd {
        Dnd { start: start.into(), end: end.into(), utc_offset_minutes: off }
    }

    const H: u64 = 3_600_000;

    #[test]
    fn quiet_hours_span_midnight_in_the_users_own_time() {
        let night = dnd("22:00", "07:00", 480); // UTC+8
        assert!(in_dnd(&night, 15 * H), "15:00 UTC is 23:00 in UTC+8");
        assert!(in_dnd(&night, 22 * H + 59 * 60_000), "06:59 local");
        assert!(!in_dnd(&night, 23 * H), "07:00 local ends it");
        assert!(!in_dnd(&night, 4 * H), "12:00 local");
        let lunch = dnd("12:00", "13:00", -300); // UTC-5
        assert!(in_dnd(&lunch, 17 * H + 30 * 60_000));
        assert!(!in_dnd(&lunch, 18 * H));
        assert!(!in_dnd(&dnd("09:00", "09:00", 0), 9 * H), "an empty span is never");
    }

    #[test]
    fn schedules_with_bad_times_or_offsets_are_invalid() {
        assert!(dnd_is_valid(&dnd("22:00", "07:30", 330)));
        for d in [dnd("24:00", "07:00", 0), dnd("7:00", "08:00", 0), dnd("22:00", "07:60", 0), dnd("22:00", "07:00", 900)] {
            assert!(!dnd_is_valid(&d), "{d:?}");
        }
    }

    #[test]
    fn a_muted_conversation_stays_quiet_unless_it_mentions_you_and_quiet_hours_silence_all() {
        let mut p = PushPrefs::default();
        assert!(wants_message(&p, false, false, 0));
        assert!(!wants_message(&p, true, false, 0));
        assert!(wants_message(&p, true, true, 0), "a mention gets through a mute");
        p.dnd = Some(dnd("00:00", "23:59", 0));
        assert!(!wants_message(&p, false, true, H));
        assert!(!wants_other(&p, H));
    }

    #[test]
    fn the_preview_setting_decides_what_the_payload_carries() {
        let f = MessageFacts {
            conv: "g:1".into(),
            seq: 9,
            sender_name: "Ann",
            group_name: Some("Team"),
            text: &"x".repeat(500),
            mention: true,
            unread: 2,
            total_unread: 5,
        };
        let full = message_payload(Preview::Full, &f);
        assert_eq!(full["text"].as_str().unwrap().chars().count(), MAX_TEXT_CHARS + 1, "cut with an ellipsis");
        assert_eq!((full["sender_name"].as_str(), full["group_name"].as_str()), (Some("Ann"), Some("Team")));
        let sender = message_payload(Preview::Sender, &f);
        assert!(sender.get("text").is_none() && sender["sender_name"] == "Ann");
        let none = message_payload(Preview::None, &f);
        for k in ["text", "sender_name", "group_name"] {
            assert!(none.get(k).is_none(), "{k}");
        }
        assert_eq!((none["conv"].as_str(), none["unread"].as_u64(), none["total_unread"].as_u64()), (Some("g:1"), Some(2), Some(5)));
        assert!(call_payload(Preview::None, "c", "d:1:2", true, "Ann").get("caller_name").is_none());
        assert_eq!(call_payload(Preview::Full, "c", "d:1:2", true, "Ann")["media"], "video");
        assert!(request_payload(Preview::None, 7, "Ann").get("from_name").is_none());
        // The largest payload stays far below what a push service accepts.
        let long_names = MessageFacts { sender_name: &"名".repeat(300), group_name: Some(&"组".repeat(300)), ..f };
        assert!(message_payload(Preview::Full, &long_names).to_string().len() < MAX_PAYLOAD_BYTES);
    }
}
