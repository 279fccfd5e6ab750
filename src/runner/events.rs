//! What execution tells the world. The runner only emits these; the terminal view, the
//! JSON and JUnit reports and the cargo-test harness consume them, each on its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::CaseError;
use crate::manifest::ObjectKey;
use crate::stats::SplitVerdict;
use crate::suite::Entry;
use crate::targets::{CleanupReport, DiagnosticSection, RequestOrigin, SetupError};
use crate::traffic::ErrorKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Local,
    Kube,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Local => "local",
            TargetKind::Kube => "kube",
        })
    }
}

/// The stages a suite goes through; progress displays name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Install,
    BringUp,
    Apply,
    Wait,
    /// A case finds where its requests go: the Gateway's address (DNS included), or
    /// the in-mesh client pod.
    Address,
    Converge,
    Traffic,
    Cleanup,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Install => "install",
            Phase::BringUp => "bring-up",
            Phase::Apply => "apply",
            Phase::Wait => "wait",
            Phase::Address => "address",
            Phase::Converge => "converge",
            Phase::Traffic => "traffic",
            Phase::Cleanup => "cleanup",
        })
    }
}

/// What a suite is doing within a [`Phase`]; reporters put it in words
/// (`src/report/phase_detail.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhaseDetail {
    /// The local target installs Envoy into this directory (first use only).
    InstallingEnvoy { dir: PathBuf },
    /// The local target starts Envoy and the echo backends for the fixtures.
    StartingLocal { objects: usize },
    /// The local target's Envoy is LIVE.
    LocalReady {
        envoy_startup: Duration,
        echo_processes: usize,
    },
    /// A fixture container the kube target runs as `stand_in`, an echo server that
    /// can delay by itself but answers with the request body, not `text`.
    Substituted {
        object: ObjectKey,
        image: String,
        delay: Duration,
        stand_in: &'static str,
        text: String,
    },
    /// The kube target adds the in-mesh client Deployment for east-west cases.
    MeshClientAdded {
        object: ObjectKey,
        image: &'static str,
    },
    /// The kube target applies the suite's objects.
    Applying { objects: usize },
    /// The kube target waits for what it applied to be ready.
    WaitingForReadiness,
    /// A signal stopped the bring-up; what it created so far is removed.
    RemovingPartialEnvironment,
    /// The suite's cases are done (or interrupted); its environment is stopped.
    StoppingSuite,
    /// A case finds where its requests go: the address of its Gateway, or the in-mesh
    /// client pod that calls its Service.
    FindingEntry {
        case: String,
        entry: Entry,
        port: u16,
    },
    /// A case waits for the data plane: `consecutive` good responses in a row.
    Converging {
        case: String,
        consecutive: u32,
        url: url::Url,
        origin: RequestOrigin,
    },
    /// A case's measured request loop.
    Measuring {
        case: String,
        max_requests: u64,
        url: url::Url,
        origin: RequestOrigin,
        concurrency: usize,
    },
    /// A circuit-breaking case's burst against the limits of an Envoy cluster.
    Burst {
        case: String,
        requests: u64,
        concurrency: usize,
        cluster: String,
    },
    /// An outlier-detection case drives failing hosts into ejection, one request at a
    /// time.
    Ejecting {
        case: String,
        ejected_hosts: u32,
        hosts: u32,
        cluster: String,
        within: Duration,
    },
    /// An outlier-detection case measures after the ejections.
    Ejected {
        case: String,
        ejected_hosts: u64,
        after_requests: u64,
        measured_requests: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// One thing a long wait is still waiting for, and why (what was seen last).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Pending {
    /// What is awaited: `Deployment istio-test/backend-v1`, or a case's URL.
    pub object: String,
    /// Why it is not there yet: `0/1 pods ready (1 without the istio-proxy sidecar)`.
    pub reason: String,
}

/// How long one kind of object took to be ready: from the start of the readiness
/// wait until the last object of that kind was.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct KindReady {
    /// The object kind: `Deployment`, `Gateway`, `HTTPRoute`, ...
    pub kind: String,
    pub seconds: f64,
}

