//! A tiny host-side RNG. Initialisation draws from it instead of the backend RNG so that the
//! same seed gives the same weights on every backend and regardless of what else in the process
//! touched the backend's (global) generator.

/// SplitMix64: fast, tiny, good enough for weight init and seed derivation.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in the open interval (0, 1).
    fn next_open_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform in the half-open interval [0, 1), on the grid of multiples of 2⁻⁵³: `u < p` holds
    /// with probability `p` (to within 2⁻⁵³) for any `p` in [0, 1].
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n`, without modulo bias (Lemire's multiply-and-reject).
    ///
    /// # Panics
    /// If `n` is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below: empty range");
        // Products whose low half falls under 2^64 mod n would make the first residues more
        // likely; redraw those (never more than n of the 2^64 values).
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if product as u64 >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// `count` samples of N(0, std²) via Box-Muller.
    pub(crate) fn normal_vec(&mut self, count: usize, std: f64) -> Vec<f32> {
        let mut values = Vec::with_capacity(count + 1);
        while values.len() < count {
            let radius = (-2.0 * self.next_open_unit().ln()).sqrt() * std;
            let angle = std::f64::consts::TAU * self.next_open_unit();
            values.push((radius * angle.cos()) as f32);
            values.push((radius * angle.sin()) as f32);
        }
        values.truncate(count);
        values
    }
}

/// Derives an independent stream seed from a base seed and a counter (e.g. the step).
pub(crate) fn derive_seed(base: u64, counter: u64) -> u64 {
    SplitMix64::new(base ^ counter.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_requested_moments() {
        let samples = SplitMix64::new(7).normal_vec(20_001, 0.5);
        assert_eq!(samples.len(), 20_001);
        let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / samples.len() as f64;
        let var = samples
            .iter()
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / samples.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
    }

    #[test]
    fn same_seed_same_stream_and_counters_differ() {
        assert_eq!(
            SplitMix64::new(3).normal_vec(5, 1.0),
            SplitMix64::new(3).normal_vec(5, 1.0)
        );
        assert_ne!(derive_seed(1, 2), derive_seed(1, 3));
    }

    #[test]
    fn unit_and_below_are_uniform_and_in_range() {
        let mut rng = SplitMix64::new(11);
        let draws = 200_000;
        let mut below_p = 0;
        let mut counts = [0u32; 7];
        for _ in 0..draws {
            let u = rng.next_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
            below_p += usize::from(u < 0.3);
            counts[rng.below(7) as usize] += 1;
        }
        let rate = below_p as f64 / draws as f64;
        assert!((rate - 0.3).abs() < 0.005, "P(u < 0.3) = {rate}");
        for (value, &count) in counts.iter().enumerate() {
            let share = f64::from(count) / draws as f64;
            assert!((share - 1.0 / 7.0).abs() < 0.005, "P({value}) = {share}");
        }
        assert_eq!(rng.below(1), 0);
        // The largest range still terminates and stays in range.
        assert!(rng.below(u64::MAX) < u64::MAX);
    }
}
