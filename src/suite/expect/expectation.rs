//! The resolved expectation of a case, and the rules for combining the keys of
//! `expect`.

use super::circuit_breaking::{ExpectedCircuitBreaking, resolve_circuit_breaking};
use std::time::Duration;

use super::mirror::ExpectedMirror;

use super::outlier_detection::{ExpectedOutlierDetection, resolve_outlier_detection};
use super::received_request::ExpectedRequest;
use super::received_response::ExpectedResponse;
use super::redirect::ExpectedRedirect;
use super::response::{ResponseCheck, ResponseChecks, describe_response};
use super::served_by::ExpectedServedBy;
use super::split::resolve_split;
use super::status::ExpectedStatus;
use super::timeout::{ExpectedTimeout, TIMEOUT_STATUS};
use super::websocket::ExpectedWebSocket;
use crate::fixtures::Fixtures;
use crate::manifest::SourceLocation;
use crate::suite::Entry;
use crate::suite::error::SuiteError;
use crate::suite::model::{
    CircuitBreakingSpec, ExpectSpec, MirrorSpec, OutlierDetectionSpec, ReceivedRequestSpec,
    ReceivedResponseSpec, RedirectSpec, SplitSpec, TimeoutSpec, WebSocketExpectSpec,
};
use crate::traffic::{Sample, WebSocketMessage};

