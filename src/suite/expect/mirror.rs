//! `expect.mirror`: the mirror backends of a RequestMirror filter received copies of
//! the case's requests, every one of them or the configured share.
//!
//! Upstream reads the mirror pods' logs for echo-basic's per-request line
//! (`Echoing back request made to PATH to client (ADDR)`) and checks only the path
//! (kubernetes-sigs/gateway-api `conformance/utils/http/mirror.go`,
//! `ExpectMirroredRequest`); a percentage is held to a +-5% band of 500 requests
//! (`conformance/tests/httproute-request-percentage-mirror.go`). Here the same line is
//! read (locally from the echo process's own record, on a cluster from the pod's
//! log, both behind `RunningTarget::received_since`), counting only what arrived
//! after the case's mark.
//!
//! - Without `percent`, each of the case's forwarded requests must reach every mirror
//!   exactly once: `n` answered requests, `n` log lines with the case's request target.
//! - With `percent: p`, each forwarded request is mirrored independently with
//!   probability `p` (Envoy draws per request), so the mirror's count is
//!   `Binomial(n, p)`. H0: the share is `p`; it must be caught when it is off by the
//!   split's minimum detectable deviation (10 points) or more. The test is the
//!   split's sequential test (`crate::stats`) on the two-way split "mirrored / not
//!   mirrored" at the split's defaults (alpha 1e-4, power 0.999), fed once per round
//!   of traffic with the round's counts ([`SequentialSplitTest::observe_counts`]):
//!   which single request was mirrored is not observable, only how many were. With
//!   several mirrors, each has its own test and alpha is shared out between them
//!   (Bonferroni), so a correct route fails with probability at most alpha.

use std::collections::BTreeSet;

use super::response::{Check, Judge, JudgeError, Judged, ResponseVerdict};
use crate::fixtures::{EchoImage, Fixtures};
use crate::manifest::{ObjectKey, SourceLocation};
use crate::stats::{Decision, ExpectedShare, SequentialSplitTest, SplitTestConfig};
use crate::suite::error::SuiteError;
use crate::suite::model::MirrorSpec;
use crate::suite::parse_ref;
use crate::traffic::Sample;

/// How many rounds a percentage's expected sample is cut into: the test looks at the
/// counts after each, so it can stop at the first round where it is certain.
const ROUNDS_PER_FIXED_SAMPLE: u64 = 4;

/// The mirror backends a case's requests are copied to.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedMirror {
    pub backends: Vec<MirrorBackend>,
}

/// One mirror: its Service, the Deployments whose pods log what they received, and
/// what they must receive.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorBackend {
    pub service: ObjectKey,
    /// The echo-basic Deployments the Service selects.
    pub deployments: Vec<ObjectKey>,
    /// The request target (path and query) each mirrored request arrives with.
    pub target: String,
    /// The share mirrored (0 < share < 1); `None` for every request.
    pub share: Option<f64>,
}

impl ExpectedMirror {
    /// `at` locates a field under `expect.mirror` (`[0].percent`; `""` for the key).
    pub(super) fn load(
        specs: &[MirrorSpec],
        fixtures: &Fixtures,
        request_url: &url::Url,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Self, SuiteError> {
        let invalid = |field: &str, message: String| SuiteError::Invalid {
            location: at(field),
            message,
        };
        if specs.is_empty() {
            return Err(invalid(
                "",
                "name at least one mirror backend (`- service: namespace/name`)".into(),
            ));
        }
        let mut backends: Vec<MirrorBackend> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let field = |f: &str| format!("[{i}].{f}");
            let service =
                parse_ref("Service", &spec.service).map_err(|m| invalid(&field("service"), m))?;
            if backends.iter().any(|b| b.service == service) {
                return Err(invalid(
                    &field("service"),
                    format!("{service} is named twice: one entry per mirror backend"),
                ));
            }
            let deployments = echo_basic_deployments(fixtures, &service)
                .map_err(|m| invalid(&field("service"), m))?;
            let share = match spec.percent {
                None => None,
                Some(percent) if !(percent > 0.0 && percent <= 100.0) => {
                    return Err(invalid(
                        &field("percent"),
                        format!("must be in (0, 100], not {percent}"),
                    ));
                }
                Some(100.0) => None,
                Some(percent) => Some(percent / 100.0),
            };
            let target = match &spec.path {
                Some(path) if !path.starts_with('/') => {
                    return Err(invalid(
                        &field("path"),
                        format!("`{path}` is not a request target: it must start with `/`"),
                    ));
                }
                Some(path) if path.chars().any(char::is_whitespace) => {
                    return Err(invalid(
                        &field("path"),
                        format!("`{path}` has whitespace, which no request target has"),
                    ));
                }
                Some(path) => path.clone(),
                None => match request_url.query() {
                    Some(query) => format!("{}?{query}", request_url.path()),
                    None => request_url.path().to_string(),
                },
            };
            backends.push(MirrorBackend {
                service,
                deployments,
                target,
                share,
            });
        }
        Ok(ExpectedMirror { backends })
    }

