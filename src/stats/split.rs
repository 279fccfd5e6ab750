//! The sequential split test: is an HTTPRoute's weighted split honoured?
//!
//! # Design
//!
//! Each response is one draw from a multinomial over the backends (plus "unknown").
//! A backend's share is checked as a Bernoulli margin with two one-sided Wald
//! SPRTs, `p0` against `p0 + δ` and `p0` against `p0 - δ`. The test fails as soon as
//! any SPRT rejects and passes once every SPRT has accepted `p0`.
//!
//! Error rates hold by union bounds, not by hope:
//! - Boundaries are `A = 1/α'` and `B = β'`, for which Wald's inequalities give
//!   `P(reject | p0) <= α'` and `P(accept | p0 ± δ) <= β'` exactly (no
//!   approximation), and stopping early only shrinks those events.
//! - `α` is split over the `m` one-sided SPRTs (Bonferroni) with
//!   `SPRT_ALPHA_SHARE` of it; the rest is spent by the exact fixed-sample test
//!   that decides at truncation, so `P(fail | correct split) <= α` overall.
//! - A two-way split has one free margin (backend 2's share is 1 minus backend 1's),
//!   so only the first backend is tested; Bonferroni over both would waste half of
//!   alpha on a duplicate hypothesis.
//! - Directions where a deviation of δ is impossible (`p0 + δ > 1`) are not tested
//!   at all: nothing there has to be caught, and skipping them keeps alpha for the
//!   tests that matter.
//! - Zero-weight backends and unknown responses have probability 0 under a correct
//!   split, so one such response fails at once without spending alpha. To catch a
//!   leak of δ towards them, no pass is given before `n_leak` responses, the
//!   smallest n with `(1 - δ)^n <= β`. That rule alone decides a one-backend split.

use serde::{Deserialize, Serialize};

use super::binomial::{self, Alternative};
use super::error::StatsError;

/// Share of alpha spent by the SPRTs; the rest goes to the exact test at
/// truncation. Truncation is rare, so a small reserve costs the SPRTs little
/// (ln(1/0.9) ≈ 0.1 on a boundary of ≈ 10) while keeping the union bound honest.
const SPRT_ALPHA_SHARE: f64 = 0.9;

/// The SPRTs and the truncation test each get `β / POWER_MARGIN`. The sum stays
/// under β, and the margin makes the *actual* miss rate at exactly δ about 3×
/// below the promise. Without it the real rate sits near β itself (exact
/// computation: 8.2e-4 for 60/40 at the defaults), and a 10,000-run acceptance
/// check with a threshold of β·10,000 misses would fail on ordinary noise.
const POWER_MARGIN: f64 = 3.0;

/// Default truncation, as a multiple of the fixed-sample size. Near the middle of
/// the indifference zone (e.g. 55/45 against 50/50) the SPRT's expected length is
/// about `ln A · |ln B| / Var(step)`, ≈ 1.5× the fixed n at the defaults; 2× lets
/// most such runs finish sequentially while bounding the worst case at twice the
/// fixed design.
pub(crate) const TRUNCATION_FACTOR: u64 = 2;

/// How far an alternative may poke past 0 or 1 from float rounding (`0.9 + 0.1`)
/// and still count as reachable; reachable alternatives on the boundary are pulled
/// this far inside so their log-likelihoods stay finite.
const SHARE_EPSILON: f64 = 1e-9;

/// Error rates a split test must keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitTestConfig {
    /// Probability of failing a split that is exactly right.
    pub alpha: f64,
    /// Probability of failing a split whose backend shares are off by at least
    /// `min_detectable_deviation`.
    pub power: f64,
    /// Smallest absolute deviation of any backend's share (0.10 = 10 percentage
    /// points) that must be caught with probability `power`.
    pub min_detectable_deviation: f64,
    /// Hard cap on responses; `None` derives one from the error rates.
    pub max_requests: Option<u64>,
}