/// What a case expects, resolved against the fixtures. The runner matches on it.
#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    /// Checks on every response of one measured request loop.
    Responses(ResponseChecks),
    /// A policy probe: drives its own traffic and stands alone.
    CircuitBreaking(ExpectedCircuitBreaking),
    /// A policy probe: drives its own traffic and stands alone.
    OutlierDetection(ExpectedOutlierDetection),
    /// Only status conditions (`expect.conditions`, in [`crate::suite::Case`]): no
    /// traffic is sent.
    StatusOnly,
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
            Expectation::StatusOnly => false,
        }
    }

    /// A response that is not [`Expectation::ready`], in words for the convergence
    /// message: what the deciding check says is wrong with it, or the response.
    pub fn describe_unready(&self, sample: &Sample<'_>) -> String {
        let reason = match self {
            Expectation::Responses(checks) if sample.error.is_none() => checks.unready(sample),
            _ => None,
        };
        match reason {
            Some(reason) => format!("{} ({reason})", describe_response(sample)),
            None => describe_response(sample),
        }
    }

    /// The response headers the expectation reads from every sample; policy probes
    /// read none.
    pub fn response_headers(&self) -> Vec<http::HeaderName> {
        match self {
            Expectation::Responses(checks) => checks.response_headers(),
            Expectation::CircuitBreaking(_)
            | Expectation::OutlierDetection(_)
            | Expectation::StatusOnly => Vec::new(),
        }
    }

    /// Whether the expectation reads response bodies; policy probes read none.
    pub fn response_body(&self) -> bool {
        match self {
            Expectation::Responses(checks) => checks.response_body(),
            Expectation::CircuitBreaking(_)
            | Expectation::OutlierDetection(_)
            | Expectation::StatusOnly => false,
        }
    }

    /// Whether the expectation reads which echo-basic backend answered, so the case's
    /// identity rule must be echo-basic's.
    pub fn reads_echo_basic_identity(&self) -> bool {
        match self {
            Expectation::Responses(checks) => checks.reads_echo_basic_identity(),
            Expectation::CircuitBreaking(_)
            | Expectation::OutlierDetection(_)
            | Expectation::StatusOnly => false,
        }
    }

    /// Whether the expectation decides how many requests it needs; otherwise the case
    /// must give a request count.
    fn sizes_itself(&self) -> bool {
        match self {
            Expectation::Responses(checks) => checks.sizes_itself(),
            Expectation::CircuitBreaking(_) | Expectation::OutlierDetection(_) => false,
            Expectation::StatusOnly => true,
        }
    }

    /// Resolves a case's `expect`. `at` locates a field of the case (`expect.split`).
    pub(in crate::suite) fn load(
        spec: &ExpectSpec,
        context: &LoadContext<'_>,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Expectation, SuiteError> {
        let fixtures = context.fixtures;
        let invalid = |field: &str, message: String| SuiteError::Invalid {
            location: at(field),
            message,
        };
        let given = Given::all(spec);
        // `conditions` are resolved by the case (they are checked before any traffic);
        // alone, there is no traffic to judge.
        if given.is_empty() && context.has_conditions {
            return Ok(Expectation::StatusOnly);
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
        check_contradictions(&given, &invalid)?;
        let mut checks = Vec::new();
        let mut probe = None;
        for given in given {
            let field = |f: &str| at(&format!("expect.{}.{f}", given.key()));
            match given {
                Given::Status(status) => checks.push(ResponseCheck::Status(ExpectedStatus::load(
                    status,
                    &at("expect.status"),
                )?)),
                Given::Split(spec) => {
                    checks.push(ResponseCheck::Split(resolve_split(spec, fixtures, &field)?))
                }
                Given::ServedBy(service) => checks.push(ResponseCheck::ServedBy(
                    ExpectedServedBy::load(service, fixtures, &at("expect.servedBy"))?,
                )),
                Given::Request(spec) => checks.push(ResponseCheck::Request(ExpectedRequest::load(
                    spec, context, &field,
                )?)),
                Given::Response(spec) => checks.push(ResponseCheck::Response(
                    ExpectedResponse::load(spec, &field)?,
                )),
                Given::Redirect(spec) => checks.push(ResponseCheck::Redirect(
                    ExpectedRedirect::load(spec, context.request_url, &field)?,
                )),
                Given::Timeout(spec) => checks.push(ResponseCheck::Timeout(ExpectedTimeout::load(
                    spec,
                    context.request_timeout,
                    &field,
                )?)),
                Given::Mirror(specs) => checks.push(ResponseCheck::Mirror(ExpectedMirror::load(
                    specs,
                    fixtures,
                    context.request_url,
                    &|f: &str| at(&format!("expect.mirror{f}")),
                )?)),
                Given::WebSocket(spec) => checks.push(ResponseCheck::WebSocket(
                    ExpectedWebSocket::load(spec, context.websocket_messages, &|f: &str| {
                        if f.is_empty() {
                            at("expect.websocket")
                        } else {
                            at(&format!("expect.websocket.{f}"))
                        }
                    })?,
                )),
                Given::CircuitBreaking(spec) => {
                    probe = Some(Expectation::CircuitBreaking(resolve_circuit_breaking(
                        spec,
                        fixtures,
                        context.client_namespace,
                        &field,
                    )?));
                }
                Given::OutlierDetection(spec) => {
                    probe = Some(Expectation::OutlierDetection(resolve_outlier_detection(
                        spec,
                        fixtures,
                        context.client_namespace,
                        &field,
                    )?));
                }
            }
        }
        // A probe stands alone, so with one there are no checks.
        let expectation = match probe {
            Some(probe) => probe,
            None => Expectation::Responses(ResponseChecks::new(checks).ok_or_else(|| {
                let [others @ .., last] = Given::KEYS;
                let others: Vec<String> = others.iter().map(|k| format!("`{k}`")).collect();
                invalid(
                    "expect",
                    format!(
                        "a case needs at least one expectation ({}, `{last}` or `conditions`)",
                        others.join(", ")
                    ),
                )
            })?),
        };
        if !expectation.sizes_itself() && !context.has_request_count {
            return Err(invalid(
                "traffic.requests",
                "a case without a split check needs an explicit request count".into(),
            ));
        }
        Ok(expectation)
    }
}

