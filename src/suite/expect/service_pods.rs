//! What the policy probes read about a Service from the fixtures: the pods behind a
//! port, and Istio's Envoy cluster for it.

use crate::echo::EchoArgs;
use crate::fixtures::{Fixtures, istio};
use crate::manifest::ObjectKey;

/// Istio's cluster for a Service port the suite names.
pub(super) fn cluster_name(service: &ObjectKey, port: u16) -> String {
    istio::cluster_name(service.namespace_or_default(), &service.name, port)
}

/// One Deployment behind a Service port, as a policy check needs it.
pub(super) struct Pods {
    pub(super) replicas: u32,
    pub(super) echo: EchoArgs,
}

/// The pods behind a Service port the suite names, per Deployment; there must be at
/// least one, each with valid http-echo arguments.
pub(super) fn pods_behind(
    fixtures: &Fixtures,
    service: &ObjectKey,
    port: u16,
) -> Result<Vec<Pods>, String> {
    let backend = fixtures
        .backend(service, port)
        .map_err(|err| err.to_string())?;
    let mut pods = Vec::new();
    for workload in backend.workloads {
        let echo = workload.echo_args().map_err(|err| {
            format!(
                "Deployment {} behind {service} has no valid http-echo arguments: {err}",
                workload.key()
            )
        })?;
        pods.push(Pods {
            replicas: workload.replicas().map_err(|err| err.to_string())?,
            echo,
        });
    }
    if pods.iter().map(|p| p.replicas).sum::<u32>() == 0 {
        return Err(format!(
            "no Deployment replica in the fixtures is behind {service}"
        ));
    }
    Ok(pods)
}
