//! The seeded generator every random choice goes through (ChaCha8: the same stream on every
//! platform and release).

use rand_chacha::{
    ChaCha8Rng,
    rand_core::{Rng, SeedableRng},
};

/// A generator for stream `stream` of run seed `seed` (one stream per cluster, one for the fleet).
#[must_use]
pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Uniform in `[lo, hi)`.
pub fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    // 53 random bits → [0, 1).
    #[allow(clippy::cast_precision_loss)]
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    lo + (hi - lo) * unit
}
