//! Who is speaking in a call, from the audio level each sender puts in its packets (RFC 6464:
//! the level in dBov, 0 the loudest and -127 silence; str0m gives it negative, the wire carries
//! its magnitude, and either sign is read the same): the rule, pure and unit-tested.
//!
//! In calls larger than [`SELECT_AUDIO_ABOVE`], only the audio of the [`MAX_AUDIBLE`] loudest
//! of those who made a sound in the last [`HANGOVER`] is forwarded (everyone else is silent
//! anyway): forwarding costs per receiver and sender, and a 50-person audio call would otherwise
//! need more than a core. Loudness rises fast and fades slowly, so a new voice gets through
//! within a few packets.
//!
//! Each sender's loudness is smoothed (an exponential average over its packets), someone counts
//! as speaking above a threshold, and the list (loudest first, at most [`MAX_SPEAKERS`]) is
//! reported when it changes, at most once per [`MIN_INTERVAL`]. A sender whose packets stop
//! counts as silent after [`SILENCE_AFTER`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::UserId;

/// Most people listed as speaking at once.
pub const MAX_SPEAKERS: usize = 3;
/// Shortest time between two reports.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// No audio packet for this long: silent.
pub const SILENCE_AFTER: Duration = Duration::from_millis(600);
/// Smoothed loudness (127 minus the level) above which someone speaks: about -50 dBov.
const SPEAKING_ABOVE: f32 = 77.0;
/// Calls with more people than this forward only the audible ones' audio.
pub const SELECT_AUDIO_ABOVE: usize = 16;
/// Most senders whose audio is forwarded at once in such a call.
pub const MAX_AUDIBLE: usize = 5;
/// A packet this loud (about -60 dBov) makes its sender audible for [`HANGOVER`].
const AUDIBLE_ABOVE: f32 = 67.0;
/// How long a sound keeps its sender audible.
pub const HANGOVER: Duration = Duration::from_secs(1);
/// Weight of a new packet in the average when it is louder (a voice counts within a few
/// packets) and when it is quieter (packets come every 20 ms: about 200 ms to fade).
const ATTACK: f32 = 0.5;
const RELEASE: f32 = 0.1;

#[derive(Debug, Default)]
pub struct Speakers {
    loudness: HashMap<UserId, (f32, Instant)>,
    /// When each sender last sent a packet loud enough to be heard.
    sounded: HashMap<UserId, Instant>,
    reported: Vec<UserId>,
    last_report: Option<Instant>,
}

impl Speakers {
    /// An audio packet from `user` with `level` dBov (0 loudest, -127 silent).
    pub fn observe(&mut self, user: UserId, level: i8, now: Instant) {
        let loud = 127.0 - f32::from(level.unsigned_abs().min(127));
        let e = self.loudness.entry(user).or_insert((0.0, now));
        e.0 += if loud > e.0 { ATTACK } else { RELEASE } * (loud - e.0);
        e.1 = now;
        if loud > AUDIBLE_ABOVE {
            self.sounded.insert(user, now);
        }
    }

    /// Whether `user`'s audio goes to the others in a call of `size` people: always in calls of
    /// up to [`SELECT_AUDIO_ABOVE`]; in larger ones, when they are among the [`MAX_AUDIBLE`]
    /// loudest of those who made a sound in the last [`HANGOVER`].
    pub fn forwards_audio(&self, user: UserId, size: usize, now: Instant) -> bool {
        if size <= SELECT_AUDIO_ABOVE {
            return true;
        }
        let recent = |at: &Instant| now.saturating_duration_since(*at) < HANGOVER;
        if !self.sounded.get(&user).is_some_and(recent) {
            return false;
        }
        let mine = self.loudness.get(&user).map_or(0.0, |(l, _)| *l);
        let louder = self
            .sounded
            .iter()
            .filter(|(u, at)| **u != user && recent(at))
            .filter(|(u, _)| {
                let theirs = self.loudness.get(u).map_or(0.0, |(l, _)| *l);
                theirs.total_cmp(&mine).then(user.cmp(u)).is_gt()
            })
            .count();
        louder < MAX_AUDIBLE
    }

    /// `user` left: forgotten.
    pub fn remove(&mut self, user: UserId) {
        self.loudness.remove(&user);
        self.sounded.remove(&user);
    }

    /// Who speaks now, loudest first.
    pub fn current(&self, now: Instant) -> Vec<UserId> {
        let mut v: Vec<(UserId, f32)> = self
            .loudness
            .iter()
            .filter(|(_, (l, at))| *l > SPEAKING_ABOVE && now.saturating_duration_since(*at) < SILENCE_AFTER)
            .map(|(u, (l, _))| (*u, *l))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter().take(MAX_SPEAKERS).map(|(u, _)| u).collect()
    }