/// Moments inside a suite's phases that its phase timings are measured from
/// (`runner/phase_timer.rs`); no reporter shows them as they happen.
#[derive(Clone, Debug, PartialEq)]
pub enum Milestone {
    /// The target handed the suite's configuration over: the kube target applied its
    /// last object, the local target's Envoy is live with its configuration. A case's
    /// convergence is timed from here (how long the data plane took to take it).
    ConfigApplied,
    /// The readiness wait is over: how long each kind of object took.
    KindsReady(Vec<KindReady>),
    /// A case's convergence saw its first good response.
    FirstGoodResponse { case: String },
    /// A case's convergence saw the good responses in a row it asks for.
    Converged { case: String },
}

/// Versions of what the run tested against, where known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RunEnvironment {
    pub target: Option<TargetKind>,
    /// This meshcheck's version.
    pub meshcheck: String,
    /// The Envoy that served the traffic (local target), when known.
    pub envoy: Option<String>,
    /// Istio control plane version (kube target), when known.
    pub istio: Option<String>,
    /// Gateway API CRD bundle version (kube target), when known.
    pub gateway_api: Option<String>,
    /// The Gateway API release channel of those CRDs (`standard`, `experimental`),
    /// when known.
    pub gateway_api_channel: Option<String>,
    /// Kubernetes API server version (kube target), when known.
    pub kubernetes: Option<String>,
    /// The id the run labelled its cluster objects with (kube target):
    /// `meshcheck cleanup --run-id ID` removes what a crashed run left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// A version the target could not find out, and why: said once in the terminal,
/// while the report's field stays `null`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownVersion {
    /// What the version is of, as the terminal names it: `Istio`, `Kubernetes`.
    pub component: &'static str,
    pub reason: String,
}

/// Latency percentiles of a case's measured requests, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Everything known about one finished case. Reports are built from this alone.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CaseResult {
    pub suite: String,
    pub name: String,
    pub outcome: Outcome,
    /// Wall-clock time of the case in seconds, convergence included.
    #[serde(rename = "duration_seconds", serialize_with = "as_seconds")]
    #[schemars(with = "f64")]
    pub duration: Duration,
    /// Requests measured (after convergence).
    pub requests: u64,
    /// Backend identity -> responses.
    pub backends: BTreeMap<String, u64>,
    /// HTTP status -> responses.
    pub status_codes: BTreeMap<u16, u64>,
    /// Transport error kind -> requests.
    pub errors: BTreeMap<String, u64>,
    /// Responses carrying `x-envoy-overloaded: true` (circuit breaker overflow).
    pub envoy_overloaded: u64,
    /// The proxy's own counters for a policy check (circuit breaker overflows,
    /// ejections, per-host requests), as deltas over the case unless the name says
    /// otherwise; empty for other cases.
    pub proxy_counters: BTreeMap<String, u64>,
    pub requests_per_second: f64,
    pub latency: Option<LatencySummary>,
    pub split: Option<SplitVerdict>,
    // Typed; reporters put it into words (`src/report/case_message.rs`, which also
    // makes it the string below). The doc line is the JSON schema's description.
    /// One line saying why the case passed, failed or was skipped.
    #[schemars(with = "String")]
    pub message: CaseMessage,
    /// Things a reader must know even when the case passed, e.g. that certificate
    /// verification was off.
    pub warnings: Vec<String>,
    pub diagnostics: Vec<DiagnosticSection>,
    /// Complete dumps behind `diagnostics` (every non-zero Envoy stat): in the JSON
    /// report only, where a tool or a patient reader can search them; the terminal,
    /// JUnit and HTML show the focused `diagnostics`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostic_dumps: Vec<DiagnosticSection>,
}

/// Why a case ended as it did. Failures stay typed, each cause a `source()`, until a
/// reporter renders them (`src/report/case_message.rs`): the runner never flattens
/// an error to text.
#[derive(Clone, Debug)]
pub enum CaseMessage {
    /// What the case's checks concluded, pass or fail, in their own words.
    Verdict(String),
    /// Why the case was not run (the suite file's `skip`).
    Skipped(String),
    /// The case ended before its checks could conclude.
    Error(Arc<CaseError>),
    /// The suite's environment could not be brought up, so the case never ran.
    SetupFailed(Arc<SetupError>),
}

