//! `expect.split`: the responses split between a route's backends as its weights say,
//! decided by the sequential test of `crate::stats`.

use std::collections::BTreeMap;

use super::response::{Check, Judge, JudgeError, Judged, ResponseProgress, ResponseVerdict};
use crate::manifest::ObjectKey;
use crate::stats::{Decision, ExpectedShare, SequentialSplitTest, SplitTestConfig};
use crate::traffic::Sample;

/// The split a case expects, derived from the route (or overridden by the suite).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedSplit {
    pub route: ObjectKey,
    pub backends: Vec<ExpectedBackend>,
    pub alpha: f64,
    pub power: f64,
    pub min_detectable_deviation: f64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedBackend {
    /// The Service named in the route's backendRef.
    pub service: String,
    pub weight: u64,
    /// What a response from this backend identifies itself as.
    pub identity: String,
}

impl Check for ExpectedSplit {
    fn readiness_rank(&self) -> u8 {
        1
    }

    /// A response from one of the expected backends shows the route serves the case.
    fn ready(&self, sample: &Sample<'_>) -> bool {
        sample
            .identity
            .is_some_and(|id| self.backends.iter().any(|b| b.identity == id))
    }

    fn sizes_itself(&self) -> bool {
        true
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        let expected: Vec<ExpectedShare> = self
            .backends
            .iter()
            .map(|b| ExpectedShare {
                backend: b.service.clone(),
                weight: b.weight,
            })
            .collect();
        let config = SplitTestConfig {
            alpha: self.alpha,
            power: self.power,
            min_detectable_deviation: self.min_detectable_deviation,
            max_requests: None,
        };
        Ok(Box::new(SplitJudge {
            test: SequentialSplitTest::new(&expected, config).map_err(JudgeError::Split)?,
            identities: self.backends.iter().map(|b| b.identity.clone()).collect(),
            per_backend: vec![0; self.backends.len()],
            unidentified: 0,
        }))
    }
}

/// Feeds the sequential test one response at a time.
#[derive(Debug)]
pub(super) struct SplitJudge {
    test: SequentialSplitTest,
    /// The backends' identities, in the test's backend order.
    identities: Vec<String>,
    per_backend: Vec<u64>,
    unidentified: u64,
}

impl Judge for SplitJudge {
    /// The test decides how many responses it needs; this is the most it asks for.
    fn sample_size(&self) -> Option<u64> {
        Some(self.test.max_requests())
    }

    fn stops_at_first_failure(&self) -> bool {
        true
    }

    /// A failed request says nothing about the split: it is not a response of any
    /// backend.
    fn observe(&mut self, _request: u64, sample: &Sample<'_>) -> Judged {
        if sample.error.is_some() {
            return Judged::Fine;
        }
        let index = sample
            .identity
            .and_then(|id| self.identities.iter().position(|known| known == id));
        let decision = match index {
            Some(i) => {
                self.per_backend[i] += 1;
                self.test.observe(i)
            }
            None => {
                self.unidentified += 1;
                self.test.observe_unknown()
            }
        };
        if decision == Decision::Continue {
            Judged::Fine
        } else {
            Judged::Decided
        }
    }

    fn progress(&self) -> Option<ResponseProgress> {
        let backends: BTreeMap<String, u64> = self
            .identities
            .iter()
            .cloned()
            .zip(self.per_backend.iter().copied())
            .collect();
        Some(ResponseProgress {
            backends,
            unidentified: self.unidentified,
        })
    }

    fn conclude(self: Box<Self>, verdict: &mut ResponseVerdict) {
        let split = self.test.verdict();
        match split.decision {
            Decision::Pass => verdict.findings.push(split.reason.clone()),
            Decision::Fail => verdict.failures.push(split.reason.clone()),
            Decision::Continue => verdict.failures.push(format!(
                "the split is undecided after {} requests (the cap); {}",
                split.total, split.reason
            )),
        }
        verdict.split = Some(split);
    }
}
