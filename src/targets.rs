//! Where suites run. The local target brings the fixtures up as real processes on this
//! machine; the kube target applies them to a cluster. Both hand the runner the same
//! few things through `Target` and `RunningTarget`: a bring-up that stops cleanly
//! on a signal, a `SampleSource` for each case, the proxy's own statistics,
//! diagnostics for a failed case, and a cleanup report.
//!
//! Dispatch is static: the runner is generic over a `Target`, and one `match` on
//! [`TargetSettings`] at the top of a run picks the implementation. The traits use
//! `async fn`, which is not dyn-compatible; nothing needs a `dyn Target` (a run uses
//! one target from start to end), so the futures stay unboxed. The traits are
//! crate-private: the run's futures are only ever `block_on`'d, so no `Send` bound is
//! promised to anyone outside.
//!
//! A target reaches up into the runner at one point only: bring-up reports progress
//! in the runner's event vocabulary ([`Phase`](crate::runner::Phase),
//! [`PhaseDetail`](crate::runner::PhaseDetail),
//! [`RunEnvironment`](crate::runner::RunEnvironment),
//! [`TargetKind`](crate::runner::TargetKind)) and is interrupted through `BringUp`,
//! so that the announce-then-clean-up order on a signal is written once, in
//! `runner/bring_up.rs`.

mod error;
pub mod kube;
pub mod local;
pub mod proxy_stats;
mod settings;
mod source;

use serde::Serialize;

use std::time::Duration;

use crate::fixtures::{Fixtures, GeneratedObjectView, IstioStatus};
use crate::manifest::ObjectKey;
use crate::runner::BringUp;
use crate::suite::expect::{Received, Receiver};
use crate::suite::{Case, Entry, Suite};
use crate::traffic::{Flow, LoadSpec, Sample, Tally};

pub(crate) use error::BringUpError;
pub use error::{SendError, SetupError, TargetError};
pub use proxy_stats::StatsSnapshot;
pub use settings::{LocalSettings, TargetSettings};
pub(crate) use source::EngineSource;

/// A place a suite's fixtures can be brought up.
pub(crate) trait Target {
    type Running: RunningTarget;

    /// Brings a suite's fixtures up, reporting progress through `bring_up`. Each
    /// interruptible step goes through [`BringUp::step`]; when a signal comes first,
    /// what was created is handed to [`BringUp::abandon`], whose error is returned.
    /// A failure after something was created removes it before returning.
    async fn bring_up(&self, bring_up: &mut BringUp<'_>) -> Result<Self::Running, BringUpError>;
}

/// A suite's fixtures, up and serving.
pub(crate) trait RunningTarget {
    type Source<'env>: SampleSource
    where
        Self: 'env;

    /// Where a case's samples come from for requests to `entry` on `port`.
    async fn sample_source(
        &self,
        entry: &Entry,
        port: u16,
    ) -> Result<Self::Source<'_>, TargetError>;

    /// The status the control plane reports for `objects` (Gateways, HTTPRoutes and
    /// GatewayClasses of the suite): on the local target as Istio would write it for `fixtures` (the
    /// suite's as a case meets them, edits applied), on a cluster read from the objects
    /// once their status describes their current generation, waiting at most
    /// `timeout` for that.
    async fn status(
        &self,
        fixtures: &Fixtures,
        objects: &[ObjectKey],
        timeout: std::time::Duration,
    ) -> Result<IstioStatus, TargetError>;

    /// What the control plane deployed for `gateway` (its ServiceAccount, pods and
    /// Service, labelled `gateway.networking.k8s.io/gateway-name`), read only for a
    /// case's `generated` check: on the local target as Istio's deployment controller
    /// makes them for `fixtures`, on a cluster listed from the Gateway's namespace.
    async fn generated_objects(
        &self,
        fixtures: &Fixtures,
        gateway: &ObjectKey,
    ) -> Result<Vec<GeneratedObjectView>, TargetError>;

    /// Brings a case's `apply` objects (Gateways, HTTPRoutes, GatewayClasses) into the
    /// environment in place, as a later edit of the fixtures; `edited` is the fixtures
    /// with the edit applied. The local target only checks `edited` as it checked the
    /// fixtures at bring-up: it computes status from the fixtures as each case meets
    /// them ([`Case::fixtures`]), and serves the fixtures as brought up (see
    /// [`Self::serves_edits`]).
    async fn apply(
        &mut self,
        objects: &[crate::manifest::Manifest],
        edited: &Fixtures,
    ) -> Result<(), TargetError>;

    /// Whether requests sent after an `apply` meet the edited objects. The local
    /// target does not reprogram its proxies mid-suite, so a case that sends traffic
    /// after an edit is skipped there, with that reason.
    fn serves_edits(&self) -> bool {
        true
    }

    /// Whether [`RunningTarget::status`] read again can say something else: a
    /// cluster's controllers converge, so status written for the current generation
    /// may still describe the cluster before an object applied a moment later (a
    /// listener whose ReferenceGrant arrived after its Gateway). The local target
    /// computes it once from the fixtures.
    fn status_converges(&self) -> bool {
        false
    }