    /// Whether some mirror receives only a share, so the check sizes its sample.
    fn has_share(&self) -> bool {
        self.backends.iter().any(|b| b.share.is_some())
    }

    /// The statistical test of each mirror with a share, in `backends`' order.
    fn share_tests(&self) -> Result<Vec<Option<SequentialSplitTest>>, JudgeError> {
        let tested = self.backends.iter().filter(|b| b.share.is_some()).count();
        let defaults = SplitTestConfig::default();
        let config = SplitTestConfig {
            alpha: defaults.alpha / tested.max(1) as f64,
            ..defaults
        };
        self.backends
            .iter()
            .map(|backend| {
                backend
                    .share
                    .map(|share| {
                        // Weights in millionths of the requests: percent with four
                        // decimals, more than a route's fraction can say.
                        let mirrored = (share * 1_000_000.0).round() as u64;
                        let expected = [
                            ExpectedShare {
                                backend: "mirrored".into(),
                                weight: mirrored,
                            },
                            ExpectedShare {
                                backend: "not mirrored".into(),
                                weight: 1_000_000 - mirrored,
                            },
                        ];
                        SequentialSplitTest::new(&expected, config.clone())
                    })
                    .transpose()
                    .map_err(JudgeError::Split)
            })
            .collect()
    }

    /// A fresh judge of what the mirrors received, fed after each round of traffic.
    pub fn mirror_judge(&self) -> Result<MirrorJudge, JudgeError> {
        let tests = self.share_tests()?;
        let round = tests
            .iter()
            .flatten()
            .map(|test| test.max_requests())
            .max()
            .map(|cap| {
                (cap / crate::stats::split::TRUNCATION_FACTOR / ROUNDS_PER_FIXED_SAMPLE).max(1)
            });
        Ok(MirrorJudge {
            backends: self
                .backends
                .iter()
                .zip(tests)
                .map(|(backend, test)| BackendJudge {
                    backend: backend.clone(),
                    test,
                    forwarded: 0,
                    received: 0,
                    failure: None,
                    unsettled: false,
                })
                .collect(),
            round,
        })
    }

    /// The Services whose pods' records are read, with their Deployments.
    pub fn receivers(&self) -> Vec<Receiver> {
        self.backends
            .iter()
            .map(|b| Receiver {
                service: b.service.clone(),
                deployments: b.deployments.clone(),
            })
            .collect()
    }
}

/// A Service whose pods' records of what they received a target reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub service: ObjectKey,
    pub deployments: Vec<ObjectKey>,
}

/// The echo-basic Deployments behind a mirror's Service: only their log line says
/// what they received.
fn echo_basic_deployments(
    fixtures: &Fixtures,
    service: &ObjectKey,
) -> Result<Vec<ObjectKey>, String> {
    let workloads = fixtures.pods_of(service).map_err(|err| err.to_string())?;
    if workloads.is_empty() {
        return Err(format!("no Deployment in the fixtures matches {service}"));
    }
    let mut deployments = BTreeSet::new();
    for workload in workloads {
        if workload.image() != EchoImage::EchoBasic {
            return Err(format!(
                "Deployment {}/{} behind {service} does not run echo-basic: `mirror` reads what a mirror received from echo-basic's request log",
                workload.namespace, workload.manifest.name
            ));
        }
        deployments.insert(workload.key());
    }
    Ok(deployments.into_iter().collect())
}

impl Check for ExpectedMirror {
    /// What the client sees says nothing about the mirror: any other check decides
    /// convergence first.
    fn readiness_rank(&self) -> u8 {
        u8::MAX
    }

    /// Any answer was routed, and so mirrored as the route says.
    fn ready(&self, _sample: &Sample<'_>) -> bool {
        true
    }

    fn sizes_itself(&self) -> bool {
        self.has_share()
    }

