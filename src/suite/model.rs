//! The suite file format. Every struct rejects unknown keys so a typo is an error with a
//! location, not a silently ignored setting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// One suite file: fixtures to apply, how long to wait, and the cases to run.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SuiteSpec {
    /// Defaults to the file name without extension.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Manifest files, relative to the suite file, applied in order (CRDs and
    /// Namespaces first).
    pub fixtures: Vec<String>,
    #[serde(default)]
    pub readiness: ReadinessSpec,
    #[serde(default)]
    pub convergence: ConvergenceSpec,
    pub cases: Vec<CaseSpec>,
    /// The Gateway API conformance test this suite stands for, if any: the
    /// conformance report (`--conformance-report`) counts the suite under it.
    #[serde(default)]
    pub conformance: Option<super::conformance::ConformanceSpec>,
}

/// How long the target may take to bring the fixtures up.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadinessSpec {
    #[serde(default = "default_readiness_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for ReadinessSpec {
    fn default() -> Self {
        ReadinessSpec {
            timeout: default_readiness_timeout(),
        }
    }
}

fn default_readiness_timeout() -> Duration {
    Duration::from_secs(300)
}

/// The data plane lags the API: before measuring, a case needs this many good
/// responses in a row, within the timeout.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConvergenceSpec {
    #[serde(default = "default_consecutive")]
    pub consecutive: u32,
    #[serde(default = "default_convergence_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for ConvergenceSpec {
    fn default() -> Self {
        ConvergenceSpec {
            consecutive: default_consecutive(),
            timeout: default_convergence_timeout(),
        }
    }
}

fn default_consecutive() -> u32 {
    3
}

fn default_convergence_timeout() -> Duration {
    Duration::from_secs(60)
}

/// One case: a request loop and what its responses must show.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaseSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Manifest files (relative to the suite file, like `fixtures`) applied before the
    /// case runs: each object replaces the fixture object of its kind, namespace and
    /// name, or joins the fixtures. Later cases see the fixtures as edited.
    #[serde(default)]
    pub apply: Vec<String>,
    /// Where requests go. Only a case whose only expectation is `conditions` may leave
    /// it out: it sends no traffic.
    #[serde(default)]
    pub request: Option<RequestSpec>,
    #[serde(default)]
    pub traffic: TrafficSpec,
    /// How a response names the backend that served it.
    #[serde(default)]
    pub identity: IdentitySpec,
    pub expect: ExpectSpec,
    /// A known-broken case stays listed and is skipped with this reason.
    #[serde(default)]
    pub skip: Option<String>,
}

/// Where requests go: through a Gateway of the fixtures (north-south), or through the
/// mesh to a Service from an in-mesh client (east-west, GAMMA), and a URL whose host is
/// kept for Host/SNI, like `curl --resolve`. Exactly one of `gateway` and `service`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSpec {
    /// `namespace/name` of a Gateway in the fixtures.
    #[serde(default)]
    pub gateway: Option<String>,
    /// `namespace/name` of a Service in the fixtures, called from inside the mesh.
    #[serde(default)]
    pub service: Option<String>,
    /// `namespace/name` of a Deployment in the fixtures: east-west to one of its pods
    /// at the pod's own address, past any Service (the URL's host is `pod-ip`, which
    /// the target replaces with the address, port kept).
    #[serde(default)]
    pub pod: Option<String>,
    /// East-west only: the namespace the in-mesh client runs in, which decides the
    /// GAMMA consumer routes and DestinationRules it applies. The Service's namespace
    /// unless said; it must be a Namespace of the fixtures whose labels inject
    /// Istio's sidecar.
    #[serde(default)]
    pub from: Option<String>,
    /// The URL as a client would type it, e.g. `http://test.devopscube.com/`.
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sends this Host header instead of the URL's host.
    #[serde(default)]
    pub host: Option<String>,
    /// How an `https://` URL's certificate is verified. Without it, against the
    /// platform's trust store.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    /// The HTTP version spoken to the gateway or Service: `HTTP/1.1` unless said.
    /// `HTTP/2` over `http://` is prior knowledge (h2c without upgrade), over
    /// `https://` negotiated by ALPN.
    #[serde(default)]
    pub protocol: ProtocolSpec,
    /// For a `ws://` or `wss://` URL: what each WebSocket session sends after the
    /// upgrade, one message at a time, reading one reply after each.
    #[serde(default)]
    pub websocket: Option<WebSocketRequestSpec>,
}

/// `request.protocol`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum ProtocolSpec {
    #[default]
    #[serde(rename = "HTTP/1.1")]
    Http1,
    #[serde(rename = "HTTP/2")]
    Http2,
}

/// `request.websocket`: the messages of each WebSocket session.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebSocketRequestSpec {
    #[serde(default)]
    pub messages: Vec<WebSocketMessageSpec>,
}

/// One WebSocket data message: exactly one of `text` and `binary` (its bytes as
/// numbers, `[1, 2, 3]`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebSocketMessageSpec {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub binary: Option<Vec<u8>>,
}

