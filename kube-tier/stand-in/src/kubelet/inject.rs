//! Sidecar injection as Istio's injector decides and marks it (istio
//! `pkg/kube/inject/inject.go`, `injectRequired` and the injected pod's labels and
//! annotations; `pkg/kube/inject/webhook.go` for the JSON patch response). Which
//! namespaces and pods reach the webhook at all is the API server's work, from the
//! selectors Istio registers ([`super::webhook`]); this decides the rest and mutates.
//!
//! What is injected is a placeholder: the `istio-proxy` container (Istio's proxyv2
//! image, `proxy sidecar`), which the kubelet stand-in reports running without a
//! process. No init container, no volumes, no proxy: east-west traffic through a
//! sidecar is not what this tier can show.

use serde_json::{Map, Value, json};

use super::containers::SIDECAR;

/// Namespaces Istio never injects into, and the pod label (or, deprecated, annotation)
/// that opts a pod in or out: the facts meshcheck's fixtures view reads too.
pub use meshcheck::fixtures::{IGNORED_NAMESPACES, INJECT_LABEL};

/// The annotation an injected pod carries: what was injected.
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";

/// The image of the injected sidecar: Istio's proxy at the release `meshcheck cluster
/// up` installs.
pub fn proxy_image() -> String {
    format!(
        "docker.io/istio/proxyv2:{}",
        meshcheck::cluster::DEFAULT_ISTIO_VERSION
    )
}

/// Whether Istio would inject `pod` (given the webhook was called for it, so the
/// namespace or the pod opted in by the registered selectors).
pub fn injection_required(pod: &Value, namespace: &str) -> bool {
    if pod.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    if IGNORED_NAMESPACES.contains(&namespace) {
        return false;
    }
    let metadata = |field: &str| {
        pod.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (labels, annotations) = (metadata("labels"), metadata("annotations"));
    if annotations.contains_key(STATUS_ANNOTATION) {
        // Already injected (a pod re-created from an injected spec).
        return false;
    }
    let switch = labels
        .get(INJECT_LABEL)
        .or_else(|| annotations.get(INJECT_LABEL))
        .and_then(Value::as_str);
    !meshcheck::fixtures::opts_out(switch)
}

/// The JSON patch (RFC 6902) that injects the sidecar into `pod`: the `istio-proxy`
/// container appended, the labels and annotations Istio's injected pods carry.
pub fn injection_patch(pod: &Value) -> Value {
    let object = |field: &str| -> Map<String, Value> {
        pod.pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut labels = object("labels");
    let mut annotations = object("annotations");
    let label = |labels: &Map<String, Value>, keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.get(*k).and_then(Value::as_str).map(str::to_string))
    };
    // The canonical service and revision, as Istio derives them from the pod's labels
    // (istio pkg/kube/labels/labels.go, `CanonicalService`); the workload name is the pod's
    // generateName without its trailing `-<hash>-`.
    let workload = pod
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .map(|g| {
            let g = g.trim_end_matches('-');
            g.rsplit_once('-').map_or(g, |(d, _)| d).to_string()
        })
        .unwrap_or_default();
    let canonical_name = label(
        &labels,
        &[
            "service.istio.io/canonical-name",
            "app.kubernetes.io/name",
            "app",
        ],
    )
    .unwrap_or(workload);
    let canonical_revision = label(
        &labels,
        &[
            "service.istio.io/canonical-revision",
            "app.kubernetes.io/version",
            "version",
        ],
    )
    .unwrap_or_else(|| "latest".into());
    labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
    labels.insert(
        "service.istio.io/canonical-name".into(),
        json!(canonical_name),
    );
    labels.insert(
        "service.istio.io/canonical-revision".into(),
        json!(canonical_revision),
    );

    let mut containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let first = containers
        .first()
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(first) = first {
        annotations.insert(
            "kubectl.kubernetes.io/default-container".into(),
            json!(first),
        );
        annotations.insert(
            "kubectl.kubernetes.io/default-logs-container".into(),
            json!(first),
        );
    }
    annotations.insert("istio.io/rev".into(), json!("default"));
    annotations.insert(
        STATUS_ANNOTATION.into(),
        json!(
            json!({
                "initContainers": null,
                "containers": [SIDECAR],
                "volumes": null,
                "imagePullSecrets": null,
                "revision": "default",
            })
            .to_string()
        ),
    );
    containers.push(json!({
        "name": SIDECAR,
        "image": proxy_image(),
        "args": ["proxy", "sidecar"],
        "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
    }));
    // `add` on an existing member replaces it, so these work with or without labels.
    json!([
        {"op": "add", "path": "/metadata/labels", "value": labels},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
        {"op": "add", "path": "/spec/containers", "value": containers},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: Value, annotations: Value) -> Value {
        json!({
            "metadata": {"generateName": "backend-v1-7d9c8-", "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "echo", "image": "hashicorp/http-echo"}]},
        })
    }

    #[test]
    fn a_pod_opts_out_with_the_label_or_the_deprecated_annotation() {
        assert!(injection_required(
            &pod(json!({"app": "a"}), json!({})),
            "apps"
        ));
        assert!(!injection_required(
            &pod(json!({INJECT_LABEL: "false"}), json!({})),
            "apps"
        ));
        assert!(!injection_required(
            &pod(json!({}), json!({INJECT_LABEL: "no"})),
            "apps"
        ));
        assert!(!injection_required(
            &pod(json!({}), json!({})),
            "kube-system"
        ));
        assert!(!injection_required(
            &pod(json!({}), json!({STATUS_ANNOTATION: "{}"})),
            "apps"
        ));
    }

    #[test]
    fn the_patch_adds_the_sidecar_and_istios_marks() {
        let patch = injection_patch(&pod(
            json!({"app": "backend", "version": "v1"}),
            json!(null),
        ));
        let labels = &patch[0]["value"];
        assert_eq!(labels["security.istio.io/tlsMode"], "istio");
        assert_eq!(labels["service.istio.io/canonical-name"], "backend");
        assert_eq!(labels["service.istio.io/canonical-revision"], "v1");
        let annotations = &patch[1]["value"];
        let status: Value =
            serde_json::from_str(annotations[STATUS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(status["containers"], json!(["istio-proxy"]));
        assert_eq!(
            annotations["kubectl.kubernetes.io/default-container"],
            "echo"
        );
        let containers = patch[2]["value"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[1]["name"], "istio-proxy");
    }

    #[test]
    fn without_an_app_label_the_canonical_name_is_the_workloads() {
        let patch = injection_patch(&pod(json!({}), json!({})));
        assert_eq!(
            patch[0]["value"]["service.istio.io/canonical-name"],
            "backend-v1"
        );
        assert_eq!(
            patch[0]["value"]["service.istio.io/canonical-revision"],
            "latest"
        );
    }
}
