//! Exponential backoff with jitter between delivery attempts.
//!
//! The server answers 503 while it is starting or overloaded, and every trial of an experiment
//! runs a collector: without jitter they would all retry in lockstep. The delay doubles from
//! [`INITIAL_DELAY`] to [`MAX_DELAY`], and each delay is drawn uniformly from its upper half
//! ("equal jitter"), so a retry never comes sooner than half the schedule says but the collectors
//! of one experiment spread out. The generator is seeded, so a schedule can be replayed in tests.
use std::time::Duration;

/// The first delay: short, because most failures are a server restart or a dropped keep-alive
/// connection that the next attempt already gets past.
pub(crate) const INITIAL_DELAY: Duration = Duration::from_millis(100);
/// The longest delay: a server that comes back is noticed within about 5 s, and a trial's
/// collector still tries often enough to deliver within the final flush timeout.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(5);

/// The delays between attempts at delivering one batch.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// Failed attempts since the last success.
    failures: u32,
    /// SplitMix64 state: a few lines, no dependency, good enough for jitter.
    state: u64,
}

impl Backoff {
    /// A schedule whose jitter is drawn from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            failures: 0,
            state: seed,
        }
    }

    /// Failed attempts since the last [`Backoff::reset`].
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// The delay after one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = ceiling(self.failures);
        self.failures = self.failures.saturating_add(1);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let floor_ms = ceiling_ms / 2;
        let spread = ceiling_ms - floor_ms + 1;
        Duration::from_millis(floor_ms + self.next_random() % spread)
    }

    /// Back to the first delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// SplitMix64 (Steele, Lea, Flood 2014).
    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The largest delay after `failures` earlier failures: `INITIAL_DELAY * 2^failures`, capped.
fn ceiling(failures: u32) -> Duration {
    // 2^6 * 100 ms already exceeds the cap; stopping the shift there avoids overflow.
    let factor = 1u32 << failures.min(6);
    INITIAL_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_100ms_to_a_5s_cap() {
        let ceilings: Vec<u128> = (0..9).map(|n| ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(ceiling(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn delays_lie_in_the_upper_half_of_each_ceiling() {
        for seed in 0..50 {
            let mut backoff = Backoff::new(seed);
            for failures in 0..12 {
                let delay = backoff.next_delay();
                let ceiling = ceiling(failures);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "seed {seed}, failure {failures}: {delay:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
            assert_eq!(backoff.failures(), 12);
        }
    }

    #[test]
    fn jitter_is_deterministic_per_seed_and_differs_between_seeds() {
        let schedule = |seed| {
            let mut backoff = Backoff::new(seed);
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(schedule(7), schedule(7));
        assert_ne!(schedule(7), schedule(8));
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(1);
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert!(backoff.next_delay() <= INITIAL_DELAY);
    }
}