/// Texts compare by value; errors by identity (an error has no equality of its own,
/// and the runner shares one setup error among the cases of its suite).
impl PartialEq for CaseMessage {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CaseMessage::Verdict(a), CaseMessage::Verdict(b))
            | (CaseMessage::Skipped(a), CaseMessage::Skipped(b)) => a == b,
            (CaseMessage::Error(a), CaseMessage::Error(b)) => Arc::ptr_eq(a, b),
            (CaseMessage::SetupFailed(a), CaseMessage::SetupFailed(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl CaseResult {
    /// A case that ended before measuring anything: skipped, or failed by its setup.
    pub fn without_traffic(
        suite: &str,
        name: &str,
        outcome: Outcome,
        message: CaseMessage,
    ) -> Self {
        CaseResult {
            suite: suite.to_string(),
            name: name.to_string(),
            outcome,
            duration: Duration::ZERO,
            requests: 0,
            backends: BTreeMap::new(),
            status_codes: BTreeMap::new(),
            errors: BTreeMap::new(),
            envoy_overloaded: 0,
            proxy_counters: BTreeMap::new(),
            requests_per_second: 0.0,
            latency: None,
            split: None,
            message,
            warnings: Vec::new(),
            diagnostics: Vec::new(),
            diagnostic_dumps: Vec::new(),
        }
    }

    pub fn id(&self) -> String {
        format!("{}::{}", self.suite, self.name)
    }
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Totals for the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RunSummary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Suites whose environment could not be brought up.
    pub setup_failures: usize,
    pub interrupted: bool,
}

impl RunSummary {
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }

    /// The documented exit code for this run (README.md, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        use crate::exit_codes::*;
        if self.interrupted {
            INTERRUPTED
        } else if self.setup_failures > 0 {
            SETUP_FAILED
        } else if self.failed > 0 {
            CASES_FAILED
        } else {
            SUCCESS
        }
    }
}

#[derive(Clone, Debug)]
pub enum Event {
    RunStarted {
        suites: usize,
        cases: usize,
        target: TargetKind,
    },
    SuiteStarted {
        suite: String,
        cases: usize,
        /// The Gateway API conformance test the suite stands for, if it does.
        conformance: Option<crate::suite::Conformance>,
    },
    /// A suite entered a phase; `detail` says what is happening.
    Phase {
        suite: String,
        phase: Phase,
        detail: PhaseDetail,
    },
    /// The environment reported its versions (Envoy, Istio, Kubernetes...).
    Environment {
        environment: RunEnvironment,
        /// Why each version the target tried to find out is not known.
        unknown: Vec<UnknownVersion>,
    },
    /// A readiness or convergence wait has run a while: what it still waits for.
    /// Sent after a quiet period, on change, and at least every few seconds
    /// (`runner/still_waiting.rs`), like nextest's slow-test events.
    StillWaiting {
        suite: String,
        phase: Phase,
        waited: Duration,
        pending: Vec<Pending>,
    },
    /// A moment the suite's phase timings are measured from; see [`Milestone`].
    Milestone {
        suite: String,
        milestone: Milestone,
    },
    CaseStarted {
        suite: String,
        case: String,
    },
    /// One of the first responses of a case, shown like the seed's curl loop.
    Response {
        suite: String,
        case: String,
        status: Option<u16>,
        /// The backend identity (echo text), if the response named one.
        identity: Option<String>,
        /// Why the request failed, if it did.
        error: Option<ErrorKind>,
    },
    /// Periodic progress while a case's requests run.
    TrafficProgress {
        suite: String,
        case: String,
        requests: u64,
        max_requests: u64,
        /// Responses so far per expected backend identity.
        backends: BTreeMap<String, u64>,
        /// Responses so far that named no expected backend.
        unidentified: u64,
        requests_per_second: f64,
    },
    CaseFinished {
        result: Box<CaseResult>,
    },
    /// How long each phase of the suite took, measured as it ran; sent once, just
    /// before `SuiteFinished`.
    PhaseTimings {
        suite: String,
        phases: Vec<super::phase_timer::PhaseTiming>,
    },
    SuiteFinished {
        suite: String,
        cleanup: CleanupReport,
    },
    /// A suite could not be brought up; its cases are reported failed.
    SetupFailed {
        suite: String,
        /// Shared, not rendered: each reporter puts it (and its causes) in words.
        error: Arc<SetupError>,
    },
    /// SIGINT/SIGTERM arrived; what was created is being cleaned up.
    Interrupted {
        signal: String,
    },
    RunFinished {
        summary: RunSummary,
        duration: Duration,
    },
}