/// What a loader may read besides its own spec.
pub struct LoadContext<'a> {
    pub fixtures: &'a Fixtures,
    /// The namespace whose view of the mesh applies (DestinationRules are
    /// namespace-scoped in what they apply to): the Gateway's, or the entry Service's
    /// for an in-mesh client.
    pub client_namespace: &'a str,
    /// Whether the case gives `traffic.requests`.
    pub has_request_count: bool,
    /// Where the case's requests enter: what decides which backends they may reach.
    pub entry: &'a Entry,
    /// The case's request URL: what a relative `Location` is resolved against.
    pub request_url: &'a url::Url,
    /// The case's `traffic.timeout`.
    pub request_timeout: Duration,
    /// Whether the case gives `expect.conditions`.
    pub has_conditions: bool,
    /// For a `ws://` or `wss://` URL, the messages each WebSocket session sends
    /// (`request.websocket`); `None` for other URLs.
    pub websocket_messages: Option<&'a [WebSocketMessage]>,
}

/// Keys that cannot all hold: a redirect (3xx from the gateway) and a timeout (504 from
/// the gateway) exclude each other, a status other than theirs, and a backend having
/// answered (`servedBy`, `request`).
fn check_contradictions(
    given: &[Given<'_>],
    invalid: &dyn Fn(&str, String) -> SuiteError,
) -> Result<(), SuiteError> {
    let has = |key: &str| given.iter().any(|g| g.key() == key);
    let status = given.iter().find_map(|g| match g {
        Given::Status(status) => Some(*status),
        _ => None,
    });
    for (gateway_answer, what) in [
        ("redirect", "a redirect (3xx)"),
        ("timeout", "a gateway timeout (504)"),
    ] {
        if !has(gateway_answer) {
            continue;
        }
        for backend_answer in ["servedBy", "request", "mirror"] {
            // A route that times out still mirrors (Envoy sends the copy with the
            // request); a redirect goes to no backend, so to no mirror either.
            if backend_answer == "mirror" && gateway_answer == "timeout" {
                continue;
            }
            if has(backend_answer) {
                return Err(invalid(
                    &format!("expect.{backend_answer}"),
                    format!(
                        "`{backend_answer}` contradicts `{gateway_answer}`: {what} is the gateway's answer, no backend's"
                    ),
                ));
            }
        }
    }
    // A WebSocket session's 101 is the gateway passing the upgrade on: it carries no
    // echo-basic body to read a backend or a request from, and no 3xx or 504.
    if has("websocket") {
        for other in [
            "split", "servedBy", "request", "redirect", "timeout", "mirror",
        ] {
            if has(other) {
                return Err(invalid(
                    &format!("expect.{other}"),
                    format!(
                        "`{other}` contradicts `websocket`: a WebSocket upgrade is answered 101, with no echo of the request to judge"
                    ),
                ));
            }
        }
        if let Some(status) = status.filter(|status| *status != 101) {
            return Err(invalid(
                "expect.status",
                format!("`status: {status}` contradicts `websocket`: an upgrade is a 101"),
            ));
        }
    }
    if has("redirect") && has("timeout") {
        return Err(invalid(
            "expect.timeout",
            "`timeout` contradicts `redirect`: a response cannot be both a 504 and a 3xx".into(),
        ));
    }
    match status {
        Some(status) if has("redirect") && !(300..400).contains(&status) => Err(invalid(
            "expect.status",
            format!("`status: {status}` contradicts `redirect`: a redirect is a 3xx"),
        )),
        Some(status) if has("timeout") && status != TIMEOUT_STATUS => Err(invalid(
            "expect.status",
            format!(
                "`status: {status}` contradicts `timeout`: a fired timeout is a {TIMEOUT_STATUS}"
            ),
        )),
        _ => Ok(()),
    }
}

/// One key given under `expect`, before it is resolved.
#[derive(Clone, Copy)]
enum Given<'a> {
    Status(u16),
    Split(&'a SplitSpec),
    ServedBy(&'a str),
    Request(&'a ReceivedRequestSpec),
    Response(&'a ReceivedResponseSpec),
    Redirect(&'a RedirectSpec),
    Timeout(&'a TimeoutSpec),
    Mirror(&'a [MirrorSpec]),
    WebSocket(&'a WebSocketExpectSpec),
    CircuitBreaking(&'a CircuitBreakingSpec),
    OutlierDetection(&'a OutlierDetectionSpec),
}

impl<'a> Given<'a> {
    /// The keys of `expect`, in the order they are resolved and reported.
    const KEYS: [&'static str; 11] = [
        "status",
        "split",
        "servedBy",
        "request",
        "response",
        "redirect",
        "timeout",
        "mirror",
        "websocket",
        "circuitBreaking",
        "outlierDetection",
    ];

    fn all(spec: &'a ExpectSpec) -> Vec<Given<'a>> {
        let ExpectSpec {
            status,
            split,
            circuit_breaking,
            outlier_detection,
            served_by,
            request,
            response,
            redirect,
            timeout,
            conditions: _,
            mirror,
            websocket,
        } = spec;
        [
            status.map(Given::Status),
            split.as_ref().map(Given::Split),
            served_by.as_deref().map(Given::ServedBy),
            request.as_ref().map(Given::Request),
            response.as_ref().map(Given::Response),
            redirect.as_ref().map(Given::Redirect),
            timeout.as_ref().map(Given::Timeout),
            mirror.as_deref().map(Given::Mirror),
            websocket.as_ref().map(Given::WebSocket),
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
            Given::ServedBy(_) => Self::KEYS[2],
            Given::Request(_) => Self::KEYS[3],
            Given::Response(_) => Self::KEYS[4],
            Given::Redirect(_) => Self::KEYS[5],
            Given::Timeout(_) => Self::KEYS[6],
            Given::Mirror(_) => Self::KEYS[7],
            Given::WebSocket(_) => Self::KEYS[8],
            Given::CircuitBreaking(_) => Self::KEYS[9],
            Given::OutlierDetection(_) => Self::KEYS[10],
        }
    }

    /// A policy probe drives its own traffic, so nothing else can judge it.
    fn stands_alone(self) -> bool {
        match self {
            Given::Status(_)
            | Given::Split(_)
            | Given::ServedBy(_)
            | Given::Request(_)
            | Given::Response(_)
            | Given::Redirect(_)
            | Given::Timeout(_)
            | Given::Mirror(_)
            | Given::WebSocket(_) => false,
            Given::CircuitBreaking(_) | Given::OutlierDetection(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::Expectation;
    use crate::suite::expect::ResponseCheck;
    use crate::suite::{Suite, load_suite};

    /// Writes a suite with one case on the circuit-breaking fixtures; `expect` and
    /// `traffic` are the case's blocks, indented as under the case.
    fn suite_file(dir: &Path, traffic: &str, expect: &str) -> PathBuf {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/circuit-breaking");
        let text = format!(
            "name: combos
fixtures:
  - {}/backend.yaml
  - {}/gateway.yaml
  - {}/destinationrule.yaml
cases:
  - name: one
    request:
      gateway: istio-test/istio-gateway
      url: http://slow.devopscube.com/
{traffic}    expect:
{expect}",
            fixtures.display(),
            fixtures.display(),
            fixtures.display(),
        );
        let path = dir.join("combos.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(traffic: &str, expect: &str) -> (PathBuf, Result<Suite, String>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = suite_file(dir.path(), traffic, expect);
        let loaded = load_suite(&path).map_err(|err| err.to_string());
        (path, loaded, dir)
    }

    const REQUESTS: &str = "    traffic:\n      requests: 5\n";
    const BURST: &str = "      circuitBreaking:\n        service: istio-test/slow-backend\n        overflow: required\n";

    #[test]
    fn a_probe_with_a_status_is_refused_where_the_probe_is() {
        let (path, loaded, _dir) = load(REQUESTS, &format!("      status: 200\n{BURST}"));
        // Line 15 is `circuitBreaking:`; its mapping starts on line 16, column 9.
        assert_eq!(
            loaded.err().as_deref(),
            Some(
                format!(
                    "{}:16:9: `circuitBreaking` stands alone: it cannot be combined with other expectations",
                    path.display()
                )
                .as_str()
            )
        );
    }

    #[test]
    fn of_two_probes_the_first_key_is_named() {
        let outlier = "      outlierDetection:\n        service: istio-test/slow-backend\n        ejectedHosts: 1\n";
        let (path, loaded, _dir) = load(REQUESTS, &format!("{outlier}{BURST}"));
        let text = loaded.err().unwrap_or_default();
        assert!(
            text.starts_with(&format!(
                "{}:18:9: `circuitBreaking` stands alone",
                path.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn a_case_without_expectations_lists_every_key() {
        let (path, loaded, _dir) = load(REQUESTS, "      {}\n");
        assert_eq!(
            loaded.err().as_deref(),
            Some(
                format!(
                    "{}:14:7: a case needs at least one expectation (`status`, `split`, `servedBy`, `request`, `response`, `redirect`, `timeout`, `mirror`, `websocket`, `circuitBreaking`, `outlierDetection` or `conditions`)",
                    path.display()
                )
                .as_str()
            )
        );
    }

    #[test]
    fn the_stand_alone_rule_comes_before_a_bad_status() {
        let (_, loaded, _dir) = load(REQUESTS, &format!("      status: 999\n{BURST}"));
        let text = loaded.err().unwrap_or_default();
        assert!(text.contains("`circuitBreaking` stands alone"), "{text}");
        let (_, loaded, _dir) = load(REQUESTS, "      status: 999\n");
        let text = loaded.err().unwrap_or_default();
        assert!(
            text.ends_with(":14:15: 999 is not an HTTP status"),
            "{text}"
        );
    }

    #[test]
    fn a_status_check_needs_a_request_count() {
        let (_, loaded, _dir) = load("", "      status: 200\n");
        let text = loaded.err().unwrap_or_default();
        assert!(
            text.ends_with("a case without a split check needs an explicit request count"),
            "{text}"
        );
    }

    #[test]
    fn a_status_alone_and_a_probe_alone_resolve() {
        let (_, loaded, _dir) = load(REQUESTS, "      status: 200\n");
        let suite = loaded.unwrap();
        let Expectation::Responses(checks) = &suite.cases[0].expect else {
            panic!("a status is a response check");
        };
        assert!(matches!(
            checks.iter().collect::<Vec<_>>().as_slice(),
            [ResponseCheck::Status(s)] if s.status == 200
        ));
        let (_, loaded, _dir) = load(REQUESTS, BURST);
        assert!(matches!(
            loaded.unwrap().cases[0].expect,
            Expectation::CircuitBreaking(_)
        ));
    }

    #[test]
    fn gateway_answers_contradict_each_other_and_backend_answers() {
        let cases = [
            (
                "      redirect: {host: example.org}\n      timeout: {within: 1s}\n",
                "`timeout` contradicts `redirect`",
            ),
            (
                "      request: {path: /}\n      redirect: {host: example.org}\n",
                "`request` contradicts `redirect`: a redirect (3xx) is the gateway's answer",
            ),
            (
                "      status: 200\n      timeout: {within: 1s}\n",
                "`status: 200` contradicts `timeout`: a fired timeout is a 504",
            ),
        ];
        for (expect, message) in cases {
            let (_, loaded, _dir) = load(REQUESTS, expect);
            let text = loaded.err().unwrap_or_default();
            assert!(text.contains(message), "{expect}: {text}");
        }
        let (_, loaded, _dir) = load(REQUESTS, "      status: 504\n      timeout: {within: 1s}\n");
        let suite = loaded.unwrap();
        let Expectation::Responses(checks) = &suite.cases[0].expect else {
            panic!("a timeout is a response check");
        };
        assert!(matches!(
            checks.iter().collect::<Vec<_>>().as_slice(),
            [ResponseCheck::Status(_), ResponseCheck::Timeout(t)] if t.within == std::time::Duration::from_secs(1)
        ));
        let (_, loaded, _dir) = load(
            REQUESTS,
            "      status: 302\n      redirect: {port: 8443}\n",
        );
        assert!(loaded.is_ok(), "{:?}", loaded.err());
    }

    /// A suite on two echo-basic Services behind one route.
    fn echo_basic_suite(dir: &Path, identity: &str, expect: &str) -> PathBuf {
        let deployment = |name: &str| {
            format!(
                "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: infra}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 8080, targetPort: 3000}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: infra}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: {name}, image: gcr.io/k8s-staging-gateway-api/echo-basic:v1}}
"
            )
        };
        let fixtures = format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra}}
spec:
  gatewayClassName: istio
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: split, namespace: infra}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs:
    - {{name: infra-backend-v1, port: 8080}}
    - {{name: infra-backend-v2, port: 8080}}
{}{}",
            deployment("infra-backend-v1"),
            deployment("infra-backend-v2")
        );
        std::fs::write(dir.join("infra.yaml"), fixtures).unwrap();
        let path = dir.join("echo.yaml");
        std::fs::write(
            &path,
            format!(
                "name: echo
fixtures: [infra.yaml]
cases:
  - name: one
    request: {{gateway: infra/gw, url: \"http://example.com/\"}}
    traffic: {{requests: 5}}
{identity}    expect:
{expect}"
            ),
        )
        .unwrap();
        path
    }

    #[test]
    fn echo_basic_backends_are_identified_by_their_deployments() {
        use crate::traffic::IdentityRule;
        let dir = tempfile::tempdir().unwrap();
        let path = echo_basic_suite(dir.path(), "", "      split: {route: infra/split}\n");
        let suite = load_suite(&path).unwrap();
        let case = &suite.cases[0];
        assert!(matches!(case.identity, IdentityRule::EchoBasic));
        let Expectation::Responses(checks) = &case.expect else {
            panic!("a split is a response check");
        };
        let Some(ResponseCheck::Split(split)) = checks.iter().next() else {
            panic!("one split");
        };
        let identities: Vec<&str> = split.backends.iter().map(|b| b.identity.as_str()).collect();
        assert_eq!(
            identities,
            ["infra/infra-backend-v1", "infra/infra-backend-v2"]
        );

        let path = echo_basic_suite(
            dir.path(),
            "",
            "      servedBy: infra/infra-backend-v2\n      request: {path: /, headers: {X-A: b}}\n",
        );
        let case = &load_suite(&path).unwrap().cases[0];
        assert!(matches!(case.identity, IdentityRule::EchoBasic));
        assert!(case.expect.response_body());
        assert!(case.expect.response_headers().is_empty());

        // An explicit identity rule with given identities is the suite's choice.
        let path = echo_basic_suite(
            dir.path(),
            "    identity: {header: x-pod}\n",
            "      split:\n        route: infra/split\n        identities: {infra-backend-v1: a, infra-backend-v2: b}\n",
        );
        let case = &load_suite(&path).unwrap().cases[0];
        assert!(matches!(&case.identity, IdentityRule::Header(h) if h == "x-pod"));
        assert!(!case.expect.response_body());

        let path = echo_basic_suite(dir.path(), "", "      servedBy: infra/nope\n");
        let text = load_suite(&path).unwrap_err().to_string();
        assert!(
            text.ends_with("Service infra/nope is not in the suite's fixtures"),
            "{text}"
        );
    }

    #[test]
    fn a_status_or_response_check_reads_no_body_unless_it_must() {
        let (_, loaded, _dir) = load(REQUESTS, "      response: {headers: {X-A: b}}\n");
        let case = &loaded.unwrap().cases[0];
        assert!(!case.expect.response_body());
        assert_eq!(
            case.expect.response_headers(),
            [http::HeaderName::from_static("x-a")]
        );
        let (_, loaded, _dir) = load(REQUESTS, "      response: {bodyContains: hi}\n");
        assert!(loaded.unwrap().cases[0].expect.response_body());
    }
}
