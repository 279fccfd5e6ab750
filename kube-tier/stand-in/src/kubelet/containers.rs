//! What the stand-in does with each container of a pod: run it as `meshcheck echo`
//! (the echo images the local target knows, planned by the local target's own
//! translation), report it running without a process (what the stand-ins themselves
//! stand for: Istio's images and the injected `istio-proxy` sidecar), or refuse it.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
use meshcheck::fixtures::EchoImage;
use meshcheck::manifest::load_str;
use meshcheck::targets::local::{Workload, pod_workload};
use serde_json::json;

/// Where the kubelet mounts a pod's service-account token (the ServiceAccount
/// admission plugin adds the volume and its mounts to every pod): nothing reads it
/// here, so it does not count against the local target's "no volumes".
const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The name of Istio's injected sidecar container.
pub const SIDECAR: &str = "istio-proxy";

/// One container's fate.
#[derive(Clone, Debug)]
pub enum ContainerPlan {
    /// `meshcheck echo` with these arguments (without `-listen`), on this port, with
    /// this environment.
    Echo {
        args: Vec<String>,
        port: u16,
        env: BTreeMap<String, String>,
    },
    /// Reported running, without a process: the stand-ins are what it would be.
    StoodIn { why: &'static str },
    /// Never runs; the pod stays not Ready with this in the container's waiting state.
    CannotRun { message: String },
}

/// The plan for container `container` of `pod`.
pub fn plan(pod: &Pod, container: &Container) -> ContainerPlan {
    let image = container.image.as_deref().unwrap_or_default();
    if container.name == SIDECAR {
        return ContainerPlan::StoodIn {
            why: "the istio-proxy sidecar: a placeholder, no proxy process runs in it",
        };
    }
    if is_istio_image(image) {
        return ContainerPlan::StoodIn {
            why: "an Istio image (pilot, proxyv2): the istiod stand-in does its work",
        };
    }
    if EchoImage::of(image) == EchoImage::Other {
        return ContainerPlan::CannotRun {
            message: format!(
                "the kube tier's kubelet stand-in has no container runtime: it runs only hashicorp/http-echo, echo-basic and echo-advanced (as meshcheck echo), not `{image}`"
            ),
        };
    }
    match echo_workload(pod, container) {
        Ok(workload) => {
            let env = workload
                .pods
                .first()
                .map(|p| p.env.clone())
                .unwrap_or_default();
            ContainerPlan::Echo {
                args: workload.echo_args,
                port: workload.pod_port,
                env,
            }
        }
        Err(message) => ContainerPlan::CannotRun {
            message: format!(
                "the kube tier's kubelet stand-in cannot run this container as meshcheck echo: {message}"
            ),
        },
    }
}

/// Istio's control plane and proxy images, with any registry and tag
/// (`docker.io/istio/proxyv2:1.28.0`, `gcr.io/istio-release/pilot`).
fn is_istio_image(image: &str) -> bool {
    let repository = image.split(['@', ':']).next().unwrap_or(image);
    let last = repository.rsplit('/').next().unwrap_or(repository);
    matches!(last, "pilot" | "proxyv2")
}

/// The local target's plan for this one container, as a Deployment of one replica
/// whose template is the pod (less its service-account token, which the kubelet would
/// mount and nothing here reads).
fn echo_workload(pod: &Pod, container: &Container) -> Result<Workload, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let spec = pod.spec.clone().unwrap_or_default();
    let mut container = container.clone();
    let token_volumes: Vec<String> = container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.mount_path == SERVICE_ACCOUNT_MOUNT)
        .map(|m| m.name.clone())
        .collect();
    if let Some(mounts) = container.volume_mounts.as_mut() {
        mounts.retain(|m| !token_volumes.contains(&m.name));
    }
    let volumes: Vec<_> = spec
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !token_volumes.contains(&v.name))
        .collect();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "volumes": volumes},
            },
        },
    });
    let text = serde_json::to_string(&deployment).map_err(|e| e.to_string())?;
    let file = format!("pod {namespace}/{name}");
    let manifests = load_str(&text, Path::new(&file)).map_err(|e| e.to_string())?;
    let [manifest] = manifests.as_slice() else {
        return Err("the pod did not make one Deployment".into());
    };
    pod_workload(manifest, &name).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> (Pod, Vec<Container>) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-abc-12345", "namespace": "infra", "labels": {"app": "web"}},
            "spec": {
                "containers": containers,
                "volumes": [{"name": "kube-api-access-x", "projected": {"sources": []}}],
            },
        }))
        .unwrap();
        let containers = pod.spec.clone().unwrap().containers;
        (pod, containers)
    }

    #[test]
    fn echo_images_run_with_their_port_and_environment_istio_images_are_stood_in() {
        let (pod, containers) = pod(json!([
            {"name": "echo", "image": "gcr.io/k8s-staging-gateway-api/echo-basic:v1",
             "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
             "volumeMounts": [{"name": "kube-api-access-x", "mountPath": SERVICE_ACCOUNT_MOUNT}]},
            {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.0"},
            {"name": "nginx", "image": "nginx:1.27"},
        ]));
        match plan(&pod, &containers[0]) {
            ContainerPlan::Echo { args, port, env } => {
                assert_eq!(args, ["-echo-basic"]);
                assert_eq!(port, 3000);
                assert_eq!(
                    env.get("POD_NAME").map(String::as_str),
                    Some("web-abc-12345")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&pod, &containers[1]),
            ContainerPlan::StoodIn { .. }
        ));
        match plan(&pod, &containers[2]) {
            ContainerPlan::CannotRun { message } => {
                assert!(message.contains("not `nginx:1.27`"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_local_target_refuses_is_refused_with_its_reason() {
        let (pod, containers) = pod(json!([
            {"name": "echo", "image": "hashicorp/http-echo", "args": ["-nope"]},
        ]));
        match plan(&pod, &containers[0]) {
            ContainerPlan::CannotRun { message } => {
                assert!(message.contains("unknown flag `-nope`"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn istio_images_by_repository() {
        assert!(is_istio_image("docker.io/istio/proxyv2:1.28.0"));
        assert!(is_istio_image("gcr.io/istio-release/pilot@sha256:ab"));
        assert!(!is_istio_image("docker.io/istio/proxyv2-fork:1"));
    }
}
