//! The API server's objects as the fixtures the local target translates: what a suite
//! applied, without what the server and its controllers added (status, managed fields,
//! the defaults of built-in kinds) and without the cluster's own objects.
//!
//! Each object becomes a [`Manifest`] whose "file" names the object
//! (`httproutes/istio-test/backend-route`), written as indented JSON, so a refusal of
//! the local target is located at a line of that object.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use meshcheck::manifest::{Manifest, load_str};

use super::gateway_objects::MANAGED_LABEL;
use super::install::{GATEWAY_CLASS, ISTIO_NAMESPACE};
use super::watch::{self, Snapshot, name_of, namespace_of};

/// Namespaces of the cluster itself, never a suite's.
const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    ISTIO_NAMESPACE,
];

/// Which object a manifest came from, for the status of what the translation refuses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn of(object: &Value) -> ObjectRef {
        ObjectRef {
            kind: object["kind"].as_str().unwrap_or_default().to_owned(),
            namespace: namespace_of(object).to_owned(),
            name: name_of(object).to_owned(),
        }
    }

    /// The pseudo file the manifest is loaded from.
    pub fn path(&self) -> PathBuf {
        let kind = self.kind.to_lowercase();
        if self.namespace.is_empty() {
            PathBuf::from(format!("{kind}s/{}", self.name))
        } else {
            PathBuf::from(format!("{kind}s/{}/{}", self.namespace, self.name))
        }
    }
}

/// The suite objects in the snapshot, in the kinds the local target translates.
pub fn suite_objects(snapshot: &Snapshot) -> Vec<Value> {
    let kinds = [
        watch::NAMESPACES,
        watch::SECRETS,
        watch::DEPLOYMENTS,
        watch::SERVICES,
        watch::DESTINATION_RULES,
        watch::REFERENCE_GRANTS,
        watch::GATEWAYS,
        watch::HTTP_ROUTES,
        watch::GATEWAY_CLASSES,
    ];
    kinds
        .iter()
        .flat_map(|kind| snapshot.of(kind))
        .filter(|o| is_suite_object(o))
        .map(fixture_view)
        .collect()
}

fn is_suite_object(object: &Value) -> bool {
    let kind = object["kind"].as_str().unwrap_or_default();
    let namespace = if kind == "Namespace" {
        name_of(object)
    } else {
        namespace_of(object)
    };
    if SYSTEM_NAMESPACES.contains(&namespace) {
        return false;
    }
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        return false;
    }
    // What the gateway controller made for a Gateway is not the suite's.
    if object
        .pointer(&format!(
            "/metadata/labels/{}",
            MANAGED_LABEL.replace('/', "~1")
        ))
        .is_some()
    {
        return false;
    }
    match kind {
        // The API server's own Service.
        "Service" => !(namespace == "default" && name_of(object) == "kubernetes"),
        // Only Gateways of Istio's class are Istio's to program.
        "Gateway" => {
            object
                .pointer("/spec/gatewayClassName")
                .and_then(Value::as_str)
                == Some(GATEWAY_CLASS)
        }
        // Service account tokens and the like are not a suite's certificates.
        "Secret" => object["type"]
            .as_str()
            .is_none_or(|t| t == "Opaque" || t == "kubernetes.io/tls"),
        _ => true,
    }
}

/// The object as a fixture would have written it: metadata reduced to name, namespace,
/// labels and annotations; no status; for built-in kinds only the fields a fixture sets
/// (the API server fills in defaults such as a Deployment's strategy or a Service's
/// clusterIP, which the local target would refuse as fields it does not translate).
/// Gateway API and Istio kinds keep their spec: their CRD defaults are values the
/// local target reads the same way (`from: Same`, a `PathPrefix /` match, weight 1).
fn fixture_view(object: &Value) -> Value {
    let metadata = &object["metadata"];
    let mut meta = Map::new();
    for key in ["name", "namespace", "labels", "annotations"] {
        if let Some(v) = metadata.get(key) {
            meta.insert(key.into(), v.clone());
        }
    }
    let mut view = json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "metadata": meta,
    });
    match object["kind"].as_str().unwrap_or_default() {
        "Namespace" => {}
        "Secret" => {
            for key in ["type", "data"] {
                if let Some(v) = object.get(key) {
                    view[key] = v.clone();
                }
            }
        }
        "Deployment" => view["spec"] = deployment_spec(&object["spec"]),
        "Service" => view["spec"] = service_spec(&object["spec"]),
        _ => {
            if let Some(spec) = object.get("spec") {
                view["spec"] = spec.clone();
            }
        }
    }
    view
}

fn pick(from: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for key in keys {
        if let Some(v) = from.get(*key).filter(|v| !v.is_null()) {
            out.insert((*key).into(), v.clone());
        }
    }
    Value::Object(out)
}

fn deployment_spec(spec: &Value) -> Value {
    let template = &spec["template"];
    let containers: Vec<Value> = template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let mut container = pick(
                c,
                &[
                    "name",
                    "image",
                    "imagePullPolicy",
                    "args",
                    "env",
                    "volumeMounts",
                ],
            );
            if let Some(resources) = c
                .get("resources")
                .filter(|r| r.as_object().is_some_and(|m| !m.is_empty()))
            {
                container["resources"] = resources.clone();
            }
            if let Some(ports) = c.get("ports").and_then(Value::as_array) {
                container["ports"] = ports
                    .iter()
                    .map(|p| pick(p, &["containerPort", "name", "protocol"]))
                    .collect();
            }
            container
        })
        .collect();
    let mut pod_spec = json!({"containers": containers});
    if let Some(volumes) = template.pointer("/spec/volumes") {
        pod_spec["volumes"] = volumes.clone();
    }
    json!({
        "replicas": spec["replicas"],
        "selector": {"matchLabels": spec.pointer("/selector/matchLabels").cloned().unwrap_or(json!({}))},
        "template": {
            "metadata": pick(&template["metadata"], &["labels", "annotations"]),
            "spec": pod_spec,
        },
    })
}

fn service_spec(spec: &Value) -> Value {
    let mut out = pick(spec, &["type", "selector"]);
    if let Some(ports) = spec.get("ports").and_then(Value::as_array) {
        out["ports"] = ports
            .iter()
            .map(|p| {
                pick(
                    p,
                    &["name", "port", "targetPort", "protocol", "appProtocol"],
                )
            })
            .collect();
    }
    out
}

/// One object as a manifest loaded from its pseudo file.
pub fn manifest(object: &Value) -> Result<Manifest, meshcheck::manifest::ManifestError> {
    let reference = ObjectRef::of(object);
    let text = serde_json::to_string_pretty(object).unwrap_or_default();
    let mut loaded = load_str(&text, Path::new(&reference.path()))?;
    loaded.pop().ok_or_else(|| {
        // load_str yields one manifest per document; an object is one document.
        meshcheck::manifest::ManifestError::Invalid {
            location: meshcheck::manifest::SourceLocation::file_start(&reference.path()),
            message: "the object serialized to no YAML document".into(),
        }
    })
}
