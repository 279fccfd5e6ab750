//! Response checks: each judges every response of one measured request loop, and they
//! combine. The runner sends and asks the [`ResponseJudge`]; what a response means is
//! decided here, kind by kind.

use std::collections::BTreeMap;

use super::mirror::ExpectedMirror;
use super::received_request::ExpectedRequest;
use super::received_response::ExpectedResponse;
use super::redirect::ExpectedRedirect;
use super::served_by::ExpectedServedBy;
use super::split::ExpectedSplit;
use super::status::ExpectedStatus;
use super::timeout::ExpectedTimeout;
use super::websocket::ExpectedWebSocket;
use crate::stats::{SplitVerdict, StatsError};
use crate::traffic::{ErrorKind, Flow, Sample};

/// One check on the responses of a case.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseCheck {
    Status(ExpectedStatus),
    Split(ExpectedSplit),
    ServedBy(ExpectedServedBy),
    Request(ExpectedRequest),
    Response(ExpectedResponse),
    Redirect(ExpectedRedirect),
    Timeout(ExpectedTimeout),
    Mirror(ExpectedMirror),
    WebSocket(ExpectedWebSocket),
}

impl ResponseCheck {
    fn check(&self) -> &dyn Check {
        match self {
            ResponseCheck::Status(status) => status,
            ResponseCheck::Split(split) => split,
            ResponseCheck::ServedBy(served_by) => served_by,
            ResponseCheck::Request(request) => request,
            ResponseCheck::Response(response) => response,
            ResponseCheck::Redirect(redirect) => redirect,
            ResponseCheck::Timeout(timeout) => timeout,
            ResponseCheck::Mirror(mirror) => mirror,
            ResponseCheck::WebSocket(websocket) => websocket,
        }
    }
}

/// What every kind of response check says before traffic.
pub(super) trait Check {
    /// How directly an accepted response shows that the data plane serves the case:
    /// the check with the lowest rank decides convergence alone (see
    /// [`ResponseChecks::ready`]).
    fn readiness_rank(&self) -> u8;

    /// Whether this response shows the data plane serves the case as configured.
    fn ready(&self, sample: &Sample<'_>) -> bool;

    /// Whether the check decides how many responses it needs; otherwise the case must
    /// give a request count.
    fn sizes_itself(&self) -> bool {
        false
    }

    /// Why a response is not [`Check::ready`], when the check can say more than the
    /// response itself shows (which header differs, say).
    fn unready(&self, _sample: &Sample<'_>) -> Option<String> {
        None
    }

    /// The response headers the check reads (`Sample::headers`): the engine and the
    /// in-mesh client keep exactly these, so a check on a header declares it here
    /// and needs nothing else from the traffic layer.
    fn response_headers(&self) -> Vec<http::HeaderName> {
        Vec::new()
    }

    /// Whether the check reads the response body (`Sample::body`): only then do the
    /// engine and the in-mesh client keep it, so loads without such a check copy no
    /// body beyond what the identity rule reads.
    fn response_body(&self) -> bool {
        false
    }

    /// Whether the check reads which echo-basic backend answered from
    /// `Sample::identity`: the case's identity rule must then be echo-basic's, the
    /// default when the case gives no `identity`.
    fn reads_echo_basic_identity(&self) -> bool {
        false
    }

    /// A fresh judge for one measured loop.
    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError>;
}

/// One check's judgement of one measured loop, fed response by response.
pub(super) trait Judge: std::fmt::Debug + Send {
    /// The most responses the check needs, if it decides that itself.
    fn sample_size(&self) -> Option<u64> {
        None
    }

    /// Whether the loop may stop at the first failure. A sequential test stops at its
    /// decision anyway, so once anything has failed there is no verdict left to wait
    /// for; fixed-count checks count every response instead.
    fn stops_at_first_failure(&self) -> bool {
        false
    }