    /// A path of the admin API (`/stats`, `/clusters`) of the proxy that handles a
    /// case's requests: the gateway's Envoy, or the in-mesh client's sidecar.
    async fn proxy_admin(&self, entry: &Entry, path: &str) -> Result<String, TargetError>;

    /// The `/stats` of the sidecars in front of `service`'s pods, one text per proxy:
    /// Istio puts a DestinationRule's connection pool on each injected pod's inbound
    /// cluster too, so some of a burst's 503s may be counted there rather than by the
    /// client's proxy. Empty when the pods have no sidecar.
    async fn server_sidecar_stats(&self, service: &ObjectKey) -> Result<Vec<String>, TargetError>;

    /// The proxy's stats as a case starts measuring, for [`Self::diagnostics`] to say
    /// what changed during the case; `None` where the target's diagnostics have no
    /// use for it (or the stats could not be read).
    async fn measuring_started(&self, case: &Case) -> Option<StatsSnapshot>;

    /// What a failed case shows about the environment, given the snapshot
    /// [`Self::measuring_started`] took (`None` when the case failed before measuring).
    async fn diagnostics(
        &self,
        suite: &Suite,
        case: &Case,
        baseline: Option<&StatsSnapshot>,
    ) -> Diagnostics;

    /// Where the records of what backends received stand at one moment: what
    /// [`Self::received_since`] counts from.
    type ReceivedMark;

    /// Marks where the records of what `receivers`' pods received stand now (each
    /// echo-basic pod's log of the requests it got), for requests entering at
    /// `entry`, so that [`Self::received_since`] reads only what arrives later.
    async fn mark_received(
        &self,
        entry: &Entry,
        receivers: &[Receiver],
    ) -> Result<Self::ReceivedMark, TargetError>;

    /// What each receiver's pods logged receiving since `mark`, in the mark's
    /// receivers' order. Copies of requests (a mirror's) arrive asynchronously, so
    /// the records are read once they have settled, or when `within` has passed
    /// (then `Received::settled` is false). `complete[i]`, when given, is the count
    /// of matching requests that would leave nothing more to wait for at receiver `i`.
    async fn received_since(
        &self,
        mark: &Self::ReceivedMark,
        complete: &[Option<u64>],
        within: Duration,
    ) -> Result<Vec<Received>, TargetError>;

    /// Stops and removes everything, saying what.
    async fn shutdown(self) -> CleanupReport;

    /// Shuts down after a case of the suite failed. A target that can leave its
    /// objects for inspection (the kube target with `--keep-on-failure`) does so here
    /// and says, in the report, how to remove them later.
    async fn shutdown_after_failure(self) -> CleanupReport
    where
        Self: Sized,
    {
        self.shutdown().await
    }
}

/// The producer of a case's samples. Convergence, the measured loop and the policy
/// checks only see [`Sample`]s through `observe`; the source knows whether
/// meshcheck's engine sends the requests or a client pod inside a cluster's mesh does.
pub(crate) trait SampleSource {
    /// Where the engine's sockets go; `None` when requests are sent from a pod, which
    /// resolves the URL's host through cluster DNS.
    fn connect_to(&self) -> Option<std::net::SocketAddr>;

    /// The `host:port` requests name instead of the URL's, when the target decides
    /// it: a pod's own address, for a case that calls a pod (`request.pod`).
    fn authority(&self) -> Option<&str> {
        None
    }

    /// Where requests come from, for progress displays.
    fn origin(&self) -> RequestOrigin;

    /// Sends what `load` describes, calling `observe` per response as
    /// [`run_load`](crate::traffic::run_load) does, and returns the tally of what
    /// `observe` saw.
    async fn send(
        &mut self,
        load: &LoadSpec,
        observe: impl FnMut(&Sample<'_>) -> Flow,
    ) -> Result<Tally, SendError>;

    /// What a failed case should show about the source itself (a client pod's raw
    /// output); `None` when there is nothing beyond the engine's tally.
    fn diagnostics(&self) -> Option<DiagnosticSection>;
}

/// Where a case's requests come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOrigin {
    /// meshcheck's engine, connecting to this address.
    Engine { address: std::net::SocketAddr },
    /// `curl` in an in-mesh client pod.
    MeshClient { namespace: String, pod: String },
}

/// One block of diagnostics shown with a failed case and stored in reports: route and
/// gateway conditions, events, pod states, a proxy log tail, Envoy stats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DiagnosticSection {
    pub title: String,
    pub body: String,
}

/// What a target says about a failed case: sections every report shows, and complete
/// dumps behind them (every non-zero Envoy stat) that only the JSON report keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub sections: Vec<DiagnosticSection>,
    pub dumps: Vec<DiagnosticSection>,
}

/// What a target removed when it shut down, so the user is told (including after
/// Ctrl-C) and tests can check nothing was left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CleanupReport {
    /// Human-readable names of what was stopped or deleted, in the order it happened.
    pub removed: Vec<String>,
    /// What could not be removed, with the reason; empty on a clean shutdown.
    pub failed: Vec<String>,
    /// What was left in place on purpose (`--keep-on-failure`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// The command that removes what was kept (`meshcheck cleanup --run-id ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_later_with: Option<String>,
}
