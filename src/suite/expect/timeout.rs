//! `expect.timeout`: every response is a 504 (Envoy's answer when a route or backend
//! request timeout fires) that arrived within a bound of sending the request.
//!
//! Upstream (kubernetes-sigs/gateway-api `conformance/tests/httproute-request-timeout.go`
//! with `conformance/utils/http/http.go`, `CompareRequest`) accepts any timeout status
//! (`roundtripper.IsTimeoutError`: 504) and measures no latency; the bound is ours, so a
//! timeout that fires late (or a backend that is just slow and answers 504 itself after
//! a long wait) fails.

use std::time::Duration;

use super::each_response::{self, EachResponse};
use super::response::{Check, Judge, JudgeError, describe_response};
use crate::manifest::SourceLocation;
use crate::suite::error::SuiteError;
use crate::suite::model::TimeoutSpec;
use crate::traffic::Sample;

/// The status a fired timeout answers with.
pub const TIMEOUT_STATUS: u16 = 504;

/// The bound every 504 must arrive within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedTimeout {
    pub within: Duration,
}

impl ExpectedTimeout {
    /// `at` locates a field under `expect.timeout`; `request_timeout` is the case's
    /// `traffic.timeout`, after which the client gives up itself.
    pub(super) fn load(
        spec: &TimeoutSpec,
        request_timeout: Duration,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Self, SuiteError> {
        let invalid = |message: String| SuiteError::Invalid {
            location: at("within"),
            message,
        };
        if spec.within.is_zero() {
            return Err(invalid("`within` must be more than zero".into()));
        }
        if spec.within > request_timeout {
            return Err(invalid(format!(
                "{} is longer than the request timeout (`traffic.timeout`, {}): the client would give up first",
                humantime::format_duration(spec.within),
                humantime::format_duration(request_timeout)
            )));
        }
        Ok(ExpectedTimeout {
            within: spec.within,
        })
    }
}

impl Check for ExpectedTimeout {
    /// The 504 itself shows the route's timeout is configured.
    fn readiness_rank(&self) -> u8 {
        0
    }

    fn ready(&self, sample: &Sample<'_>) -> bool {
        sample.status == Some(TIMEOUT_STATUS)
    }

    fn unready(&self, sample: &Sample<'_>) -> Option<String> {
        self.failure(sample)
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        each_response::judge(self)
    }
}

impl EachResponse for ExpectedTimeout {
    fn failure(&self, sample: &Sample<'_>) -> Option<String> {
        let within = humantime::format_duration(self.within);
        let after = humantime::format_duration(Duration::from_millis(
            u64::try_from(sample.latency.as_millis()).unwrap_or(u64::MAX),
        ));
        if sample.status != Some(TIMEOUT_STATUS) {
            return Some(format!(
                "expected a {TIMEOUT_STATUS} within {within}, got {} after {after}",
                describe_response(sample)
            ));
        }
        (sample.latency > self.within)
            .then(|| format!("a {TIMEOUT_STATUS} after {after}, expected within {within}"))
    }

    fn pass_attribute(&self) -> String {
        format!(
            "all {TIMEOUT_STATUS} within {}",
            humantime::format_duration(self.within)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::expect::response::ResponseVerdict;

    fn sample(status: u16, millis: u64) -> Sample<'static> {
        Sample {
            status: Some(status),
            identity: None,
            latency: Duration::from_millis(millis),
            error: None,
            error_detail: None,
            envoy_overloaded: false,
            headers: Default::default(),
            body: None,
            websocket_replies: &[],
        }
    }

    fn verdict(samples: &[Sample<'_>]) -> ResponseVerdict {
        let check = ExpectedTimeout {
            within: Duration::from_secs(1),
        };
        let mut judge = check.judge().unwrap();
        for (i, sample) in samples.iter().enumerate() {
            judge.observe(i as u64 + 1, sample);
        }
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        verdict
    }

    #[test]
    fn every_response_is_a_504_within_the_bound() {
        assert_eq!(
            verdict(&[sample(504, 200), sample(504, 999)]).attributes,
            ["all 504 within 1s"]
        );
        assert_eq!(
            verdict(&[sample(504, 200), sample(504, 1300)]).failures,
            ["a 504 after 1s 300ms, expected within 1s (response 2 of 2)"]
        );
        assert_eq!(
            verdict(&[sample(200, 20)]).failures,
            [
                "expected a 504 within 1s, got 200 with no backend identity after 20ms (response 1 of 1)"
            ]
        );
    }

    #[test]
    fn the_bound_is_checked() {
        let at = |f: &str| SourceLocation::file_start(std::path::Path::new(f));
        let load = |within: Duration| {
            ExpectedTimeout::load(&TimeoutSpec { within }, Duration::from_secs(5), &at)
                .map_err(|e| e.to_string())
        };
        assert!(
            load(Duration::ZERO)
                .unwrap_err()
                .ends_with("must be more than zero")
        );
        assert!(
            load(Duration::from_secs(6))
                .unwrap_err()
                .contains("the client would give up first")
        );
        assert!(load(Duration::from_secs(5)).is_ok());
    }
}