    /// Judges response number `request` (counting from 1). A failed request is also
    /// shown: the loop itself reports it as a failure.
    fn observe(&mut self, request: u64, sample: &Sample<'_>) -> Judged;

    /// Per-backend counts for the progress display, if the check keeps them.
    fn progress(&self) -> Option<ResponseProgress> {
        None
    }

    /// Adds the check's failure reason, or what its pass shows, to the verdict.
    fn conclude(self: Box<Self>, verdict: &mut ResponseVerdict);
}

/// The response checks of a case: at least one, in the order of their keys in the
/// suite file, which is the order their failures are reported in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseChecks {
    checks: Vec<ResponseCheck>,
}

impl ResponseChecks {
    /// `None` for no checks: a case must check something.
    pub(super) fn new(checks: Vec<ResponseCheck>) -> Option<Self> {
        (!checks.is_empty()).then_some(ResponseChecks { checks })
    }

    pub fn iter(&self) -> impl Iterator<Item = &ResponseCheck> {
        self.checks.iter()
    }

    /// The mirror check, when the case has one: what the mirrors received is read
    /// from the target after each round of traffic, not from the responses.
    pub fn mirror(&self) -> Option<&ExpectedMirror> {
        self.checks.iter().find_map(|c| match c {
            ResponseCheck::Mirror(mirror) => Some(mirror),
            _ => None,
        })
    }

    /// Whether a check decides how many responses it needs.
    pub(super) fn sizes_itself(&self) -> bool {
        self.checks.iter().any(|c| c.check().sizes_itself())
    }

    /// Every response header a check reads, each once, in the checks' order.
    pub(super) fn response_headers(&self) -> Vec<http::HeaderName> {
        let mut names: Vec<http::HeaderName> = Vec::new();
        for name in self
            .checks
            .iter()
            .flat_map(|c| c.check().response_headers())
        {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Whether a check reads the response body.
    pub(super) fn response_body(&self) -> bool {
        self.checks.iter().any(|c| c.check().response_body())
    }

    /// Whether a check reads echo-basic identities.
    pub(super) fn reads_echo_basic_identity(&self) -> bool {
        self.checks
            .iter()
            .any(|c| c.check().reads_echo_basic_identity())
    }

    /// Why the deciding check finds a response not ready, when it says.
    pub(super) fn unready(&self, sample: &Sample<'_>) -> Option<String> {
        let check = self
            .checks
            .iter()
            .map(ResponseCheck::check)
            .min_by_key(|check| check.readiness_rank())?;
        if check.ready(sample) {
            return None;
        }
        check.unready(sample)
    }

    /// Whether one response shows that the data plane serves the case as configured.
    ///
    /// The most direct check decides alone: a response with the expected status came
    /// through the configured route even when it names no expected backend, and a
    /// split that is off is for the measured loop to catch with its statistics, not
    /// for convergence to wait out.
    pub(super) fn ready(&self, sample: &Sample<'_>) -> bool {
        self.checks
            .iter()
            .map(ResponseCheck::check)
            .min_by_key(|check| check.readiness_rank())
            .is_some_and(|check| check.ready(sample))
    }

    /// A fresh judge for one measured loop.
    pub fn judge(&self) -> Result<ResponseJudge, JudgeError> {
        let judges = self
            .checks
            .iter()
            .map(|c| c.check().judge())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ResponseJudge {
            judges,
            failed_request: None,
        })
    }
}

/// Why a judge could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error(transparent)]
    Split(#[from] StatsError),
}

/// What one response did to one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Judged {
    /// Nothing to stop for.
    Fine,
    /// The check has failed.
    Failed,
    /// The check has its verdict and needs no more responses.
    Decided,
}

/// Judges the responses of one measured loop against a case's checks.
#[derive(Debug)]
pub struct ResponseJudge {
    judges: Vec<Box<dyn Judge>>,
    /// The first request that got no response, in words: a failure whatever the
    /// checks, since a response check needs responses.
    failed_request: Option<String>,
}

impl ResponseJudge {
    /// How many requests to send: what the checks need, capped by the case's count;
    /// `None` when neither says.
    pub fn max_requests(&self, cap: Option<u64>) -> Option<u64> {
        let needed = self.judges.iter().filter_map(|j| j.sample_size()).min();
        match (needed, cap) {
            (Some(needed), Some(cap)) => Some(cap.min(needed)),
            (needed, cap) => needed.or(cap),
        }
    }

