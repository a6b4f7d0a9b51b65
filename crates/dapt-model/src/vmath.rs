//! Vector code for the fused kernels: [`vectorized`] to compile their loops for the CPU's
//! widest instructions, and branch-free f32 `exp` and `erf` that vectorise.
//!
//! libm's `expf` and `erff` are calls with branches, so loops over them stay scalar; these
//! are straight-line polynomials the compiler vectorises (16 lanes with AVX-512).

/// Runs `body` compiled for the widest vector instructions the CPU has, picked at run time
/// (AVX-512 or AVX2 on x86-64, as gemm does): the kernels' loops are plain scalar code the
/// compiler vectorises, and a default x86-64 build targets SSE2's 4 lanes. The result does
/// not depend on the pick: Rust neither fuses multiply-adds nor reorders float operations,
/// so every lane width computes the same values. Helpers called from `body` must be
/// `#[inline(always)]` to be compiled with it.
#[inline(always)]
pub(crate) fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(body)
}

/// `exp(x)` for `x <= 0`, within 2 ulp; 0 below -87.3 (where f32 leaves the normal range).
/// Cephes' `expf`: `x = n ln 2 + r`, `|r| <= ln 2 / 2`, a degree-6 polynomial for `e^r`,
/// and `2^n` built in the exponent bits.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer kept in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let underflow = x < -87.3;
    let x = x.max(-87.3);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let scale = f32::from_bits((n_bits.wrapping_add(127) as u32) << 23);
    if underflow { 0.0 } else { e_r * scale }
}

/// `erf(x)` within 1e-6 absolute: the rational approximation Eigen and XLA use for f32
/// (odd degree-13 numerator over even degree-8 denominator), clamped to `[-4, 4]`, where
/// f32's `erf` is already ±1. NaN stays NaN.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    let p = x2 * p - 2.101_024e-6;
    let p = x2 * p - 5.692_506_4e-5;
    let p = x2 * p - 7.349_906_3e-4;
    let p = x2 * p - 2.9546e-3;
    let p = x2 * p - 1.609_603_3e-2;
    let q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    let q = x2 * q - 1.682_827e-3;
    let q = x2 * q - 7.373_329e-3;
    let q = x2 * q - 1.426_473_9e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_over_the_softmax_range() {
        let mut worst = 0f32;
        for i in 0..=200_000 {
            let x = -(i as f32) * 87.0 / 200_000.0;
            let (ours, libm) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((ours - libm) / libm).abs());
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(-1000.0), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn vectorized_code_computes_the_same_values() {
        let inputs: Vec<f32> = (0..10_000).map(|i| (i as f32 - 5_000.0) * 1e-3).collect();
        #[inline(always)]
        fn kernel(x: &[f32]) -> Vec<f32> {
            x.iter()
                .map(|&v| exp_nonpositive(-v.abs()) * erf(v) + v * v)
                .collect()
        }
        let plain = kernel(&inputs);
        let wide = vectorized(
            #[inline(always)]
            || kernel(&inputs),
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&plain), bits(&wide));
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f64;
        for i in -300_000..=300_000 {
            let x = i as f32 * 6.0 / 300_000.0;
            worst = worst.max((f64::from(erf(x)) - libm::erf(f64::from(x))).abs());
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!(erf(f32::NAN).is_nan());
    }
}