impl Default for SplitTestConfig {
    fn default() -> Self {
        Self {
            alpha: 1e-4,
            power: 0.999,
            min_detectable_deviation: 0.10,
            max_requests: None,
        }
    }
}

/// One backendRef of an HTTPRoute rule: its name and weight as written in the
/// route (weights are normalised here; zero means "must get no traffic").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedShare {
    pub backend: String,
    pub weight: u64,
}

/// Where a split test stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Not certain yet at the configured error rates; send more requests.
    Continue,
    Pass,
    Fail,
}

/// One backend's line in a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BackendShare {
    pub backend: String,
    pub expected_share: f64,
    pub observed: u64,
    /// Share of all responses, unknown ones included.
    pub observed_share: f64,
    /// Clopper–Pearson interval at confidence `1 - alpha / k` (k = tested margins).
    pub ci_low: f64,
    pub ci_high: f64,
    /// Exact two-sided binomial p-value against `expected_share`.
    pub p_value: f64,
}

/// What a split test concluded, for reports (JSON) and for people.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SplitVerdict {
    pub decision: Decision,
    pub total: u64,
    pub unknown: u64,
    pub backends: Vec<BackendShare>,
    /// One plain sentence saying why.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SprtState {
    Open,
    Accepted,
    Rejected,
}

/// One one-sided Wald SPRT on one backend's share.
#[derive(Debug, Clone)]
struct Sprt {
    backend: usize,
    /// Log-likelihood-ratio step when the response is `backend`, and when not.
    hit: f64,
    miss: f64,
    llr: f64,
    state: SprtState,
}

/// Why the decision is what it is; kept so the verdict can explain itself.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Undecided,
    Unknown,
    ZeroWeight(usize),
    Deviation { backend: usize, truncated: bool },
    Within { truncated: bool },
}

/// Everything derived from the expected split and the config, shared by the
/// sequential test and [`fixed_sample_size`].
struct Plan {
    shares: Vec<f64>,
    /// Backends whose share is tested (0 < share < 1, one of a two-way pair).
    margins: Vec<usize>,
    /// Alternatives to detect, with the backend each belongs to.
    alternatives: Vec<(usize, Alternative)>,
    n_leak: u64,
}

impl Plan {
    fn new(expected: &[ExpectedShare], config: &SplitTestConfig) -> Result<Self, StatsError> {
        validate(expected, config)?;
        let sum: u128 = expected.iter().map(|e| u128::from(e.weight)).sum();
        let shares: Vec<f64> = expected
            .iter()
            .map(|e| e.weight as f64 / sum as f64)
            .collect();
        let mut margins: Vec<usize> = (0..shares.len())
            .filter(|&i| shares[i] > 0.0 && shares[i] < 1.0)
            .collect();
        if margins.len() == 2 {
            margins.truncate(1);
        }
        let delta = config.min_detectable_deviation;
        let mut alternatives = Vec::new();
        for &i in &margins {
            let p0 = shares[i];
            for p1 in [p0 + delta, p0 - delta] {
                if (-SHARE_EPSILON..=1.0 + SHARE_EPSILON).contains(&p1) {
                    let alternative = p1.clamp(SHARE_EPSILON, 1.0 - SHARE_EPSILON);
                    alternatives.push((
                        i,
                        Alternative {
                            expected: p0,
                            alternative,
                        },
                    ));
                }
            }
        }
        Ok(Self {
            shares,
            margins,
            alternatives,
            n_leak: leak_guard(delta, 1.0 - config.power),
        })
    }

    fn alternatives(&self) -> Vec<Alternative> {
        self.alternatives.iter().map(|(_, alt)| *alt).collect()
    }

    /// Per-margin two-sided level when the whole of `alpha` is split over margins.
    fn margin_level(&self, alpha: f64) -> f64 {
        alpha / self.margins.len().max(1) as f64
    }
}