    /// Judges response number `request` (counting from 1).
    pub fn observe(&mut self, request: u64, sample: &Sample<'_>) -> Flow {
        let mut failed = false;
        if let Some(err) = sample.error {
            failed = true;
            self.failed_request.get_or_insert_with(|| {
                format!("request {request} failed: {}", request_error(err, sample))
            });
        }
        let mut decided = false;
        for judge in &mut self.judges {
            let judged = judge.observe(request, sample);
            failed |= judged == Judged::Failed;
            decided |= judged == Judged::Decided;
        }
        let stop_at_failure = self.judges.iter().any(|j| j.stops_at_first_failure());
        if decided || (failed && stop_at_failure) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    /// What the progress display shows.
    pub fn progress(&self) -> ResponseProgress {
        self.judges
            .iter()
            .find_map(|judge| judge.progress())
            .unwrap_or_default()
    }

    pub fn conclude(self) -> ResponseVerdict {
        let mut verdict = ResponseVerdict::default();
        verdict.failures.extend(self.failed_request);
        for judge in self.judges {
            judge.conclude(&mut verdict);
        }
        verdict
    }
}

/// Responses so far per expected backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseProgress {
    pub backends: BTreeMap<String, u64>,
    /// Responses that named no expected backend.
    pub unidentified: u64,
}

/// What the checks concluded about one measured loop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseVerdict {
    /// Why the case failed, one reason per check that failed; empty when it passed.
    pub failures: Vec<String>,
    /// Short facts for the pass message (`all 200`).
    pub attributes: Vec<String>,
    /// Sentences for the pass message (the split test's reason).
    pub findings: Vec<String>,
    /// The split test's verdict, for the report's statistics.
    pub split: Option<SplitVerdict>,
}

impl ResponseVerdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The case's one-line message: the failures, or what passing `requests`
    /// responses showed.
    pub fn message(&self, requests: u64) -> String {
        if !self.passed() {
            return self.failures.join("; ");
        }
        let mut message = format!("{requests} requests");
        for attribute in &self.attributes {
            message.push_str(", ");
            message.push_str(attribute);
        }
        for finding in &self.findings {
            message.push_str("; ");
            message.push_str(finding);
        }
        message
    }
}

/// A response in words, for failure messages.
pub fn describe_response(sample: &Sample<'_>) -> String {
    match (sample.error, sample.status) {
        (Some(err), _) => format!("a failed request ({})", request_error(err, sample)),
        (None, Some(status)) => match sample.identity {
            Some(id) => format!("{status} `{id}`"),
            None => format!("{status} with no backend identity"),
        },
        (None, None) => "no response".to_string(),
    }
}

