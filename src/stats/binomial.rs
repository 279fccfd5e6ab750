//! Exact inference for one backend's share of `n` responses, modelled as
//! `Binomial(n, p)`.
//!
//! Two-sided p-values use the doubled smaller tail ("central" test) rather than
//! summing all outcomes no likelier than the observed one: the central test is the
//! one that Clopper–Pearson intervals invert, so a report never shows a p-value
//! below the level next to an interval that still contains the expected share.

use statrs::distribution::{Beta, Binomial, ContinuousCDF, DiscreteCDF, Normal};

/// `P(X <= x)` for `X ~ Binomial(n, p)`, exact at the degenerate shares 0 and 1
/// (statrs rejects neither, but its incomplete beta is undefined there).
pub fn lower_tail(x: u64, n: u64, p: f64) -> f64 {
    if x >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    Binomial::new(p, n).map_or(f64::NAN, |b| b.cdf(x))
}

/// `P(X >= x)` for `X ~ Binomial(n, p)`.
pub fn upper_tail(x: u64, n: u64, p: f64) -> f64 {
    if x == 0 {
        return 1.0;
    }
    if x > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // sf(x - 1) = P(X > x - 1), computed from the incomplete beta directly so tiny
    // tails keep their precision instead of vanishing in `1 - cdf`.
    Binomial::new(p, n).map_or(f64::NAN, |b| b.sf(x - 1))
}

/// Exact two-sided p-value of seeing `x` of `n` when the share is `p`.
pub fn two_sided_p_value(x: u64, n: u64, p: f64) -> f64 {
    let tail = lower_tail(x, n, p).min(upper_tail(x, n, p));
    (2.0 * tail).min(1.0)
}

/// Clopper–Pearson interval for the share behind `x` of `n`, with coverage at least
/// `1 - level`. With no data the interval is the whole of `[0, 1]`.
pub fn clopper_pearson(x: u64, n: u64, level: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let x = x.min(n);
    let (xf, nf) = (x as f64, n as f64);
    let low = if x == 0 {
        0.0
    } else {
        Beta::new(xf, nf - xf + 1.0).map_or(0.0, |b| b.inverse_cdf(level / 2.0))
    };
    let high = if x == n {
        1.0
    } else {
        Beta::new(xf + 1.0, nf - xf).map_or(1.0, |b| b.inverse_cdf(1.0 - level / 2.0))
    };
    (low, high)
}

/// One alternative the fixed-sample test must detect: the share is `alternative`
/// when `expected` was promised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alternative {
    pub expected: f64,
    pub alternative: f64,
}

/// Rejection region of the central two-sided exact test at `level` for
/// `Binomial(n, expected)`: reject when `x <= low` (if `low` is `Some`) or `x >= high`.
#[derive(Debug, Clone, Copy)]
struct Region {
    low: Option<u64>,
    high: u64,
}

