//! The fuzzer's random numbers: SplitMix64, seeded afresh for every call from
//! the run's seed and the call's index. So call `i` of a seed draws the same
//! numbers whichever child makes it, and a child started at `i` (after its
//! predecessor was killed) carries on the sequence of draws rather than
//! starting it over; only what the draws pick from (the mappings and handles
//! the child was given) starts afresh with each child.

/// A SplitMix64 generator (Steele, Lea and Flood): tiny, fast, and good enough
/// to spread arguments over the pools.
pub struct Random {
    state: u64,
}

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Random {
    /// The generator for call `index` of the run seeded with `seed`.
    pub fn for_call(seed: u32, index: u64) -> Random {
        let mut random = Random { state: u64::from(seed).wrapping_mul(GOLDEN) ^ index };
        random.state = random.next();
        random
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A number below `bound`, which must not be 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// True one time in `times`.
    pub fn one_in(&mut self, times: u64) -> bool {
        self.below(times) == 0
    }

    /// One of `choices`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len() as u64) as usize]
    }
}