fn validate(expected: &[ExpectedShare], config: &SplitTestConfig) -> Result<(), StatsError> {
    let open_unit = |v: f64| v > 0.0 && v < 1.0;
    if !open_unit(config.alpha) {
        return Err(StatsError::AlphaOutOfRange {
            value: config.alpha,
        });
    }
    if !open_unit(config.power) {
        return Err(StatsError::PowerOutOfRange {
            value: config.power,
        });
    }
    if !open_unit(config.min_detectable_deviation) {
        return Err(StatsError::DeviationOutOfRange {
            value: config.min_detectable_deviation,
        });
    }
    if expected.is_empty() {
        return Err(StatsError::NoBackends);
    }
    if expected.iter().all(|e| e.weight == 0) {
        return Err(StatsError::AllWeightsZero {
            count: expected.len(),
        });
    }
    for (i, e) in expected.iter().enumerate() {
        if expected[..i]
            .iter()
            .any(|earlier| earlier.backend == e.backend)
        {
            return Err(StatsError::DuplicateBackend {
                backend: e.backend.clone(),
            });
        }
    }
    Ok(())
}

/// Smallest n with `(1 - delta)^n <= beta`: after n clean responses, a leak of
/// `delta` anywhere else would have shown up with probability at least `1 - beta`.
fn leak_guard(delta: f64, beta: f64) -> u64 {
    let clean = |n: u64| (1.0 - delta).powf(n as f64);
    let mut n = (beta.ln() / (1.0 - delta).ln()).ceil().max(1.0) as u64;
    // The logarithms can round either way; settle on the exact first crossing.
    while clean(n) > beta {
        n += 1;
    }
    while n > 1 && clean(n - 1) <= beta {
        n -= 1;
    }
    n
}

/// Responses a fixed-sample exact test needs for the same error rates: the
/// smallest n at which the two-sided exact binomial test of every tested backend
/// (Bonferroni over backends) catches a deviation of `min_detectable_deviation`
/// with probability `power`, and at least the leak guard.
pub fn fixed_sample_size(
    expected: &[ExpectedShare],
    config: &SplitTestConfig,
) -> Result<u64, StatsError> {
    let plan = Plan::new(expected, config)?;
    Ok(fixed_n(&plan, config))
}

fn fixed_n(plan: &Plan, config: &SplitTestConfig) -> u64 {
    let n = binomial::min_powerful_n(
        &plan.alternatives(),
        plan.margin_level(config.alpha),
        config.power,
    );
    n.max(plan.n_leak)
}

/// A sequential test of one weighted split, fed one response at a time.
#[derive(Debug, Clone)]
pub struct SequentialSplitTest {
    backends: Vec<String>,
    shares: Vec<f64>,
    margins: Vec<usize>,
    counts: Vec<u64>,
    total: u64,
    unknown: u64,
    sprts: Vec<Sprt>,
    /// ln B and ln A of the SPRTs.
    accept_bound: f64,
    reject_bound: f64,
    /// Per-margin two-sided level of the exact test at truncation.
    truncation_level: f64,
    /// Per-margin level of reported intervals (the whole alpha, Bonferroni).
    report_level: f64,
    n_leak: u64,
    max_requests: u64,
    config: SplitTestConfig,
    decision: Decision,
    outcome: Outcome,
}

