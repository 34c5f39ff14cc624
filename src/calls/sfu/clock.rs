//! A forwarded video's RTP clock: continuous for the receiver although the SFU switches
//! between simulcast layers, each of which runs a clock of its own with its own start.

use std::time::Instant;

/// Maps a sender layer's RTP times (in ticks of one frequency) onto one continuous outgoing
/// timeline.
#[derive(Debug, Default)]
pub struct Clock {
    base_in: u64,
    base_out: u64,
    last_out: Option<(u64, Instant)>,
}

impl Clock {
    /// Starts mapping a new layer whose next frame is at `in_time`: it comes out right after the
    /// last frame sent, as much later as time has passed (at least one tick).
    pub fn restart(&mut self, in_time: u64, now: Instant, hz: u64) {
        self.base_in = in_time;
        self.base_out = match self.last_out {
            None => in_time,
            Some((out, at)) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks = u64::try_from(elapsed.as_micros().saturating_mul(u128::from(hz)) / 1_000_000).unwrap_or(u64::MAX);
                out.saturating_add(ticks.max(1))
            }
        };
    }

    /// The outgoing time of a frame at `in_time` of the current layer.
    pub fn map(&mut self, in_time: u64, now: Instant) -> u64 {
        let out = self.base_out.saturating_add(in_time.saturating_sub(self.base_in));
        self.last_out = Some((out, now));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_layer_switch_continues_the_timeline() {
        let t0 = Instant::now();
        let mut c = Clock::default();
        c.restart(1_000_000, t0, 90_000);
        assert_eq!(c.map(1_000_000, t0), 1_000_000, "the first layer passes through");
        assert_eq!(c.map(1_003_000, t0 + Duration::from_millis(33)), 1_003_000);
        // Another layer, whose clock started elsewhere, 33 ms later.
        let t1 = t0 + Duration::from_millis(66);
        c.restart(5_000, t1, 90_000);
        let first = c.map(5_000, t1);
        assert_eq!(first, 1_003_000 + 2_970, "33 ms at 90 kHz after the last frame sent");
        assert_eq!(c.map(8_000, t1 + Duration::from_millis(33)), first + 3_000, "then it follows the new layer");
        // Time standing still still moves the clock on by a tick; old frames do not go back.
        c.restart(9_000, t1 + Duration::from_millis(33), 90_000);
        assert_eq!(c.map(9_000, t1 + Duration::from_millis(33)), first + 3_001);
        assert_eq!(c.map(100, t1 + Duration::from_millis(40)), first + 3_001);
    }
}
