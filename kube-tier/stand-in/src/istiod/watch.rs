//! List/watch of every kind the controller reads, into reflector stores, and one
//! notification for any change: the controller is level-triggered (it reads all the
//! stores each time), so it never has to know which object changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::install::resource;

/// The kinds the controller reads, by the name [`Snapshot::of`] takes.
pub const GATEWAYS: &str = "Gateway";
pub const HTTP_ROUTES: &str = "HTTPRoute";
pub const SERVICES: &str = "Service";
pub const DEPLOYMENTS: &str = "Deployment";
pub const PODS: &str = "Pod";
pub const DESTINATION_RULES: &str = "DestinationRule";
pub const REFERENCE_GRANTS: &str = "ReferenceGrant";
pub const SECRETS: &str = "Secret";
pub const NAMESPACES: &str = "Namespace";
pub const GATEWAY_CLASSES: &str = "GatewayClass";

fn watched() -> Vec<ApiResource> {
    vec![
        resource("gateway.networking.k8s.io", "v1", GATEWAYS, "gateways"),
        resource("gateway.networking.k8s.io", "v1", HTTP_ROUTES, "httproutes"),
        resource(
            "gateway.networking.k8s.io",
            "v1",
            GATEWAY_CLASSES,
            "gatewayclasses",
        ),
        resource(
            "gateway.networking.k8s.io",
            "v1beta1",
            REFERENCE_GRANTS,
            "referencegrants",
        ),
        resource(
            "networking.istio.io",
            "v1",
            DESTINATION_RULES,
            "destinationrules",
        ),
        resource("", "v1", SERVICES, "services"),
        resource("apps", "v1", DEPLOYMENTS, "deployments"),
        resource("", "v1", PODS, "pods"),
        resource("", "v1", SECRETS, "secrets"),
        resource("", "v1", NAMESPACES, "namespaces"),
    ]
}

/// The running watches.
pub struct Watches {
    stores: Vec<(ApiResource, Store<DynamicObject>)>,
    changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watches {
    pub fn start(client: &kube::Client) -> Watches {
        let changed = Arc::new(Notify::new());
        let mut stores = Vec::new();
        let mut tasks = Vec::new();
        for resource in watched() {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let writer = reflector::store::Writer::new(resource.clone());
            stores.push((resource.clone(), writer.as_reader()));
            let changed = changed.clone();
            let kind = resource.kind.clone();
            tasks.push(tokio::spawn(async move {
                let stream = watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect(writer);
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(err) = event {
                        // The watcher retries with backoff; the store keeps the last
                        // state meanwhile.
                        eprintln!("istiod stand-in: watch of {kind}s: {err}");
                    }
                    changed.notify_one();
                }
            }));
        }
        Watches {
            stores,
            changed,
            tasks,
        }
    }

    /// Returns once every store has had its initial list.
    pub async fn synced(&self) {
        for (_, store) in &self.stores {
            // Err only when the writer is gone, which is only at stop.
            let _ = store.wait_until_ready().await;
        }
    }

    /// Returns at the next change after the last call (one stored permit, so a change
    /// during a reconcile is not lost).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Every object, as JSON with its `apiVersion` and `kind` (list items come without).
    pub fn snapshot(&self) -> Snapshot {
        let mut objects = BTreeMap::new();
        for (resource, store) in &self.stores {
            let items = store
                .state()
                .iter()
                .map(|o| {
                    let mut value = serde_json::to_value(o.as_ref()).unwrap_or_default();
                    value["apiVersion"] = Value::String(resource.api_version.clone());
                    value["kind"] = Value::String(resource.kind.clone());
                    value
                })
                .collect();
            objects.insert(resource.kind.clone(), items);
        }
        Snapshot { objects }
    }

    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The objects at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    objects: BTreeMap<String, Vec<Value>>,
}

impl Snapshot {
    /// A snapshot of `objects`, by their `kind`: for the IO-free tests.
    #[cfg(test)]
    pub fn from_objects(objects: Vec<Value>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for object in objects {
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            snapshot.objects.entry(kind).or_default().push(object);
        }
        snapshot
    }

    pub fn of(&self, kind: &str) -> &[Value] {
        self.objects
            .get(kind)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// `metadata.namespace` / `metadata.name` of an object.
pub fn namespace_of(object: &Value) -> &str {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn generation_of(object: &Value) -> i64 {
    object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations")?.get(key)?.as_str()
}
