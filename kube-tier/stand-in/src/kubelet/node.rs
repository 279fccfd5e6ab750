//! The stand-in's Node: registered as the kubelet registers itself
//! (`pkg/kubelet/kubelet_node_status.go`, `registerWithAPIServer`), Ready, with the
//! loopback address, so the EndpointSlice controller finds the node of every pod.

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::KubeletError;
use super::pod_status::{HOST_IP, now};

/// The field manager of everything the kubelet stand-in writes.
pub const MANAGER: &str = "kube-tier-kubelet";

/// Creates or updates the Node `name`, then its status: Ready, address 127.0.0.1, its
/// kubelet (the logs) on `kubelet_port`.
pub async fn register(
    client: &kube::Client,
    name: &str,
    kubelet_port: u16,
) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kube-tier.meshcheck.dev/stand-in": "true",
            },
        },
    });
    let api_error = |what: &str, source| KubeletError::Api {
        what: format!("{what} Node {name}"),
        source,
    };
    nodes
        .patch(name, &params, &Patch::Apply(node))
        .await
        .map_err(|e| api_error("register", e))?;
    let now = now();
    let status = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "the kube tier's kubelet stand-in is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }],
            // The control plane reaches the kubelet at its InternalIP, as kubeadm
            // sets it up (`--kubelet-preferred-address-types=InternalIP,...`,
            // kube-tier/controlplane_test.go): the node name does not resolve here.
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "1000"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "1000"},
            "nodeInfo": {
                "kubeletVersion": "kube-tier-stand-in",
                "containerRuntimeVersion": "meshcheck://none",
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH,
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "", "kubeProxyVersion": "",
            },
        },
    });
    nodes
        .patch_status(name, &params, &Patch::Apply(status))
        .await
        .map_err(|e| api_error("report the status of", e))?;
    Ok(())
}
