//! `expect.outlierDetection`: failing hosts of a Service are ejected and stop getting
//! traffic. A policy probe: the runner drives the hosts into ejection and judges what
//! follows (`runner::policy::outlier`).

use crate::manifest::ObjectKey;
use crate::traffic::Sample;

/// An outlier-detection expectation with what the fixtures say about the hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedOutlierDetection {
    pub service: ObjectKey,
    pub cluster: String,
    pub ejected_hosts: u32,
    pub ejection_timeout: std::time::Duration,
    /// Pods behind the Service.
    pub hosts: u32,
    /// Pods that answer 5xx (their echo `-status-code`).
    pub failing_hosts: u32,
    pub failing_status: u16,
    /// The DestinationRule's `consecutive5xxErrors`, if any.
    pub consecutive_5xx: Option<u32>,
}

impl ExpectedOutlierDetection {
    /// A failing host's answers come from the backend too: the route works.
    pub(super) fn ready(&self, sample: &Sample<'_>) -> bool {
        sample.status == Some(200) || sample.status == Some(self.failing_status)
    }
}
