//! The resolved expectation of a case, and the rules for combining the keys of
//! `expect`.

use super::circuit_breaking::ExpectedCircuitBreaking;
use super::outlier_detection::ExpectedOutlierDetection;
use super::response::{ResponseCheck, ResponseChecks};
use super::status::ExpectedStatus;
use crate::manifest::{Manifest, SourceLocation};
use crate::suite::error::SuiteError;
use crate::suite::load;
use crate::suite::model::{CircuitBreakingSpec, ExpectSpec, OutlierDetectionSpec, SplitSpec};
use crate::traffic::Sample;

/// What a case expects, resolved against the fixtures. The runner matches on it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    /// Checks on every response of one measured request loop.
    Responses(ResponseChecks),
    /// A policy probe: drives its own traffic and stands alone.
    CircuitBreaking(ExpectedCircuitBreaking),
    /// A policy probe: drives its own traffic and stands alone.
    OutlierDetection(ExpectedOutlierDetection),
}

impl Expectation {
    /// Whether one response counts as "the data plane serves this case as
    /// configured", for convergence. A failed request never does.
    pub fn ready(&self, sample: &Sample<'_>) -> bool {
        if sample.error.is_some() {
            return false;
        }
        match self {
            Expectation::Responses(checks) => checks.ready(sample),
            Expectation::CircuitBreaking(expected) => expected.ready(sample),
            Expectation::OutlierDetection(expected) => expected.ready(sample),
        }
    }

    /// Whether the expectation decides how many requests it needs; otherwise the case
    /// must give a request count.
    fn sizes_itself(&self) -> bool {
        match self {
            Expectation::Responses(checks) => checks.sizes_itself(),
            Expectation::CircuitBreaking(_) | Expectation::OutlierDetection(_) => false,
        }
    }

    /// Resolves a case's `expect`. `at` locates a field of the case (`expect.split`);
    /// `has_request_count` says whether the case gives `traffic.requests`.
    pub(in crate::suite) fn load(
        spec: &ExpectSpec,
        has_request_count: bool,
        manifests: &[Manifest],
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Expectation, SuiteError> {
        let invalid = |field: &str, message: String| SuiteError::Invalid {
            location: at(field),
            message,
        };
        let given = Given::all(spec);
        if given.is_empty() {
            let keys: Vec<String> = Given::KEYS.iter().map(|k| format!("`{k}`")).collect();
            return Err(invalid(
                "expect",
                format!(
                    "a case needs at least one expectation ({} or {})",
                    keys[..keys.len() - 1].join(", "),
                    keys[keys.len() - 1]
                ),
            ));
        }
        // A policy probe classifies every response itself (overflowed 503s, a failing
        // host's 5xx): a blanket status or a split would contradict it.
        if given.len() > 1
            && let Some(alone) = given.iter().find(|g| g.stands_alone())
        {
            let key = alone.key();
            return Err(invalid(
                &format!("expect.{key}"),
                format!("`{key}` stands alone: it cannot be combined with other expectations"),
            ));
        }
        let mut checks = Vec::new();
        let mut probe = None;
        for given in given {
            let field = |f: &str| at(&format!("expect.{}.{f}", given.key()));
            match given {
                Given::Status(status) => checks.push(ResponseCheck::Status(ExpectedStatus::load(
                    status,
                    &at("expect.status"),
                )?)),
                Given::Split(spec) => checks.push(ResponseCheck::Split(load::resolve_split(
                    spec, manifests, &field,
                )?)),
                Given::CircuitBreaking(spec) => {
                    probe = Some(Expectation::CircuitBreaking(
                        load::resolve_circuit_breaking(spec, manifests, &field)?,
                    ));
                }
                Given::OutlierDetection(spec) => {
                    probe = Some(Expectation::OutlierDetection(
                        load::resolve_outlier_detection(spec, manifests, &field)?,
                    ));
                }
            }
        }
        // `given` is not empty and a probe stands alone, so one of the two is there.
        let expectation = match (probe, ResponseChecks::new(checks)) {
            (Some(probe), _) => probe,
            (None, Some(checks)) => Expectation::Responses(checks),
            (None, None) => {
                return Err(invalid(
                    "expect",
                    "a case needs at least one expectation".into(),
                ));
            }
        };
        if !expectation.sizes_itself() && !has_request_count {
            return Err(invalid(
                "traffic.requests",
                "a case without a split check needs an explicit request count".into(),
            ));
        }
        Ok(expectation)
    }
}

/// One key given under `expect`, before it is resolved.
#[derive(Clone, Copy)]
enum Given<'a> {
    Status(u16),
    Split(&'a SplitSpec),
    CircuitBreaking(&'a CircuitBreakingSpec),
    OutlierDetection(&'a OutlierDetectionSpec),
}

impl<'a> Given<'a> {
    /// The keys of `expect`, in the order they are resolved and reported.
    const KEYS: [&'static str; 4] = ["status", "split", "circuitBreaking", "outlierDetection"];

    fn all(spec: &'a ExpectSpec) -> Vec<Given<'a>> {
        let ExpectSpec {
            status,
            split,
            circuit_breaking,
            outlier_detection,
        } = spec;
        [
            status.map(Given::Status),
            split.as_ref().map(Given::Split),
            circuit_breaking.as_ref().map(Given::CircuitBreaking),
            outlier_detection.as_ref().map(Given::OutlierDetection),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn key(self) -> &'static str {
        match self {
            Given::Status(_) => Self::KEYS[0],
            Given::Split(_) => Self::KEYS[1],
            Given::CircuitBreaking(_) => Self::KEYS[2],
            Given::OutlierDetection(_) => Self::KEYS[3],
        }
    }

    /// A policy probe drives its own traffic, so nothing else can judge it.
    fn stands_alone(self) -> bool {
        match self {
            Given::Status(_) | Given::Split(_) => false,
            Given::CircuitBreaking(_) | Given::OutlierDetection(_) => true,
        }
    }
}