impl SequentialSplitTest {
    pub fn new(expected: &[ExpectedShare], config: SplitTestConfig) -> Result<Self, StatsError> {
        let plan = Plan::new(expected, &config)?;
        let beta = 1.0 - config.power;
        let alternatives = plan.alternatives();
        let truncation_level = plan.margin_level(config.alpha * (1.0 - SPRT_ALPHA_SHARE));
        let truncation_power = 1.0 - beta / POWER_MARGIN;
        let powerful_cap =
            |n: u64| binomial::all_powerful(n, &alternatives, truncation_level, truncation_power);
        let smallest_cap = || {
            binomial::min_powerful_n(&alternatives, truncation_level, truncation_power)
                .max(plan.n_leak)
        };
        let max_requests = match config.max_requests {
            Some(requested) if requested >= plan.n_leak && powerful_cap(requested) => requested,
            Some(requested) => {
                // Power is a saw-tooth in n, so a cap above the smallest one can
                // still fall short; then name the next cap that works.
                let smallest = smallest_cap();
                let minimum = if requested < smallest {
                    smallest
                } else {
                    binomial::first_powerful_n(
                        requested,
                        &alternatives,
                        truncation_level,
                        truncation_power,
                    )
                };
                return Err(StatsError::MaxRequestsTooSmall { requested, minimum });
            }
            None if alternatives.is_empty() => plan.n_leak,
            None => binomial::first_powerful_n(
                (TRUNCATION_FACTOR * fixed_n(&plan, &config)).max(smallest_cap()),
                &alternatives,
                truncation_level,
                truncation_power,
            ),
        };

        let report_level = plan.margin_level(config.alpha);
        let sprt_alpha = config.alpha * SPRT_ALPHA_SHARE / alternatives.len().max(1) as f64;
        let sprts = plan
            .alternatives
            .iter()
            .map(|&(backend, alt)| {
                let (p0, p1) = (alt.expected, alt.alternative);
                Sprt {
                    backend,
                    hit: (p1 / p0).ln(),
                    miss: ((1.0 - p1) / (1.0 - p0)).ln(),
                    llr: 0.0,
                    state: SprtState::Open,
                }
            })
            .collect();

        Ok(Self {
            backends: expected.iter().map(|e| e.backend.clone()).collect(),
            counts: vec![0; plan.shares.len()],
            shares: plan.shares,
            total: 0,
            unknown: 0,
            sprts,
            accept_bound: (beta / POWER_MARGIN).ln(),
            reject_bound: -sprt_alpha.ln(),
            truncation_level,
            report_level,
            margins: plan.margins,
            n_leak: plan.n_leak,
            max_requests,
            config,
            decision: Decision::Continue,
            outcome: Outcome::Undecided,
        })
    }

    /// Records a response identified as `expected[backend_index]`. An index out of
    /// range names no expected backend, so it counts as unknown.
    ///
    /// Once the decision is Pass or Fail it stays; later responses are still
    /// counted so the verdict describes all traffic sent.
    pub fn observe(&mut self, backend_index: usize) -> Decision {
        let Some(count) = self.counts.get_mut(backend_index) else {
            return self.observe_unknown();
        };
        *count += 1;
        self.total += 1;
        if self.decision != Decision::Continue {
            return self.decision;
        }
        if self.shares[backend_index] == 0.0 {
            return self.decide(Outcome::ZeroWeight(backend_index));
        }

        self.advance_sprts(|sprt| {
            if sprt.backend == backend_index {
                sprt.hit
            } else {
                sprt.miss
            }
        })
    }

    /// Records a batch of responses at once, `counts[i]` of them from
    /// `expected[i]`, and checks the boundaries only after the whole batch: for when
    /// which response came from where is known only in aggregate (the share of
    /// requests a mirror received, counted from its log after a round of traffic).
    ///
    /// Each SPRT's log-likelihood ratio depends only on the counts, and looking at it
    /// only at batch ends is still a stopping rule, so Wald's bounds hold as they do
    /// response by response; the test just stops a little later than it could have.
    pub fn observe_counts(&mut self, counts: &[u64]) -> Decision {
        let batch: u64 = counts.iter().sum();
        for (count, &added) in self.counts.iter_mut().zip(counts) {
            *count += added;
        }
        self.total += batch;
        if self.decision != Decision::Continue || batch == 0 {
            return self.decision;
        }
        if let Some(i) = (0..self.shares.len())
            .find(|&i| self.shares[i] == 0.0 && counts.get(i).is_some_and(|&c| c > 0))
        {
            return self.decide(Outcome::ZeroWeight(i));
        }
        self.advance_sprts(|sprt| {
            let hits = counts.get(sprt.backend).copied().unwrap_or(0);
            hits as f64 * sprt.hit + (batch - hits) as f64 * sprt.miss
        })
    }

