//! What `meshcheck cluster up` (istioctl and the Gateway API bundle) would have
//! installed, installed at start-up: the CRDs, `istio-system`, an `istiod` Deployment
//! (what the kube target's preflight and version report read) and the GatewayClass
//! `istio` (Istio creates it itself: istio/istio `pilot/pkg/config/kube/gateway/gatewayclass.go`).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

use meshcheck::cluster::DEFAULT_ISTIO_VERSION;
use meshcheck::manifest::{Manifest, load_str};

use super::error::IstiodError;
use super::status;

/// The field manager of what `istioctl install` would apply.
const INSTALLER: &str = "istioctl";
/// Istio's gateway controller name (istio/istio `pilot/pkg/features/pilot.go`,
/// `ManagedGatewayController`'s class: `istio.io/gateway-controller`).
pub const CONTROLLER_NAME: &str = "istio.io/gateway-controller";
pub const GATEWAY_CLASS: &str = "istio";
pub const ISTIO_NAMESPACE: &str = "istio-system";
/// How long a freshly applied CRD may take to be served.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

const GATEWAY_API_CRDS: &str =
    include_str!("../../../../crds/gateway-api-v1.3.0-standard-install.yaml");
const ISTIO_CRDS: &str = include_str!("../../../../crds/istio-crd-all.gen.yaml");

/// Installs everything, waiting for the CRDs to be Established so the watches that
/// follow find their kinds.
pub async fn install(client: &kube::Client) -> Result<(), IstiodError> {
    let mut crds = bundled(
        "the Gateway API v1.3.0 CRDs",
        GATEWAY_API_CRDS,
        "crds/gateway-api-v1.3.0-standard-install.yaml",
    )?;
    crds.extend(bundled(
        "Istio's CRDs",
        ISTIO_CRDS,
        "crds/istio-crd-all.gen.yaml",
    )?);
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply(INSTALLER).force();
    for crd in crds
        .iter()
        .filter(|m| m.to_json()["kind"] == "CustomResourceDefinition")
    {
        crd_api
            .patch(&crd.key().name, &apply, &Patch::Apply(crd.to_json()))
            .await
            .map_err(|source| IstiodError::Install {
                what: format!("CRD {}", crd.key().name),
                source: Box::new(source),
            })?;
    }
    for crd in crds
        .iter()
        .filter(|m| m.to_json()["kind"] == "CustomResourceDefinition")
    {
        let name = crd.key().name;
        let established = await_condition(crd_api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISHED_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => {
                return Err(IstiodError::CrdNotEstablished {
                    name,
                    timeout: ESTABLISHED_TIMEOUT,
                });
            }
        }
    }

    apply_object(
        client,
        &namespace_resource(),
        None,
        ISTIO_NAMESPACE,
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ISTIO_NAMESPACE},
        }),
    )
    .await?;
    apply_object(
        client,
        &deployment_resource(),
        Some(ISTIO_NAMESPACE),
        "istiod",
        istiod_deployment(),
    )
    .await?;
    let class = apply_object(
        client,
        &gateway_class_resource(),
        None,
        GATEWAY_CLASS,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {
                "controllerName": CONTROLLER_NAME,
                "description": "The default Istio GatewayClass",
            },
        }),
    )
    .await?;
    accept_gateway_class(client, &class).await
}

/// `istiod` as istioctl deploys it (istio/istio `manifests/charts/istio-control/istio-discovery/templates/deployment.yaml`):
/// the `discovery` container runs `pilot` at the release's tag, which is what the kube
/// target reads as the Istio version. The kubelet stand-in runs no process for it: the
/// stand-in itself is istiod.
fn istiod_deployment() -> Value {
    let labels = json!({"app": "istiod", "istio": "pilot", "istio.io/rev": "default"});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "istiod", "namespace": ISTIO_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "istiod", "istio": "pilot"}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {"containers": [{
                    "name": "discovery",
                    "image": format!("docker.io/istio/pilot:{DEFAULT_ISTIO_VERSION}"),
                    "args": ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info"],
                    "ports": [
                        {"containerPort": 8080, "protocol": "TCP"},
                        {"containerPort": 15010, "protocol": "TCP"},
                        {"containerPort": 15017, "protocol": "TCP"},
                    ],
                }]},
            },
        },
    })
}

/// The GatewayClass `istio` Accepted at its generation, as Istio's gatewayclass
/// controller reports it (istio/istio `pilot/pkg/config/kube/gateway/conditions.go`,
/// reason `Accepted`, message "Handled by Istio controller").
async fn accept_gateway_class(client: &kube::Client, class: &Value) -> Result<(), IstiodError> {
    let generation = class
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let wanted = status::conditions(
        class.pointer("/status/conditions"),
        &[status::Condition::new(
            "Accepted",
            true,
            "Accepted",
            "Handled by Istio controller",
        )],
        generation,
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &gateway_class_resource());
    api.patch_status(
        GATEWAY_CLASS,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": wanted}})),
    )
    .await
    .map_err(|source| IstiodError::Install {
        what: "the GatewayClass istio's status".into(),
        source: Box::new(source),
    })?;
    Ok(())
}

fn bundled(what: &'static str, text: &str, path: &str) -> Result<Vec<Manifest>, IstiodError> {
    load_str(text, Path::new(path)).map_err(|source| IstiodError::BundledManifests {
        what,
        source: Box::new(source),
    })
}

/// Server-side applies one object as the installer; returns it as the server has it.
async fn apply_object(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    object: Value,
) -> Result<Value, IstiodError> {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let applied = api
        .patch(
            name,
            &PatchParams::apply(INSTALLER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(|source| IstiodError::Install {
            what: format!("{} {name}", resource.kind),
            source: Box::new(source),
        })?;
    Ok(serde_json::to_value(applied).unwrap_or_default())
}

pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn namespace_resource() -> ApiResource {
    resource("", "v1", "Namespace", "namespaces")
}

pub fn deployment_resource() -> ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

pub fn gateway_class_resource() -> ApiResource {
    resource(
        "gateway.networking.k8s.io",
        "v1",
        "GatewayClass",
        "gatewayclasses",
    )
}