    /// The list to report, when it changed and the last report is old enough.
    pub fn report(&mut self, now: Instant) -> Option<Vec<UserId>> {
        if self.last_report.is_some_and(|t| now.saturating_duration_since(t) < MIN_INTERVAL) {
            return None;
        }
        let current = self.current(now);
        if current == self.reported {
            return None;
        }
        self.reported.clone_from(&current);
        self.last_report = Some(now);
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);

    fn talk(s: &mut Speakers, user: UserId, level: i8, from: Instant, ms: u64) {
        for i in 0..ms / 20 {
            s.observe(user, level, from + Duration::from_millis(i * 20));
        }
    }

    #[test]
    fn the_loudest_speaker_comes_first_and_silence_ends_the_turn() {
        let t0 = Instant::now();
        let mut s = Speakers::default();
        talk(&mut s, A, -30, t0, 1000);
        talk(&mut s, B, -120, t0, 1000);
        assert_eq!(s.report(t0 + Duration::from_secs(1)), Some(vec![A]), "B is near silence");
        talk(&mut s, B, 10, t0 + Duration::from_secs(1), 1000);
        talk(&mut s, A, 40, t0 + Duration::from_secs(1), 1000);
        assert_eq!(s.report(t0 + Duration::from_secs(2)), Some(vec![B, A]));
        assert_eq!(s.report(t0 + Duration::from_millis(2100)), None, "too soon and unchanged");
        // A stops sending: silent after SILENCE_AFTER.
        talk(&mut s, B, 10, t0 + Duration::from_secs(2), 700);
        assert_eq!(s.report(t0 + Duration::from_millis(2700)), Some(vec![B]));
        s.remove(B);
        assert_eq!(s.report(t0 + Duration::from_secs(3)), Some(vec![]));
    }

    #[test]
    fn a_large_call_forwards_the_audio_of_the_few_loudest_who_made_a_sound() {
        let t0 = Instant::now();
        let mut s = Speakers::default();
        let size = SELECT_AUDIO_ABOVE + 1;
        // Everyone in a small call is forwarded, silent or not.
        assert!(s.forwards_audio(A, SELECT_AUDIO_ABOVE, t0));
        // In a large one: seven people talk at different loudness, the rest are silent.
        for (i, level) in [-10i8, -20, -30, -35, -40, -45, -50].into_iter().enumerate() {
            talk(&mut s, UserId(100 + i as u64), level, t0, 400);
        }
        talk(&mut s, B, -120, t0, 400);
        let now = t0 + Duration::from_millis(400);
        let forwarded: Vec<u64> = (100..107).filter(|u| s.forwards_audio(UserId(*u), size, now)).collect();
        assert_eq!(forwarded, vec![100, 101, 102, 103, 104], "the five loudest");
        assert!(!s.forwards_audio(B, size, now), "silence is not forwarded");
        assert!(!s.forwards_audio(A, size, now), "nor someone who sent nothing");
        // A new voice louder than the others gets through within three packets (60 ms).
        for i in 0..3 {
            s.observe(A, -5, now + Duration::from_millis(i * 20));
        }
        let now = now + Duration::from_millis(40);
        assert!(s.forwards_audio(A, size, now));
        assert!(!s.forwards_audio(UserId(104), size, now), "the fifth loudest makes room");
        // A second of silence ends it (the hangover).
        let later = now + HANGOVER + Duration::from_millis(20);
        talk(&mut s, A, -127, now, 1100);
        assert!(!s.forwards_audio(A, size, later));
    }

    #[test]
    fn reports_are_spaced() {
        let t0 = Instant::now();
        let mut s = Speakers::default();
        talk(&mut s, A, 0, t0, 400);
        assert_eq!(s.report(t0 + Duration::from_millis(400)), Some(vec![A]));
        talk(&mut s, B, 0, t0 + Duration::from_millis(400), 400);
        talk(&mut s, A, 0, t0 + Duration::from_millis(400), 400);
        assert_eq!(s.report(t0 + Duration::from_millis(500)), None, "within MIN_INTERVAL");
        assert!(s.report(t0 + Duration::from_millis(800)).is_some_and(|v| v.len() == 2));
        // Out-of-range levels (a bad client) do not panic and count as loudest or silent.
        s.observe(A, -5, t0);
        s.observe(A, i8::MIN, t0);
    }
}