    /// The responses are judged by the other checks; this one only says how many
    /// requests a share's test may need. What the mirrors received is judged by the
    /// [`MirrorJudge`] after each round.
    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        let sample_size = self
            .share_tests()?
            .iter()
            .flatten()
            .map(|test| test.max_requests())
            .max();
        Ok(Box::new(SampleSizeOnly { sample_size }))
    }
}

/// The per-response side of a mirror check: nothing to judge, a sample size to ask for.
#[derive(Debug)]
struct SampleSizeOnly {
    sample_size: Option<u64>,
}

impl Judge for SampleSizeOnly {
    fn sample_size(&self) -> Option<u64> {
        self.sample_size
    }

    fn observe(&mut self, _request: u64, _sample: &Sample<'_>) -> Judged {
        Judged::Fine
    }

    fn conclude(self: Box<Self>, _verdict: &mut ResponseVerdict) {}
}

/// What one mirror backend received in one round of traffic, as its pods recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The request targets logged since the round's mark, oldest first.
    pub targets: Vec<String>,
    /// Whether the records settled (nothing in flight to the mirror) before the
    /// bound; if not, late copies may be missing.
    pub settled: bool,
}

/// Judges what the mirror backends received, round by round.
#[derive(Debug)]
pub struct MirrorJudge {
    backends: Vec<BackendJudge>,
    /// Requests per round when a share is tested; `None`: one round of everything.
    round: Option<u64>,
}

#[derive(Debug)]
struct BackendJudge {
    backend: MirrorBackend,
    test: Option<SequentialSplitTest>,
    /// Requests the primary answered, so far.
    forwarded: u64,
    /// Of them, copies this mirror logged with the expected target.
    received: u64,
    failure: Option<String>,
    unsettled: bool,
}

impl MirrorJudge {
    /// How many requests the next round sends, given what is left of the case's.
    pub fn round_size(&self, left: u64) -> u64 {
        self.round.map_or(left, |round| round.min(left))
    }

    /// Whether every mirror has its verdict, so no more rounds are needed.
    pub fn decided(&self) -> bool {
        self.backends.iter().all(|b| {
            b.failure.is_some()
                || b.test
                    .as_ref()
                    .is_some_and(|t| t.decision() != Decision::Continue)
        })
    }

    /// One round: `forwarded` requests got an answer, and `received[i]` is what
    /// mirror `i` logged meanwhile.
    pub fn observe_round(&mut self, forwarded: u64, received: &[Received]) {
        for (judge, received) in self.backends.iter_mut().zip(received) {
            let matching = received
                .targets
                .iter()
                .filter(|t| **t == judge.backend.target)
                .count() as u64;
            judge.forwarded += forwarded;
            judge.received += matching;
            judge.unsettled |= !received.settled;
            match &mut judge.test {
                Some(test) => {
                    // More copies than requests is no share at all.
                    let mirrored = matching.min(forwarded);
                    test.observe_counts(&[mirrored, forwarded - mirrored]);
                }
                None if judge.failure.is_none() && matching != forwarded => {
                    judge.failure =
                        Some(every_request_failure(judge, received, forwarded, matching));
                }
                None => {}
            }
        }
    }

    pub fn conclude(self, verdict: &mut ResponseVerdict) {
        let mut received_all = Vec::new();
        for judge in self.backends {
            let service = &judge.backend.service;
            let unsettled = if judge.unsettled {
                " (the records had not settled when read: late copies may be missing)"
            } else {
                ""
            };
            if let Some(failure) = judge.failure {
                verdict.failures.push(format!("{failure}{unsettled}"));
                continue;
            }
            match judge.test {
                None => received_all.push(service.to_string()),
                Some(test) => {
                    let split = test.verdict();
                    let share = split.backends.first();
                    let seen = share.map_or(String::new(), |s| {
                        format!(
                            "{} of {} requests ({:.1}%)",
                            s.observed,
                            split.total,
                            s.observed_share * 100.0
                        )
                    });
                    let expected = share.map_or(0.0, |s| s.expected_share * 100.0);
                    let reason = mirror_reason(&split.reason);
                    match split.decision {
                        Decision::Pass => verdict.findings.push(format!(
                            "mirror {service} received {seen}, expected {expected}%: {reason}"
                        )),
                        Decision::Fail => verdict.failures.push(format!(
                            "mirror {service} received {seen}, expected {expected}%: {reason}{unsettled}"
                        )),
                        Decision::Continue => verdict.failures.push(format!(
                            "mirror {service} received {seen}, expected {expected}%: undecided ({reason}); the case's `traffic.requests` caps the test below what it needs"
                        )),
                    }
                }
            }
        }
        if !received_all.is_empty() {
            verdict
                .attributes
                .push(format!("each mirrored to {}", received_all.join(" and ")));
        }
    }
}