/// `expect.websocket`: every session is upgraded (101, with the accept value that
/// proves the server read the handshake) and gets these replies, in order, one per
/// message of `request.websocket`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebSocketExpectSpec {
    #[serde(default)]
    pub replies: Vec<WebSocketMessageSpec>,
}

/// Certificate verification for an `https://` request. Verification is on unless
/// `insecureSkipVerify` says otherwise, and every case that says so carries a warning
/// in every report.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSpec {
    /// A PEM file of CA certificates trusted in addition to the platform's, relative
    /// to the suite file (a private CA such as the one that signed a gateway's Secret).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Accept any certificate for any name.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

fn default_method() -> String {
    "GET".into()
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficSpec {
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Upper bound on requests. For split checks the statistics decide how many are
    /// needed; this only caps them.
    #[serde(default)]
    pub requests: Option<u64>,
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "default_keep_alive")]
    pub keep_alive: bool,
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec {
            concurrency: default_concurrency(),
            requests: None,
            timeout: default_request_timeout(),
            keep_alive: default_keep_alive(),
        }
    }
}

fn default_concurrency() -> usize {
    4
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_keep_alive() -> bool {
    true
}

/// `body` (the echo text), `header: NAME`, or `regex: RE` applied to the body.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentitySpec {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

/// What the responses must show. At least one expectation is required.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExpectSpec {
    /// Every response must have this status.
    #[serde(default)]
    pub status: Option<u16>,
    /// The responses must split between backends as a route says.
    #[serde(default)]
    pub split: Option<SplitSpec>,
    /// A burst against a Service's connection pool limits: overflow or not.
    #[serde(default)]
    pub circuit_breaking: Option<CircuitBreakingSpec>,
    /// Failing hosts of a Service are ejected and stop getting traffic.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetectionSpec>,
    /// `namespace/name` of a Service whose pods run echo-basic: every response comes
    /// from one of them (read from echo-basic's JSON body).
    #[serde(default)]
    pub served_by: Option<String>,
    /// The request as the backend received it, from echo-basic's JSON body.
    #[serde(default)]
    pub request: Option<ReceivedRequestSpec>,
    /// What the client received: response headers and body.
    #[serde(default)]
    pub response: Option<ReceivedResponseSpec>,
    /// Every response is a redirect (3xx with a `Location`) to this place.
    #[serde(default)]
    pub redirect: Option<RedirectSpec>,
    /// Every response is a gateway timeout (504), each within a bound.
    #[serde(default)]
    pub timeout: Option<TimeoutSpec>,
    /// The status conditions of routes, Gateways and listeners, as the control plane
    /// reports them (on the local target: as Istio would), checked before any traffic.
    #[serde(default)]
    pub conditions: Option<Vec<ObjectConditionsSpec>>,
    /// Mirror backends that received copies of the case's requests (all of them, or
    /// a share), read from what their echo-basic pods logged.
    #[serde(default)]
    pub mirror: Option<Vec<MirrorSpec>>,
    /// Every WebSocket session is upgraded and gets these replies.
    #[serde(default)]
    pub websocket: Option<WebSocketExpectSpec>,
}

/// One entry of `expect.mirror`: a Service whose echo-basic pods receive copies of
/// the case's requests, as a RequestMirror filter sends them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MirrorSpec {
    /// `namespace/name` of the mirror's Service.
    pub service: String,
    /// The share of requests mirrored, in percent (0 < percent <= 100); every
    /// request when not given.
    #[serde(default)]
    pub percent: Option<f64>,
    /// The request target (path and query) the mirror receives; the case URL's
    /// when not given.
    #[serde(default)]
    pub path: Option<String>,
}

/// One entry of `expect.conditions`: the conditions of one route parent (`route` with
/// `parent`, maybe `sectionName`), one Gateway (`gateway`), or one listener (`gateway`
/// with `listener`, maybe `attachedRoutes`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectConditionsSpec {
    /// `namespace/name` of an HTTPRoute of the fixtures.
    #[serde(default)]
    pub route: Option<String>,
    /// With `route`: `namespace/name` of the parent Gateway (or Service, with
    /// `parentKind: Service`) whose status entry is meant.
    #[serde(default)]
    pub parent: Option<String>,
    /// With `route`: the parent's kind, `Gateway` unless said.
    #[serde(default)]
    pub parent_kind: Option<String>,
    /// With `route`: the parentRef's sectionName, when it has one.
    #[serde(default)]
    pub section_name: Option<String>,
    /// `namespace/name` of a Gateway of the fixtures.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The name of a GatewayClass of the fixtures (cluster-scoped: no namespace).
    #[serde(default)]
    pub gateway_class: Option<String>,
    /// With `gateway`: the name of one of its listeners.
    #[serde(default)]
    pub listener: Option<String>,
    /// With `listener`: how many routes it reports attached.
    #[serde(default)]
    pub attached_routes: Option<u32>,
    /// With `listener`: route kinds (of the Gateway API group) its `supportedKinds`
    /// must list; `[]` means it must list none.
    #[serde(default)]
    pub supported_kinds: Option<Vec<String>>,
    /// With `gateway` and no `listener`: the names of the listeners its status lists,
    /// all of them, in any order.
    #[serde(default)]
    pub listeners: Option<Vec<String>>,
    /// The object's `metadata.generation`; every condition of the entry must have been
    /// observed at it.
    #[serde(default)]
    pub generation: Option<u32>,
    /// With `gateway` and no `listener`: `assigned`, the Gateway's status lists at
    /// least one address.
    #[serde(default)]
    pub address: Option<String>,
    /// With `gateway` and no `listener`: labels and annotations every object Istio
    /// deploys for the Gateway carries (its ServiceAccount, pods and Service).
    #[serde(default)]
    pub generated: Option<GeneratedMetadataSpec>,
    /// Conditions that must be there with this status (and reason, when given).
    #[serde(default)]
    pub conditions: Vec<ConditionSpec>,
}

