//! A small, fast, per-thread random number generator (wyrand), seeded from the OS's hash seed.
//! Good for jitter and sleep times; not for anything secret.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new({
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_usize(&hasher as *const _ as usize);
        hasher.finish()
    });
}

fn next_u64() -> u64 {
    STATE.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ (t >> 64) as u64
    })
}

/// A uniformly random integer in `0..=max`.
pub fn up_to(max: u64) -> u64 {
    if max == u64::MAX {
        return next_u64();
    }
    // Lemire's multiply-shift: bias below 2^-64 * (max+1), negligible for sleeps and jitter.
    ((u128::from(next_u64()) * u128::from(max + 1)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_range_and_covers_it() {
        let mut seen = [0u32; 11];
        for _ in 0..11_000 {
            let v = up_to(10);
            assert!(v <= 10);
            seen[v as usize] += 1;
        }
        // Each of the 11 values expects 1,000 hits; 700 is more than 9 standard deviations off.
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
        assert_eq!(up_to(0), 0);
    }
}