/// The split test's sentence, reworded for a mirror's two-way split.
fn mirror_reason(reason: &str) -> String {
    reason.replace("backend's share", "share")
}

/// Why a mirror that must get every request did not, with what it got instead.
fn every_request_failure(
    judge: &BackendJudge,
    received: &Received,
    forwarded: u64,
    matching: u64,
) -> String {
    let service = &judge.backend.service;
    let target = &judge.backend.target;
    let others: BTreeSet<&str> = received
        .targets
        .iter()
        .filter(|t| **t != *target)
        .map(String::as_str)
        .collect();
    let also = if others.is_empty() {
        String::new()
    } else {
        let shown: Vec<&str> = others.iter().take(3).copied().collect();
        format!(
            "; it logged other requests: {}{}",
            shown.join(", "),
            if others.len() > 3 { ", ..." } else { "" }
        )
    };
    if matching < forwarded {
        format!(
            "mirror {service} received {matching} of {forwarded} requests to {target}, expected every one{also}"
        )
    } else {
        format!(
            "mirror {service} received {matching} copies of {forwarded} requests to {target}, expected one each{also}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(share: Option<f64>) -> MirrorBackend {
        MirrorBackend {
            service: ObjectKey {
                kind: "Service".into(),
                namespace: Some("infra".into()),
                name: "backend-v2".into(),
            },
            deployments: Vec::new(),
            target: "/mirror".into(),
            share,
        }
    }

    fn received(targets: &[&str]) -> Received {
        Received {
            targets: targets.iter().map(|t| t.to_string()).collect(),
            settled: true,
        }
    }

    fn conclude(judge: MirrorJudge) -> ResponseVerdict {
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        verdict
    }

    #[test]
    fn every_request_must_reach_the_mirror_once() {
        let expected = ExpectedMirror {
            backends: vec![backend(None)],
        };
        let mut judge = expected.mirror_judge().unwrap();
        assert_eq!(judge.round_size(5), 5);
        judge.observe_round(3, &[received(&["/mirror", "/other", "/mirror", "/mirror"])]);
        assert!(conclude(judge).passed());

        let mut judge = expected.mirror_judge().unwrap();
        judge.observe_round(3, &[received(&["/other"])]);
        assert_eq!(
            conclude(judge).failures,
            [
                "mirror Service infra/backend-v2 received 0 of 3 requests to /mirror, expected every one; it logged other requests: /other"
            ]
        );

        let mut judge = expected.mirror_judge().unwrap();
        judge.observe_round(
            1,
            &[Received {
                targets: Vec::new(),
                settled: false,
            }],
        );
        assert_eq!(
            conclude(judge).failures,
            [
                "mirror Service infra/backend-v2 received 0 of 1 requests to /mirror, expected every one (the records had not settled when read: late copies may be missing)"
            ]
        );
    }

    #[test]
    fn a_share_is_tested_round_by_round() {
        let expected = ExpectedMirror {
            backends: vec![backend(Some(0.42))],
        };
        let mut judge = expected.mirror_judge().unwrap();
        let round = judge.round_size(u64::MAX);
        assert!(round > 10 && round < 1_000, "{round}");
        // Nothing mirrored: the test fails in the first round.
        judge.observe_round(round, &[received(&[])]);
        assert!(judge.decided());
        let verdict = conclude(judge);
        assert!(!verdict.passed());
        assert!(
            verdict.failures[0].starts_with(&format!(
                "mirror Service infra/backend-v2 received 0 of {round} requests (0.0%), expected 42%"
            )),
            "{verdict:?}"
        );
        // Everything mirrored fails too.
        let mut judge = expected.mirror_judge().unwrap();
        let all: Vec<&str> = vec!["/mirror"; round as usize];
        judge.observe_round(round, &[received(&all)]);
        assert!(!conclude(judge).passed());
        // The configured share passes, given enough rounds.
        let mut judge = expected.mirror_judge().unwrap();
        let mut rounds = 0;
        while !judge.decided() && rounds < 20 {
            let hits = (round as f64 * 0.42).round() as usize;
            judge.observe_round(round, &[received(&vec!["/mirror"; hits])]);
            rounds += 1;
        }
        let verdict = conclude(judge);
        assert!(verdict.passed(), "{verdict:?}");
        assert!(verdict.findings[0].contains("expected 42%"), "{verdict:?}");
    }
}