impl Region {
    fn new(n: u64, expected: f64, level: f64) -> Self {
        let half = level / 2.0;
        // Both tails are monotone in x, so bisect: this runs for every candidate n
        // of a sample-size search and must stay cheap in debug builds too.
        let low = if lower_tail(0, n, expected) > half {
            None
        } else {
            // Invariant: lower_tail(lo) <= half < lower_tail(hi) (= 1 at hi = n).
            let (mut lo, mut hi) = (0, n);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if lower_tail(mid, n, expected) <= half {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            Some(lo)
        };
        // Invariant: upper_tail(lo) > half >= upper_tail(hi) (= 0 at hi = n + 1).
        let (mut lo, mut hi) = (0, n + 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if upper_tail(mid, n, expected) <= half {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Self { low, high: hi }
    }

    fn power(&self, n: u64, share: f64) -> f64 {
        let low = self.low.map_or(0.0, |c| lower_tail(c, n, share));
        low + upper_tail(self.high, n, share)
    }
}

/// Probability that the exact two-sided test at `level` on `n` responses rejects
/// when the true share is `alt.alternative`.
pub fn power(n: u64, alt: Alternative, level: f64) -> f64 {
    Region::new(n, alt.expected, level).power(n, alt.alternative)
}

/// Normal-approximation sample size for one alternative; only a starting point for
/// the exact search.
fn approximate_n(alt: Alternative, level: f64, power: f64) -> f64 {
    let Ok(normal) = Normal::new(0.0, 1.0) else {
        return 1.0;
    };
    let z_a = normal.inverse_cdf(1.0 - level / 2.0);
    let z_b = normal.inverse_cdf(power);
    let (p0, p1) = (alt.expected, alt.alternative);
    let gap = (p1 - p0).abs().max(f64::EPSILON);
    let root = z_a * (p0 * (1.0 - p0)).sqrt() + z_b * (p1 * (1.0 - p1)).sqrt();
    (root / gap).powi(2)
}

pub fn all_powerful(n: u64, alternatives: &[Alternative], level: f64, target: f64) -> bool {
    alternatives
        .iter()
        .all(|alt| power(n, *alt, level) >= target)
}

/// Smallest `n >= from` at which the exact test at `level` detects every
/// alternative with probability at least `target`. Exact power is a saw-tooth in
/// `n`, so this is the first crossing, checked exactly rather than approximated.
pub fn first_powerful_n(from: u64, alternatives: &[Alternative], level: f64, target: f64) -> u64 {
    let mut n = from.max(1);
    while !all_powerful(n, alternatives, level, target) {
        n += 1;
    }
    n
}

/// Widest bracket scanned one n at a time. Wider brackets (tiny deviations, where
/// n runs into the millions) are first narrowed by bisection, which trusts the
/// upward trend of power over its saw-tooth; a scan of the last window then finds
/// the first crossing in it exactly.
const SCAN_WINDOW: u64 = 2048;

/// Smallest `n` at which the exact test at `level` detects every alternative with
/// probability at least `target`; 0 when there is nothing to detect.
pub fn min_powerful_n(alternatives: &[Alternative], level: f64, target: f64) -> u64 {
    let Some(guess) = alternatives
        .iter()
        .map(|alt| approximate_n(*alt, level, target))
        .reduce(f64::max)
    else {
        return 0;
    };
    let powerful = |n: u64| all_powerful(n, alternatives, level, target);
    // Bracket the crossing from the normal approximation: `lo` lacks power and
    // `hi` has it, so the answer lies in (lo, hi].
    let mut lo = (guess * 0.85).floor().max(1.0) as u64;
    while lo > 1 && powerful(lo) {
        lo /= 2;
    }
    if powerful(lo) {
        return lo;
    }
    let mut hi = ((guess * 1.15).ceil() as u64).max(lo + 1);
    while !powerful(hi) {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    while hi - lo > SCAN_WINDOW {
        let mid = lo + (hi - lo) / 2;
        if powerful(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    first_powerful_n(lo + 1, alternatives, level, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sided_p_value_matches_hand_computed_tails() {
        // P(X >= 7 | n = 10, p = 1/2) = (120 + 45 + 10 + 1) / 1024.
        let p = two_sided_p_value(7, 10, 0.5);
        assert!((p - 352.0 / 1024.0).abs() < 1e-12, "{p}");
        let p = two_sided_p_value(0, 10, 0.5);
        assert!((p - 2.0 / 1024.0).abs() < 1e-12, "{p}");
        assert_eq!(two_sided_p_value(5, 10, 0.5), 1.0);
    }

    #[test]
    fn degenerate_shares_are_exact() {
        assert_eq!(two_sided_p_value(0, 50, 0.0), 1.0);
        assert_eq!(two_sided_p_value(1, 50, 0.0), 0.0);
        assert_eq!(two_sided_p_value(50, 50, 1.0), 1.0);
        assert_eq!(two_sided_p_value(49, 50, 1.0), 0.0);
    }

    #[test]
    fn clopper_pearson_bounds_put_exactly_half_the_level_in_each_tail() {
        let (x, n, level) = (38, 100, 1e-4);
        let (low, high) = clopper_pearson(x, n, level);
        assert!(low < 0.38 && 0.38 < high, "({low}, {high})");
        // The defining property: at the lower bound seeing x or more is just
        // level/2 likely, and at the upper bound seeing x or fewer is.
        let at_low = upper_tail(x, n, low);
        let at_high = lower_tail(x, n, high);
        assert!((at_low / (level / 2.0) - 1.0).abs() < 1e-6, "{at_low}");
        assert!((at_high / (level / 2.0) - 1.0).abs() < 1e-6, "{at_high}");
    }

    #[test]
    fn clopper_pearson_is_one_sided_at_the_edges() {
        let (low, high) = clopper_pearson(0, 20, 0.05);
        assert_eq!(low, 0.0);
        assert!((lower_tail(0, 20, high) - 0.025).abs() < 1e-9);
        let (low, high) = clopper_pearson(20, 20, 0.05);
        assert_eq!(high, 1.0);
        assert!((upper_tail(20, 20, low) - 0.025).abs() < 1e-9);
        assert_eq!(clopper_pearson(0, 0, 0.05), (0.0, 1.0));
    }

    #[test]
    fn sample_size_is_the_first_n_with_enough_power() {
        let alts = [
            Alternative {
                expected: 0.5,
                alternative: 0.6,
            },
            Alternative {
                expected: 0.5,
                alternative: 0.4,
            },
        ];
        let n = min_powerful_n(&alts, 1e-4, 0.999);
        assert!(all_powerful(n, &alts, 1e-4, 0.999));
        assert!(!all_powerful(n - 1, &alts, 1e-4, 0.999));
        // The textbook normal approximation gives about 1,197 for these numbers.
        assert!((1_100..1_300).contains(&n), "{n}");
    }
}