/// `expect.conditions[].generated`: labels and annotations, each with its value.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GeneratedMetadataSpec {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One condition expected in a status.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionSpec {
    /// `Accepted`, `ResolvedRefs`, `Programmed`, ...
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatusSpec,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A condition's status as Kubernetes writes it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum ConditionStatusSpec {
    True,
    False,
    Unknown,
}

impl ConditionStatusSpec {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatusSpec::True => "True",
            ConditionStatusSpec::False => "False",
            ConditionStatusSpec::Unknown => "Unknown",
        }
    }
}

/// `expect.request`: what every request looked like when it reached the backend (after
/// rewrites and header modifiers), as echo-basic echoes it. Each given part must match;
/// what is not given is not checked.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceivedRequestSpec {
    /// The path, exactly, without the query string.
    #[serde(default)]
    pub path: Option<String>,
    /// The `Host` header, exactly (a port included when one was sent).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    /// Headers present with these values (names case-insensitive; a header received
    /// on several lines compares as its values joined with `,`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers the backend must not have received.
    #[serde(default)]
    pub absent_headers: Vec<String>,
}

/// `expect.response`: what every response the client received carries.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceivedResponseSpec {
    /// Headers present with these values (names case-insensitive; a header sent on
    /// several lines compares as its values joined with `,`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers the response must not carry.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// Text the body contains.
    #[serde(default)]
    pub body_contains: Option<String>,
}

/// `expect.redirect`: every response is a 3xx whose `Location` (resolved against the
/// request URL when relative) has these parts. What is not given is not checked,
/// except the port: without `port`, the Location must name none or its scheme's
/// default.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedirectSpec {
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub path: Option<String>,
}

/// `expect.timeout`: every response is a 504 that came within `within` of sending the
/// request (a route or backend timeout that fired, and fired in time).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TimeoutSpec {
    #[serde(deserialize_with = "duration")]
    pub within: Duration,
}

/// What a concurrent burst must show against a Service's circuit breakers.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CircuitBreakingSpec {
    /// `namespace/name` of the Service whose Envoy cluster has the limits.
    pub service: String,
    /// The Service port (its Envoy cluster is `outbound|PORT||...`).
    #[serde(default = "default_service_port")]
    pub port: u16,
    pub overflow: OverflowExpectation,
}

/// Whether requests must overflow the limits.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OverflowExpectation {
    /// The burst exceeds the limits: overflowed requests are 503 with
    /// `x-envoy-overloaded: true`, at least as many as the limits guarantee.
    Required,
    /// The load stays within the limits: no request overflows.
    None,
}

/// What ejection must look like for a Service with failing hosts.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetectionSpec {
    /// `namespace/name` of the Service whose hosts are watched.
    pub service: String,
    #[serde(default = "default_service_port")]
    pub port: u16,
    /// How many hosts end up ejected (maxEjectionPercent caps it).
    pub ejected_hosts: u32,
    /// How long the proxy may take to eject them.
    #[serde(default = "default_ejection_timeout", deserialize_with = "duration")]
    pub ejection_timeout: Duration,
}

fn default_service_port() -> u16 {
    80
}

fn default_ejection_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SplitSpec {
    /// `namespace/name` of the HTTPRoute whose weights are expected.
    pub route: String,
    /// Which rule of the route (0-based).
    #[serde(default)]
    pub rule: usize,
    /// Overrides the route's weights: Service name -> weight.
    #[serde(default)]
    pub weights: Option<BTreeMap<String, u64>>,
    /// Overrides how each Service's responses are recognised: Service name -> identity.
    /// By default the identity comes from the fixtures (the echo `-text` of the pods the
    /// Service selects).
    #[serde(default)]
    pub identities: Option<BTreeMap<String, String>>,
    /// Probability of failing a correct split.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Probability of catching a split off by `minDetectableDeviation`.
    #[serde(default = "default_power")]
    pub power: f64,
    /// Smallest deviation of a backend's share (absolute, 0..1) that must be caught.
    #[serde(default = "default_deviation")]
    pub min_detectable_deviation: f64,
}

fn default_alpha() -> f64 {
    1e-4
}

fn default_power() -> f64 {
    0.999
}

fn default_deviation() -> f64 {
    0.10
}

/// Durations as people write them: `30s`, `5m`, `250ms`.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map_err(|err| serde::de::Error::custom(format!("invalid duration `{text}`: {err}")))
}
