//! `expect.outlierDetection`: failing hosts of a Service are ejected and stop getting
//! traffic. A policy probe: the runner drives the hosts into ejection and judges what
//! follows (`runner::policy::outlier`).

use super::service_pods::{cluster_name, pods_behind};
use crate::fixtures::Fixtures;
use crate::manifest::{ObjectKey, SourceLocation};
use crate::suite::error::SuiteError;
use crate::suite::parse_ref;
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

/// The outlier-detection loader: the failing and healthy pods behind the Service and
/// the DestinationRule's `consecutive5xxErrors`. `at` locates a field under
/// `expect.outlierDetection`.
pub(super) fn resolve_outlier_detection(
    spec: &crate::suite::model::OutlierDetectionSpec,
    fixtures: &Fixtures,
    client_namespace: &str,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedOutlierDetection, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let service = parse_ref("Service", &spec.service).map_err(|m| invalid("service", m))?;
    let pods = pods_behind(fixtures, &service, spec.port).map_err(|m| invalid("service", m))?;
    let hosts: u32 = pods.iter().map(|p| p.replicas).sum();
    let failing: Vec<(u16, u32)> = pods
        .iter()
        .map(|p| (p.echo.status.as_u16(), p.replicas))
        .filter(|(status, _)| *status >= 500)
        .collect();
    let Some(&(failing_status, _)) = failing.first() else {
        return Err(invalid(
            "service",
            format!(
                "no Deployment behind {service} answers 5xx: give the failing replicas their own Deployment with an echo `-status-code=500`"
            ),
        ));
    };
    if failing.iter().any(|(status, _)| *status != failing_status) {
        return Err(invalid(
            "service",
            format!("the failing Deployments behind {service} answer different statuses"),
        ));
    }
    let failing_hosts: u32 = failing.iter().map(|(_, n)| n).sum();
    if spec.ejected_hosts > failing_hosts {
        return Err(invalid(
            "ejectedHosts",
            format!(
                "{} hosts cannot be ejected: only {failing_hosts} of the {} behind {service} fail",
                spec.ejected_hosts, hosts
            ),
        ));
    }
    if failing_hosts == hosts {
        return Err(invalid(
            "service",
            format!("every host behind {service} fails: there is nothing healthy to fall back to"),
        ));
    }
    if spec.ejection_timeout.is_zero() {
        return Err(invalid("ejectionTimeout", "must be more than zero".into()));
    }
    let consecutive_5xx = fixtures
        .destination_rule_for(&service, client_namespace)
        .and_then(|rule| rule.outlier_detection())
        .and_then(|o| o.consecutive_5xx_errors);
    Ok(ExpectedOutlierDetection {
        cluster: cluster_name(&service, spec.port),
        service,
        ejected_hosts: spec.ejected_hosts,
        ejection_timeout: spec.ejection_timeout,
        hosts,
        failing_hosts,
        failing_status,
        consecutive_5xx,
    })
}
