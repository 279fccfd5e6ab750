//! `expect.split`: the responses split between a route's backends as its weights say,
//! decided by the sequential test of `crate::stats`.

use std::collections::BTreeMap;

use super::echo_basic::echo_basic_identities;
use super::response::{Check, Judge, JudgeError, Judged, ResponseProgress, ResponseVerdict};
use crate::echo::EchoError;
use crate::fixtures::Fixtures;
use crate::manifest::{ManifestError, ObjectKey, SourceLocation};
use crate::stats::{Decision, ExpectedShare, SequentialSplitTest, SplitTestConfig};
use crate::suite::error::SuiteError;
use crate::suite::parse_ref;
use crate::traffic::Sample;

/// The split a case expects, derived from the route (or overridden by the suite).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedSplit {
    pub route: ObjectKey,
    pub backends: Vec<ExpectedBackend>,
    pub alpha: f64,
    pub power: f64,
    pub min_detectable_deviation: f64,
    /// Whether the identities are echo-basic's (`namespace/deployment`, read from the
    /// JSON body) rather than http-echo texts.
    pub echo_basic: bool,
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

    fn reads_echo_basic_identity(&self) -> bool {
        self.echo_basic
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

/// The split loader: the route's backends and weights (or the suite's), each
/// backend's identity, and the test's parameters checked. `at` locates a field under
/// `expect.split`.
pub(super) fn resolve_split(
    spec: &crate::suite::model::SplitSpec,
    fixtures: &Fixtures,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedSplit, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    if !(spec.alpha > 0.0 && spec.alpha < 0.5) {
        return Err(invalid(
            "alpha",
            format!("must be in (0, 0.5), not {}", spec.alpha),
        ));
    }
    if !(spec.power > 0.5 && spec.power < 1.0) {
        return Err(invalid(
            "power",
            format!("must be in (0.5, 1), not {}", spec.power),
        ));
    }
    if !(spec.min_detectable_deviation > 0.0 && spec.min_detectable_deviation < 1.0) {
        return Err(invalid(
            "minDetectableDeviation",
            format!("must be in (0, 1), not {}", spec.min_detectable_deviation),
        ));
    }
    let route_key = parse_ref("HTTPRoute", &spec.route).map_err(|m| invalid("route", m))?;
    let route = fixtures.route(&route_key).ok_or_else(|| {
        invalid(
            "route",
            format!("{route_key} is not in the suite's fixtures"),
        )
    })?;
    let namespace = route_key.namespace.clone().unwrap_or_default();

    let rule_field = format!("spec.rules[{}].backendRefs", spec.rule);
    let rule = route.rules.get(spec.rule).ok_or_else(|| {
        invalid(
            "rule",
            format!("{route_key} has no rule {} with backendRefs", spec.rule),
        )
    })?;
    let mut backends = Vec::new();
    // Each backend's namespace: its backendRef's, or the route's.
    let mut namespaces = Vec::new();
    for (i, backend_ref) in rule.backend_refs.iter().enumerate() {
        if !backend_ref.is_service() {
            return Err(route
                .manifest
                .unsupported(
                    &format!("{rule_field}[{i}].kind"),
                    "split check",
                    Some(format!(
                        "backendRef kind {}; only Services are checked",
                        backend_ref.group_kind()
                    )),
                )
                .into());
        }
        let weight_field = format!("{rule_field}[{i}].weight");
        let weight = u64::try_from(backend_ref.weight).map_err(|_| ManifestError::Invalid {
            location: route.manifest.location_of(&weight_field),
            message: format!(
                "{}: field `{weight_field}`: {} is negative",
                route.manifest.object_name(),
                backend_ref.weight
            ),
        })?;
        backends.push(ExpectedBackend {
            service: backend_ref.name.clone(),
            weight,
            identity: String::new(),
        });
        namespaces.push(
            backend_ref
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.clone()),
        );
    }
    if let Some(weights) = &spec.weights {
        for (service, weight) in weights {
            match backends.iter_mut().find(|b| &b.service == service) {
                Some(b) => b.weight = *weight,
                None => {
                    return Err(invalid(
                        "weights",
                        format!(
                            "{service} is not a backend of {route_key} rule {}",
                            spec.rule
                        ),
                    ));
                }
            }
        }
    }
    if backends.is_empty() {
        return Err(invalid(
            "rule",
            format!("{route_key} rule {} has no backends", spec.rule),
        ));
    }
    let total: u128 = backends.iter().map(|b| u128::from(b.weight)).sum();
    if total == 0 {
        return Err(invalid(
            if spec.weights.is_some() {
                "weights"
            } else {
                "route"
            },
            "the backend weights sum to 0: no backend can receive traffic".into(),
        ));
    }
    if total > u128::from(u32::MAX) {
        return Err(invalid(
            if spec.weights.is_some() {
                "weights"
            } else {
                "route"
            },
            format!("the backend weights sum to {total}, more than Gateway API's limit"),
        ));
    }
    // The default identities come from the fixtures, all of one kind: echo-basic's
    // `namespace/deployment` or http-echo's `-text`, since one rule reads them all.
    let mut kinds: Vec<(IdentityKind, &str)> = Vec::new();
    for (backend, backend_namespace) in backends.iter_mut().zip(&namespaces) {
        let given = spec
            .identities
            .as_ref()
            .and_then(|m| m.get(&backend.service));
        let (identity, kind) = match given {
            Some(identity) => (identity.clone(), None),
            None => {
                let (identity, kind) =
                    default_identity(&backend.service, backend_namespace, fixtures).map_err(
                        |m| {
                            invalid(
                                "identities",
                                format!("{m}; name the identity under `identities` in the suite"),
                            )
                        },
                    )?;
                (identity, Some(kind))
            }
        };
        backend.identity = identity;
        if let Some(kind) = kind {
            kinds.push((kind, backend.service.as_str()));
        }
    }
    let of_kind = |wanted: IdentityKind| {
        kinds
            .iter()
            .find(|(kind, _)| *kind == wanted)
            .map(|(_, service)| *service)
    };
    let echo_backend = of_kind(IdentityKind::EchoBasic);
    if let (Some(echo_backend), Some(text_backend)) = (echo_backend, of_kind(IdentityKind::Text)) {
        return Err(invalid(
            "route",
            format!(
                "the split mixes identity kinds: {echo_backend} runs echo-basic (named by its JSON body) and {text_backend} http-echo (named by its text); one rule cannot read both"
            ),
        ));
    }
    let echo_basic = echo_backend.is_some();
    let mut seen = BTreeMap::new();
    for backend in &backends {
        if let Some(other) = seen.insert(backend.identity.clone(), backend.service.clone()) {
            return Err(invalid(
                "identities",
                format!(
                    "{} and {other} both answer `{}`: their traffic cannot be told apart",
                    backend.service, backend.identity
                ),
            ));
        }
    }
    Ok(ExpectedSplit {
        route: route_key,
        backends,
        alpha: spec.alpha,
        power: spec.power,
        min_detectable_deviation: spec.min_detectable_deviation,
        echo_basic,
    })
}

