//! `expect.servedBy`: every response comes from a pod of this Service, as echo-basic's
//! JSON names the pod (upstream: `expected.Namespace == cReq.Namespace` and the pod name
//! starting with the backend's, in kubernetes-sigs/gateway-api
//! `conformance/utils/http/http.go`, `CompareRequest`). Here the pod's Deployment must
//! be one the Service selects, which needs no name-prefix guess.

use super::each_response::{self, EachResponse};
use super::echo_basic::echo_basic_identities;
use super::response::{Check, Judge, JudgeError};
use crate::fixtures::Fixtures;
use crate::manifest::{ObjectKey, SourceLocation};
use crate::suite::error::SuiteError;
use crate::suite::parse_ref;
use crate::traffic::Sample;

/// The Service every response must come from, with the identities its pods answer
/// with (`namespace/deployment`, read by `IdentityRule::EchoBasic`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedServedBy {
    pub service: ObjectKey,
    pub identities: Vec<String>,
}

impl ExpectedServedBy {
    /// `at` locates `expect.servedBy`.
    pub(super) fn load(
        service: &str,
        fixtures: &Fixtures,
        at: &SourceLocation,
    ) -> Result<Self, SuiteError> {
        let invalid = |message: String| SuiteError::Invalid {
            location: at.clone(),
            message,
        };
        let key = parse_ref("Service", service).map_err(invalid)?;
        match echo_basic_identities(fixtures, &key).map_err(invalid)? {
            Some(identities) => Ok(ExpectedServedBy {
                service: key,
                identities,
            }),
            None => Err(invalid(format!(
                "the pods behind {key} do not run echo-basic or echo-advanced: `servedBy` reads which pod answered from their echo of the request"
            ))),
        }
    }
}

impl Check for ExpectedServedBy {
    fn readiness_rank(&self) -> u8 {
        1
    }

    /// A response from the expected backend shows the route serves the case.
    fn ready(&self, sample: &Sample<'_>) -> bool {
        self.failure(sample).is_none()
    }

    fn reads_echo_basic_identity(&self) -> bool {
        true
    }

    fn unready(&self, sample: &Sample<'_>) -> Option<String> {
        self.failure(sample)
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        each_response::judge(self)
    }
}

impl EachResponse for ExpectedServedBy {
    fn failure(&self, sample: &Sample<'_>) -> Option<String> {
        let expected = format!(
            "a pod of {} (Deployment {})",
            self.service,
            self.identities.join(", ")
        );
        match sample.identity {
            Some(identity) if self.identities.iter().any(|known| known == identity) => None,
            Some(identity) => Some(format!("served by {identity}, expected {expected}")),
            None => Some(format!(
                "a {} that names no echo-basic pod, expected {expected}",
                sample
                    .status
                    .map_or("response".to_string(), |s| s.to_string())
            )),
        }
    }

    fn pass_attribute(&self) -> String {
        format!("all served by {}", self.service)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::suite::expect::response::ResponseVerdict;

    fn expected() -> ExpectedServedBy {
        ExpectedServedBy {
            service: ObjectKey {
                kind: "Service".into(),
                namespace: Some("infra".into()),
                name: "backend-v1".into(),
            },
            identities: vec!["infra/backend-v1".into()],
        }
    }

    fn sample(identity: Option<&'static str>) -> Sample<'static> {
        Sample {
            status: Some(200),
            identity,
            latency: Duration::ZERO,
            error: None,
            error_detail: None,
            envoy_overloaded: false,
            headers: Default::default(),
            body: None,
            websocket_replies: &[],
        }
    }

    #[test]
    fn every_response_must_name_a_pod_of_the_service() {
        let check = expected();
        assert!(check.ready(&sample(Some("infra/backend-v1"))));
        assert!(!check.ready(&sample(Some("infra/backend-v2"))));
        let mut judge = check.judge().unwrap();
        judge.observe(1, &sample(Some("infra/backend-v1")));
        judge.observe(2, &sample(Some("infra/backend-v2")));
        judge.observe(3, &sample(None));
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        assert_eq!(
            verdict.failures,
            [
                "served by infra/backend-v2, expected a pod of Service infra/backend-v1 (Deployment infra/backend-v1) (response 2 of 3)"
            ]
        );
        let mut judge = check.judge().unwrap();
        judge.observe(1, &sample(None));
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        assert_eq!(
            verdict.failures,
            [
                "a 200 that names no echo-basic pod, expected a pod of Service infra/backend-v1 (Deployment infra/backend-v1) (response 1 of 1)"
            ]
        );
        let mut judge = check.judge().unwrap();
        judge.observe(1, &sample(Some("infra/backend-v1")));
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        assert_eq!(
            verdict.attributes,
            ["all served by Service infra/backend-v1"]
        );
    }
}
