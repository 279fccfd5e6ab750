//! `expect.circuitBreaking`: a burst against a Service's connection pool limits
//! overflows or not. A policy probe: the runner drives the burst and judges it
//! (`runner::policy::circuit`).

use crate::manifest::ObjectKey;
use crate::suite::OverflowExpectation;
use crate::traffic::Sample;

/// A circuit-breaking expectation with what the fixtures say about the limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedCircuitBreaking {
    pub service: ObjectKey,
    /// Istio's Envoy cluster name for the Service port.
    pub cluster: String,
    pub overflow: OverflowExpectation,
    /// The shortest echo `-delay` among the Service's pods: every request the backend
    /// serves takes at least this long.
    pub backend_delay: Option<std::time::Duration>,
    /// Pods behind the Service (sum of the Deployments' replicas).
    pub endpoints: u32,
    /// The DestinationRule's `tcp.maxConnections`, if any.
    pub max_connections: Option<u32>,
    /// The DestinationRule's `http.http1MaxPendingRequests`, if any.
    pub max_pending_requests: Option<u32>,
}

impl ExpectedCircuitBreaking {
    /// One request at a time never overflows: any answer below 500 shows the route
    /// reaches the Service.
    pub(super) fn ready(&self, sample: &Sample<'_>) -> bool {
        sample.status.is_some_and(|s| s < 500)
    }
}
