//! What Istio's deployment controller makes for each Gateway of class `istio`
//! (istio/istio `pilot/pkg/config/kube/gateway/deploymentcontroller.go`, rendering
//! `manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml`): a
//! `<name>-istio` Deployment of the `proxyv2` image and a LoadBalancer Service of the
//! same name, labelled with the Gateway's name, owned by the Gateway (so the garbage
//! collector removes them with it), server-side applied by the controller.
//!
//! Each carries the Gateway's infrastructure labels and annotations as Istio's
//! templates put them (`meshcheck::fixtures::deployed_metadata`), so the
//! GatewayInfrastructure conformance case reads them here as on a cluster.
//!
//! The load balancer this tier has is the loopback: each Gateway gets an address
//! 127.20.0.n from the shared pool, published on the Service's `status.loadBalancer`
//! as a cloud controller would.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use kube::api::{Api, DynamicObject, Patch, PatchParams};

use meshcheck::cluster::DEFAULT_ISTIO_VERSION;

use super::install::{deployment_resource, resource};
use super::watch::{name_of, namespace_of};

/// Istio's field manager and managed-by label value for what it deploys
/// (`constants.ManagedGatewayControllerLabel`, `istio.io-gateway-controller`).
pub const FIELD_MANAGER: &str = "istio.io-gateway-controller";
pub const MANAGED_LABEL: &str = "gateway.istio.io/managed";
/// The label Gateway API implementations put on what they make for a Gateway.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// The status port every Istio gateway Service carries first.
const STATUS_PORT: u16 = 15021;

/// `<gateway>-istio`, as the deployment controller names it.
pub fn object_name(gateway: &str) -> String {
    format!("{gateway}-istio")
}

/// The infrastructure labels and annotations of `gateway`, as Istio reads them.
fn infrastructure(gateway: &Value) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let map = |pointer: &str| -> Option<BTreeMap<String, String>> {
        gateway
            .pointer(pointer)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    };
    let (given_labels, given_annotations) = (
        map("/spec/infrastructure/labels"),
        map("/spec/infrastructure/annotations"),
    );
    let (own_labels, own_annotations) = (
        map("/metadata/labels").unwrap_or_default(),
        map("/metadata/annotations").unwrap_or_default(),
    );
    meshcheck::fixtures::deployed_metadata(
        given_labels.as_ref(),
        given_annotations.as_ref(),
        &own_labels,
        &own_annotations,
    )
}

/// `extra` over `base`, as the templates' `toJsonMap` merges them (later wins).
fn merged(base: &BTreeMap<String, String>, extra: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in base {
        out.insert(k.clone(), json!(v));
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

/// The Deployment for `gateway`.
pub fn deployment(gateway: &Value) -> Value {
    let name = name_of(gateway);
    let selector = json!({GATEWAY_NAME_LABEL: name});
    let (labels, annotations) = infrastructure(gateway);
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": metadata(gateway),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": merged(&labels, &json!({
                        GATEWAY_NAME_LABEL: name,
                        "istio.io/gateway-name": name,
                        "service.istio.io/canonical-name": object_name(name),
                        "sidecar.istio.io/inject": "false",
                    })),
                    "annotations": merged(&annotations, &json!({"inject.istio.io/templates": "gateway"})),
                },
                "spec": {"containers": [{
                    "name": "istio-proxy",
                    "image": format!("docker.io/istio/proxyv2:{DEFAULT_ISTIO_VERSION}"),
                    "args": ["proxy", "router", "--domain", format!("{}.svc.cluster.local", namespace_of(gateway))],
                    "ports": [
                        {"containerPort": STATUS_PORT, "name": "status-port", "protocol": "TCP"},
                        {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"},
                    ],
                }]},
            },
        },
    })
}

/// The LoadBalancer Service for `gateway`: the status port, then one port per distinct
/// listener port named `<protocol>-<port>` (deploymentcontroller.go `extractServicePorts`).
pub fn service(gateway: &Value) -> Value {
    let mut ports = vec![
        json!({"name": "status-port", "port": STATUS_PORT, "protocol": "TCP", "appProtocol": "tcp"}),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for listener in gateway
        .pointer("/spec/listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(port) = listener["port"].as_u64() else {
            continue;
        };
        if !seen.insert(port) {
            continue;
        }
        let protocol = listener["protocol"]
            .as_str()
            .unwrap_or("TCP")
            .to_lowercase();
        ports.push(json!({"name": format!("{protocol}-{port}"), "port": port, "protocol": "TCP"}));
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(gateway),
        "spec": {
            "type": "LoadBalancer",
            "selector": {GATEWAY_NAME_LABEL: name_of(gateway)},
            "ports": ports,
        },
    })
}

fn metadata(gateway: &Value) -> Value {
    let name = name_of(gateway);
    let (labels, annotations) = infrastructure(gateway);
    json!({
        "name": object_name(name),
        "namespace": namespace_of(gateway),
        "labels": merged(&labels, &json!({
            GATEWAY_NAME_LABEL: name,
            "istio.io/gateway-name": name,
            MANAGED_LABEL: FIELD_MANAGER,
        })),
        "annotations": Value::Object(annotations.into_iter().map(|(k, v)| (k, json!(v))).collect()),
        "ownerReferences": [{
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "name": name,
            "uid": gateway.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        }],
    })
}

/// Server-side applies the Deployment and Service of `gateway` (a no-op on the server
/// when nothing changed).
pub async fn apply(client: &kube::Client, gateway: &Value) -> Result<(), kube::Error> {
    let namespace = namespace_of(gateway);
    let name = object_name(name_of(gateway));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let deployments: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &deployment_resource());
    deployments
        .patch(&name, &params, &Patch::Apply(deployment(gateway)))
        .await?;
    let services: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("", "v1", "Service", "services"),
    );
    services
        .patch(&name, &params, &Patch::Apply(service(gateway)))
        .await?;
    Ok(())
}

/// Publishes `ingress` (`{"ip": ..}` or `{"hostname": ..}`) as the Service's load
/// balancer, when it is not already.
pub async fn publish_load_balancer(
    client: &kube::Client,
    service: Option<&Value>,
    namespace: &str,
    name: &str,
    ingress: Value,
) -> Result<(), kube::Error> {
    let current = service.and_then(|s| s.pointer("/status/loadBalancer/ingress"));
    if current == Some(&json!([ingress.clone()])) {
        return Ok(());
    }
    let services: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("", "v1", "Service", "services"),
    );
    services
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [ingress]}}})),
        )
        .await?;
    Ok(())
}