    /// Adds `increment(sprt)` to every open SPRT's log-likelihood ratio, closes those
    /// that crossed a bound, and decides: one response (`observe`) or a batch of them
    /// (`observe_counts`) moves the tests the same way.
    fn advance_sprts(&mut self, increment: impl Fn(&Sprt) -> f64) -> Decision {
        let mut all_accepted = true;
        let mut rejected = None;
        for sprt in &mut self.sprts {
            if sprt.state != SprtState::Open {
                continue;
            }
            sprt.llr += increment(sprt);
            if sprt.llr >= self.reject_bound {
                sprt.state = SprtState::Rejected;
                rejected.get_or_insert(sprt.backend);
            } else if sprt.llr <= self.accept_bound {
                sprt.state = SprtState::Accepted;
            } else {
                all_accepted = false;
            }
        }
        if let Some(backend) = rejected {
            self.decide(Outcome::Deviation {
                backend,
                truncated: false,
            })
        } else if all_accepted && self.total >= self.n_leak {
            self.decide(Outcome::Within { truncated: false })
        } else if self.total >= self.max_requests {
            self.decide_at_truncation()
        } else {
            Decision::Continue
        }
    }

    /// Records a response that identifies none of the expected backends, which a
    /// correct split never produces: the test fails at once.
    pub fn observe_unknown(&mut self) -> Decision {
        self.unknown += 1;
        self.total += 1;
        if self.decision != Decision::Continue {
            return self.decision;
        }
        self.decide(Outcome::Unknown)
    }

    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// The most responses this test will ask for before deciding.
    pub fn max_requests(&self) -> u64 {
        self.max_requests
    }

    fn decide(&mut self, outcome: Outcome) -> Decision {
        self.decision = match outcome {
            Outcome::Undecided => Decision::Continue,
            Outcome::Within { .. } => Decision::Pass,
            Outcome::Unknown | Outcome::ZeroWeight(_) | Outcome::Deviation { .. } => Decision::Fail,
        };
        self.outcome = outcome;
        self.decision
    }

