//! What the loaders read from the fixtures about echo-basic backends (the Gateway API
//! conformance backend, whose JSON body says what it received and which pod answered):
//! which Deployments run it, the identities of a Service's pods, and which backends a
//! case's requests may reach.

use crate::fixtures::{Fixtures, WorkloadFixture};
use crate::manifest::ObjectKey;
use crate::suite::Entry;

/// The images that answer with echo-basic's JSON: the conformance backend and its
/// superset (the mesh manifests' `echo-advanced`), whatever registry or tag.
const ECHO_BASIC_IMAGES: [&str; 2] = ["echo-basic", "echo-advanced"];

/// Whether a Deployment's pods answer with echo-basic's JSON: its first container runs
/// an echo-basic image (the local target runs those as `meshcheck echo` in its
/// echo-basic mode).
pub(super) fn runs_echo_basic(workload: &WorkloadFixture) -> bool {
    let Some(image) = workload.containers.first().and_then(|c| c.image.as_deref()) else {
        return false;
    };
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    let repository = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let name = repository
        .split_once(':')
        .map_or(repository, |(name, _)| name);
    ECHO_BASIC_IMAGES.contains(&name)
}

/// The identity of each Deployment behind a Service whose pods all run echo-basic:
/// `namespace/deployment`, what `IdentityRule::EchoBasic` reads from their answers.
/// `Ok(None)` when some pod behind it runs something else; an error when the Service is
/// not in the fixtures or selects no Deployment.
pub(super) fn echo_basic_identities(
    fixtures: &Fixtures,
    service: &ObjectKey,
) -> Result<Option<Vec<String>>, String> {
    let workloads = fixtures.pods_of(service).map_err(|err| err.to_string())?;
    if workloads.is_empty() {
        return Err(format!("no Deployment in the fixtures matches {service}"));
    }
    if !workloads.iter().all(|w| runs_echo_basic(w)) {
        return Ok(None);
    }
    Ok(Some(
        workloads
            .iter()
            .map(|w| format!("{}/{}", w.namespace, w.manifest.name))
            .collect(),
    ))
}

/// The Services a case's requests may reach: the backends of every HTTPRoute whose
/// parent is the entry (a Gateway, or a Service for east-west routes), and for an
/// east-west entry the Service itself (what answers when no route applies).
pub(super) fn reachable_services(fixtures: &Fixtures, entry: &Entry) -> Vec<ObjectKey> {
    let (parent_kind, parent) = match entry {
        Entry::Gateway(key) => ("Gateway", key),
        Entry::Service(key) => ("Service", key),
    };
    let parent_namespace = parent.namespace_or_default();
    let mut services = Vec::new();
    if let Entry::Service(key) = entry {
        services.push(key.clone());
    }
    for route in fixtures.routes() {
        let attached = route.parent_refs.iter().any(|p| {
            p.kind == parent_kind && p.name == parent.name && p.namespace == parent_namespace
        });
        if !attached {
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

/// Whether some Service a case reaches has only echo-basic pods behind it: otherwise
/// no response can say what the backend received.
pub(super) fn some_backend_echoes(fixtures: &Fixtures, entry: &Entry) -> bool {
    reachable_services(fixtures, entry)
        .iter()
        .any(|service| matches!(echo_basic_identities(fixtures, service), Ok(Some(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(image: &str) -> WorkloadFixture {
        let text = format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
"
        );
        let manifests = crate::manifest::load_str(&text, std::path::Path::new("web.yaml")).unwrap();
        Fixtures::new(&manifests).unwrap().workloads()[0].clone()
    }

    #[test]
    fn echo_basic_is_recognised_by_image_name() {
        for image in [
            "gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd",
            "echo-basic",
            "registry.local:5000/gateway/echo-advanced@sha256:0123",
        ] {
            assert!(runs_echo_basic(&workload(image)), "{image}");
        }
        for image in [
            "hashicorp/http-echo:1.0",
            "echo-basic-fork:1",
            "curlimages/curl",
        ] {
            assert!(!runs_echo_basic(&workload(image)), "{image}");
        }
    }
}
