//! `expect.circuitBreaking`: a burst against a Service's connection pool limits
//! overflows or not. A policy probe: the runner drives the burst and judges it
//! (`runner::policy::circuit`).

use super::service_pods::{cluster_name, pods_behind};
use crate::fixtures::{Fixtures, istio};
use crate::manifest::{ObjectKey, SourceLocation};
use crate::suite::error::SuiteError;
use crate::suite::{OverflowExpectation, parse_ref};
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

/// The circuit-breaking loader: the pods behind the Service and the limits of the
/// DestinationRule that applies to the client. `at` locates a field under
/// `expect.circuitBreaking`.
pub(super) fn resolve_circuit_breaking(
    spec: &crate::suite::model::CircuitBreakingSpec,
    fixtures: &Fixtures,
    client_namespace: &str,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedCircuitBreaking, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let service = parse_ref("Service", &spec.service).map_err(|m| invalid("service", m))?;
    let pods = pods_behind(fixtures, &service, spec.port).map_err(|m| invalid("service", m))?;
    let pool = fixtures
        .destination_rule_for(&service, client_namespace)
        .and_then(|rule| rule.connection_pool());
    // Every request is at least as slow as the fastest pod; a pod without a delay
    // makes the backend fast.
    let backend_delay = pods
        .iter()
        .map(|p| (!p.echo.delay.is_zero()).then_some(p.echo.delay))
        .min()
        .flatten();
    if spec.overflow == OverflowExpectation::Required && backend_delay.is_none() {
        return Err(invalid(
            "overflow",
            format!(
                "overflow needs a slow backend: give every Deployment behind {service} an echo `-delay` (e.g. `-delay=500ms`)"
            ),
        ));
    }
    Ok(ExpectedCircuitBreaking {
        cluster: cluster_name(&service, spec.port),
        service,
        overflow: spec.overflow,
        backend_delay,
        endpoints: pods.iter().map(|p| p.replicas).sum(),
        max_connections: istio::pool_limit(
            pool.and_then(|p| p.tcp.as_ref())
                .and_then(|tcp| tcp.max_connections),
        ),
        max_pending_requests: istio::pool_limit(
            pool.and_then(|p| p.http.as_ref())
                .and_then(|http| http.http1_max_pending_requests),
        ),
    })
}