    /// The exact fixed-sample test on what was seen, at the alpha reserved for it.
    fn decide_at_truncation(&mut self) -> Decision {
        let worst = self
            .margins
            .iter()
            .map(|&i| {
                let p = binomial::two_sided_p_value(self.counts[i], self.total, self.shares[i]);
                (i, p)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match worst {
            Some((backend, p)) if p < self.truncation_level => self.decide(Outcome::Deviation {
                backend,
                truncated: true,
            }),
            _ => self.decide(Outcome::Within { truncated: true }),
        }
    }

    /// The verdict so far; also meaningful while the decision is still Continue
    /// (traffic ran out before the test was certain).
    pub fn verdict(&self) -> SplitVerdict {
        let backends: Vec<BackendShare> = (0..self.backends.len())
            .map(|i| self.backend_share(i))
            .collect();
        let reason = self.reason(&backends);
        SplitVerdict {
            decision: self.decision,
            total: self.total,
            unknown: self.unknown,
            backends,
            reason,
        }
    }

    fn backend_share(&self, i: usize) -> BackendShare {
        let (x, n, p0) = (self.counts[i], self.total, self.shares[i]);
        let (ci_low, ci_high) = binomial::clopper_pearson(x, n, self.report_level);
        BackendShare {
            backend: self.backends[i].clone(),
            expected_share: p0,
            observed: x,
            observed_share: if n == 0 { 0.0 } else { x as f64 / n as f64 },
            ci_low,
            ci_high,
            p_value: binomial::two_sided_p_value(x, n, p0),
        }
    }

    fn reason(&self, shares: &[BackendShare]) -> String {
        let delta = percent_bare(self.config.min_detectable_deviation);
        let largest_gap = || {
            shares
                .iter()
                .max_by(|a, b| {
                    let gap = |s: &BackendShare| (s.observed_share - s.expected_share).abs();
                    gap(a).total_cmp(&gap(b))
                })
                .map(|s| self.describe(s))
                .unwrap_or_default()
        };
        let cap = |truncated: bool| {
            if truncated {
                format!(" (stopped at the cap of {} responses)", self.max_requests)
            } else {
                String::new()
            }
        };
        match self.outcome {
            Outcome::Undecided => format!(
                "inconclusive after {} of at most {} responses: {}",
                self.total,
                self.max_requests,
                largest_gap()
            ),
            Outcome::Unknown => format!(
                "{} of {} responses came from none of the expected backends",
                self.unknown, self.total
            ),
            Outcome::ZeroWeight(i) => format!(
                "{} has weight 0 but answered {} of {} responses",
                self.backends[i], self.counts[i], self.total
            ),
            Outcome::Deviation { backend, truncated } => {
                let share = &shares[backend];
                format!(
                    "{}: the split differs by more than chance allows (p = {}){}",
                    self.describe(share),
                    format_p(share.p_value),
                    cap(truncated)
                )
            }
            Outcome::Within { truncated } if self.margins.is_empty() => format!(
                "all {} responses matched the expected split, enough to catch a {delta}% leak with probability {}{}",
                self.total,
                self.config.power,
                cap(truncated)
            ),
            Outcome::Within { truncated } => format!(
                "no backend's share is off by {delta} percentage points or more (power {}) after {} responses; largest gap: {}{}",
                self.config.power,
                self.total,
                largest_gap(),
                cap(truncated)
            ),
        }
    }

    fn describe(&self, share: &BackendShare) -> String {
        format!(
            "{} got {} ({} CI {}–{}), expected {}",
            share.backend,
            percent(share.observed_share),
            confidence_label(1.0 - self.report_level),
            percent_bare(share.ci_low),
            percent(share.ci_high),
            percent(share.expected_share)
        )
    }
}

fn percent(share: f64) -> String {
    format!("{}%", percent_bare(share))
}

fn percent_bare(share: f64) -> String {
    format!("{:.1}", share * 100.0)
}

/// "99.99%" for 0.9999, "99.9967%" for 1 - 1e-4/3: enough decimals to show the
/// first two significant digits of the miss rate, no trailing zeros.
fn confidence_label(confidence: f64) -> String {
    let miss_percent = (1.0 - confidence) * 100.0;
    let decimals = if miss_percent > 0.0 {
        (-miss_percent.log10()).ceil().max(0.0) as usize + 1
    } else {
        1
    };
    let text = format!("{:.*}", decimals, confidence * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

fn format_p(p: f64) -> String {
    if p >= 1e-3 {
        format!("{p:.3}")
    } else if p > 0.0 {
        format!("{p:.0e}")
    } else {
        "0".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_guard_is_the_first_n_that_catches_the_leak() {
        let n = leak_guard(0.10, 1e-3);
        assert_eq!(n, 66);
        assert!(0.9f64.powf(66.0) <= 1e-3 && 0.9f64.powf(65.0) > 1e-3);
    }

    #[test]
    fn labels_read_naturally() {
        assert_eq!(confidence_label(1.0 - 1e-4), "99.99%");
        assert_eq!(confidence_label(0.95), "95%");
        assert_eq!(confidence_label(1.0 - 1e-4 / 3.0), "99.9967%");
        assert_eq!(confidence_label(1.0 - 1e-7), "99.99999%");
        assert_eq!(format_p(3.2e-7), "3e-7");
        assert_eq!(format_p(0.25), "0.250");
    }
}