/// Why a request failed: its error kind, and the detail when the sample has one.
fn request_error(err: ErrorKind, sample: &Sample<'_>) -> String {
    match sample.error_detail {
        Some(detail) => format!("{err}: {detail}"),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::manifest::ObjectKey;
    use crate::suite::expect::ExpectedBackend;

    fn sample(status: Option<u16>, identity: Option<&'static str>) -> Sample<'static> {
        Sample {
            status,
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

    fn split() -> ExpectedSplit {
        ExpectedSplit {
            route: ObjectKey {
                kind: "HTTPRoute".into(),
                namespace: Some("istio-test".into()),
                name: "backend-route".into(),
            },
            backends: ["v1", "v2"]
                .map(|v| ExpectedBackend {
                    service: format!("backend-{v}"),
                    weight: 50,
                    identity: format!("hello from backend {v}"),
                })
                .to_vec(),
            alpha: 1e-4,
            power: 0.999,
            min_detectable_deviation: 0.1,
            echo_basic: false,
        }
    }

    fn checks(checks: Vec<ResponseCheck>) -> ResponseChecks {
        ResponseChecks::new(checks).unwrap()
    }

    #[test]
    fn a_status_decides_convergence_over_a_split() {
        let both = checks(vec![
            ResponseCheck::Status(ExpectedStatus { status: 200 }),
            ResponseCheck::Split(split()),
        ]);
        assert!(both.ready(&sample(Some(200), Some("someone else"))));
        assert!(!both.ready(&sample(Some(503), Some("hello from backend v1"))));
        let alone = checks(vec![ResponseCheck::Split(split())]);
        assert!(!alone.ready(&sample(Some(200), Some("someone else"))));
        assert!(alone.ready(&sample(Some(503), Some("hello from backend v1"))));
    }

    #[test]
    fn a_status_check_counts_every_response_but_a_split_stops_at_the_first_failure() {
        let status = checks(vec![ResponseCheck::Status(ExpectedStatus { status: 200 })]);
        let mut judge = status.judge().unwrap();
        assert_eq!(judge.max_requests(Some(10)), Some(10));
        assert_eq!(judge.observe(1, &sample(Some(503), None)), Flow::Continue);
        assert_eq!(judge.observe(2, &sample(Some(404), None)), Flow::Continue);
        let verdict = judge.conclude();
        assert_eq!(
            verdict.message(2),
            "request 1 got 503 with no backend identity (expected 200)"
        );

        let both = checks(vec![
            ResponseCheck::Status(ExpectedStatus { status: 200 }),
            ResponseCheck::Split(split()),
        ]);
        let mut judge = both.judge().unwrap();
        assert!(judge.max_requests(None).is_some_and(|n| n > 10));
        assert_eq!(judge.max_requests(Some(10)), Some(10));
        assert_eq!(
            judge.observe(1, &sample(Some(200), Some("hello from backend v1"))),
            Flow::Continue
        );
        assert_eq!(
            judge.observe(2, &sample(Some(503), Some("hello from backend v2"))),
            Flow::Stop
        );
    }

    #[test]
    fn a_failed_request_fails_every_response_check() {
        let status = checks(vec![ResponseCheck::Status(ExpectedStatus { status: 200 })]);
        let mut judge = status.judge().unwrap();
        let failed = Sample {
            error: Some(crate::traffic::ErrorKind::Timeout),
            ..sample(None, None)
        };
        assert_eq!(judge.observe(1, &failed), Flow::Continue);
        let verdict = judge.conclude();
        assert!(!verdict.passed());
        assert_eq!(verdict.message(1), "request 1 failed: timeout");
    }

    #[test]
    fn a_failed_request_is_told_with_its_detail_in_both_wordings() {
        let failed = Sample {
            error: Some(crate::traffic::ErrorKind::Timeout),
            error_detail: Some("after 2s"),
            ..sample(None, None)
        };
        assert_eq!(
            describe_response(&failed),
            "a failed request (timeout: after 2s)"
        );
        let status = checks(vec![ResponseCheck::Status(ExpectedStatus { status: 200 })]);
        let mut judge = status.judge().unwrap();
        judge.observe(1, &failed);
        assert_eq!(
            judge.conclude().message(1),
            "request 1 failed: timeout: after 2s"
        );
    }

    #[test]
    fn convergence_is_told_what_the_deciding_check_misses() {
        use crate::suite::expect::{Expectation, ExpectedTimeout};
        let timeout =
            Expectation::Responses(checks(vec![ResponseCheck::Timeout(ExpectedTimeout {
                within: Duration::from_secs(1),
            })]));
        assert_eq!(
            timeout.describe_unready(&sample(Some(200), None)),
            "200 with no backend identity (expected a 504 within 1s, got 200 with no backend identity after 0s)"
        );
        // A check that says nothing more leaves the response as it is.
        let status = Expectation::Responses(checks(vec![ResponseCheck::Status(ExpectedStatus {
            status: 200,
        })]));
        assert_eq!(
            status.describe_unready(&sample(Some(503), Some("v1"))),
            "503 `v1`"
        );
    }

    #[test]
    fn a_pass_message_lists_facts_then_findings() {
        let verdict = ResponseVerdict {
            failures: Vec::new(),
            attributes: vec!["all 200".into()],
            findings: vec!["no backend's share is off".into()],
            split: None,
        };
        assert_eq!(
            verdict.message(402),
            "402 requests, all 200; no backend's share is off"
        );
    }
}
