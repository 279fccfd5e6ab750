//! Where suites run. The local target brings the fixtures up as real processes on this
//! machine; the kube target applies them to a cluster. Both hand the runner the same
//! few things: an address for each gateway listener, the proxy's own statistics,
//! diagnostics for a failed case, and a cleanup report.

pub mod kube;
pub mod local;

use serde::Serialize;

/// One block of diagnostics shown with a failed case and stored in reports: route and
/// gateway conditions, events, pod states, a proxy log tail, Envoy stats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DiagnosticSection {
    pub title: String,
    pub body: String,
}

/// What a target removed when it shut down, so the user is told (including after
/// Ctrl-C) and tests can check nothing was left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CleanupReport {
    /// Human-readable names of what was stopped or deleted, in the order it happened.
    pub removed: Vec<String>,
    /// What could not be removed, with the reason; empty on a clean shutdown.
    pub failed: Vec<String>,
}
