//! Seeded randomness shared by the engines.
//!
//! Engines must give the same answer for the same (seed, state) on any machine and any future
//! version of `rand`, because the controller may restart and ask again. So the generator is named
//! (`Xoshiro256PlusPlus`, whose output `rand` documents as portable, unlike `StdRng`), each stream
//! is keyed by (seed, purpose, counter) so that one call's draws never depend on how an earlier
//! call was split into batches, and floats and bounded integers are derived from raw `u64`s here
//! rather than through `rand`'s distributions, whose algorithms may change between versions.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

/// The `u64` increment of SplitMix64 (2^64 / golden ratio), used to spread nearby inputs.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser (Steele, Lea and Flood 2014): a bijective mix of 64 bits in which every
/// input bit affects every output bit.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator for draw number `counter` of stream `purpose` under `seed`.
pub(crate) fn stream_rng(seed: u64, purpose: u64, counter: u64) -> Xoshiro256PlusPlus {
    let mut state = mix64(seed ^ mix64(purpose ^ mix64(counter.wrapping_add(GOLDEN_GAMMA))));
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_exact_mut(8) {
        state = state.wrapping_add(GOLDEN_GAMMA);
        chunk.copy_from_slice(&mix64(state).to_le_bytes());
    }
    Xoshiro256PlusPlus::from_seed(bytes)
}

/// A float in `[0, 1)` with 53 random bits.
pub(crate) fn unit_f64(rng: &mut impl Rng) -> f64 {
    // 2^-53: one unit in the last place of a double in [0.5, 1).
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// An integer in `[0, n)` (`0` when `n == 0`). The modulo bias is below `n / 2^128`.
pub(crate) fn below(rng: &mut impl Rng, n: u128) -> u128 {
    if n == 0 {
        return 0;
    }
    let wide = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    wide % n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, purpose, counter| stream_rng(seed, purpose, counter).next_u64();
        assert_eq!(draw(1, 2, 3), draw(1, 2, 3));
        assert_ne!(draw(1, 2, 3), draw(1, 2, 4));
        assert_ne!(draw(1, 2, 3), draw(1, 3, 3));
        assert_ne!(draw(1, 2, 3), draw(2, 2, 3));
        let mut rng = stream_rng(0, 0, 0);
        for _ in 0..1000 {
            let u = unit_f64(&mut rng);
            assert!((0.0..1.0).contains(&u));
            assert!(below(&mut rng, 7) < 7);
        }
        assert_eq!(below(&mut rng, 0), 0);
    }
}
