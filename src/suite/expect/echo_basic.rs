//! What the loaders read from the fixtures about the backends that echo requests (the
//! Gateway API conformance images: echo-basic, whose JSON body says what it received
//! and which pod answered, and the mesh tests' echo-advanced, which says the same in
//! Istio echo's text): the identities of a Service's pods, and which backends a case's
//! requests may reach.

use crate::fixtures::{EchoImage, Fixtures, WorkloadFixture};
use crate::manifest::ObjectKey;
use crate::suite::Entry;

/// What a Deployment's pods answer a request with, when it is an echo of the request:
/// the identity `IdentityRule::EchoBasic` reads from such an answer. echo-basic's JSON
/// names the namespace and the pod, so `namespace/deployment`; echo-advanced's text
/// (Istio's echo server) names only the pod, so `deployment`. `None` for other images.
pub(super) fn echo_identity(workload: &WorkloadFixture) -> Option<String> {
    match workload.image() {
        EchoImage::EchoBasic => Some(format!("{}/{}", workload.namespace, workload.manifest.name)),
        EchoImage::EchoAdvanced => Some(workload.manifest.name.clone()),
        EchoImage::HttpEcho | EchoImage::Other => None,
    }
}

/// The identity of each Deployment behind a Service whose pods all echo requests
/// (echo-basic or echo-advanced, see [`echo_identity`]). `Ok(None)` when some pod
/// behind it runs something else; an error when the Service is not in the fixtures or
/// selects no Deployment.
pub(super) fn echo_basic_identities(
    fixtures: &Fixtures,
    service: &ObjectKey,
) -> Result<Option<Vec<String>>, String> {
    let workloads = fixtures.pods_of(service).map_err(|err| err.to_string())?;
    if workloads.is_empty() {
        return Err(format!("no Deployment in the fixtures matches {service}"));
    }
    Ok(workloads.iter().map(|w| echo_identity(w)).collect())
}

/// The Services a case's requests may reach: the backends of every HTTPRoute whose
/// parent is the entry (a Gateway, or a Service for east-west routes, whose consumer
/// routes apply only to callers in their own namespace), and for an east-west entry
/// the Service itself (what answers when no route applies).
pub(super) fn reachable_services(fixtures: &Fixtures, entry: &Entry) -> Vec<ObjectKey> {
    let (parent_kind, parent, caller) = match entry {
        Entry::Gateway(key) => ("Gateway", key, None),
        Entry::Service { service, from } => ("Service", service, Some(from.as_str())),
        // A call to a pod reaches that pod, whichever Services select it.
        Entry::Pod { deployment, .. } => {
            return fixtures
                .services()
                .iter()
                .filter(|service| {
                    fixtures
                        .workloads_selected_by(service)
                        .any(|(_, w)| w.key() == *deployment)
                })
                .map(|service| service.key())
                .collect();
        }
    };
    let parent_namespace = parent.namespace_or_default();
    let mut services = Vec::new();
    if caller.is_some() {
        services.push(parent.clone());
    }
    for route in fixtures.routes() {
        let attached = route.parent_refs.iter().any(|p| {
            p.kind == parent_kind && p.name == parent.name && p.namespace == parent_namespace
        });
        let applies = caller
            .is_none_or(|caller| route.namespace == parent_namespace || route.namespace == caller);
        if !attached || !applies {
            continue;
        }
        for rule in &route.rules {
            for backend in rule.backend_refs.iter().filter(|b| b.is_service()) {
                let key = ObjectKey {
                    kind: "Service".into(),
                    namespace: Some(
                        backend
                            .namespace
                            .clone()
                            .unwrap_or_else(|| route.namespace.clone()),
                    ),
                    name: backend.name.clone(),
                };
                if !services.contains(&key) {
                    services.push(key);
                }
            }
        }
    }
    services
}

/// Whether some Service a case reaches has only echoing pods behind it: otherwise no
/// response can say what the backend received.
pub(super) fn some_backend_echoes(fixtures: &Fixtures, entry: &Entry) -> bool {
    reachable_services(fixtures, entry)
        .iter()
        .any(|service| matches!(echo_basic_identities(fixtures, service), Ok(Some(_))))
}