/// How a backend's default identity is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdentityKind {
    /// The http-echo `-text` body.
    Text,
    /// echo-basic's JSON body (`IdentityRule::EchoBasic`).
    EchoBasic,
}

/// A backend's identity from the fixtures: `namespace/deployment` when the pods behind
/// it run echo-basic, else their http-echo `-text`.
fn default_identity(
    service: &str,
    namespace: &str,
    fixtures: &Fixtures,
) -> Result<(String, IdentityKind), String> {
    let key = ObjectKey {
        kind: "Service".into(),
        namespace: Some(namespace.to_string()),
        name: service.to_string(),
    };
    match echo_basic_identities(fixtures, &key) {
        Ok(Some(identities)) => match identities.as_slice() {
            [one] => Ok((one.clone(), IdentityKind::EchoBasic)),
            several => Err(format!(
                "Service {namespace}/{service} selects several echo-basic Deployments ({}): their responses name different backends",
                several.join(", ")
            )),
        },
        Ok(None) | Err(_) => identity_from_fixtures(service, namespace, fixtures)
            .map(|text| (text, IdentityKind::Text)),
    }
}

/// What the pods behind a Service answer: the http-echo `-text` of the Deployments
/// whose pod labels match the Service's selector. All of them must agree.
fn identity_from_fixtures(
    service: &str,
    namespace: &str,
    fixtures: &Fixtures,
) -> Result<String, String> {
    let key = ObjectKey {
        kind: "Service".into(),
        namespace: Some(namespace.to_string()),
        name: service.to_string(),
    };
    let workloads = fixtures.pods_of(&key).map_err(|err| err.to_string())?;
    let mut texts = Vec::new();
    for workload in workloads {
        match workload.echo_args() {
            Ok(echo) => texts.push(echo.text),
            Err(EchoError::MissingText) => {
                return Err(format!(
                    "Deployment {namespace}/{} behind Service {service} has no http-echo `-text` argument",
                    workload.manifest.name
                ));
            }
            Err(err) => {
                return Err(format!(
                    "Deployment {namespace}/{} behind Service {service} has no valid http-echo arguments: {err}",
                    workload.manifest.name
                ));
            }
        }
    }
    texts.dedup();
    match texts.as_slice() {
        [] => Err(format!(
            "no Deployment in the fixtures matches Service {namespace}/{service}"
        )),
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "the Deployments behind Service {namespace}/{service} answer different texts"
        )),
    }
}
