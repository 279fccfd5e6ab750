//! The cluster's objects through the local target's translation: [`plan`] refusing
//! what it cannot honour object by object (a refused object is left out and the rest
//! translated again, so one suite's unsupported field does not take every Gateway
//! down), the endpoints from the Ready pods, and the Envoy listeners bound to each
//! Gateway's own address and listener port.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use meshcheck::manifest::{Manifest, ManifestError, ObjectKey};
use meshcheck::targets::local::{Plan, bootstrap, listener_name, plan};

use super::manifests::{ObjectRef, manifest};
use super::watch::{PODS, Snapshot, namespace_of};

/// An object the local target refused, with its located reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub object: ObjectRef,
    pub reason: String,
}

/// What the translation made of the cluster.
#[derive(Debug)]
pub struct Translation {
    /// `None` only when a refusal could not be pinned to an object (then nothing is
    /// programmed and every Gateway says why).
    pub plan: Option<Plan>,
    pub refused: Vec<Refusal>,
    /// Why nothing could be planned, when `plan` is `None`.
    pub unplaceable: Option<String>,
}

/// Plans `objects` (fixture views), leaving out each object the local target refuses.
pub fn translate(objects: &[Value]) -> Translation {
    let mut refused = Vec::new();
    let mut manifests: Vec<(ObjectRef, Manifest)> = Vec::new();
    for object in objects {
        let reference = ObjectRef::of(object);
        match manifest(object) {
            Ok(m) => manifests.push((reference, m)),
            Err(err) => refused.push(Refusal {
                object: reference,
                reason: err.to_string(),
            }),
        }
    }
    loop {
        let current: Vec<Manifest> = manifests.iter().map(|(_, m)| m.clone()).collect();
        match plan(&current) {
            Ok(plan) => {
                return Translation {
                    plan: Some(plan),
                    refused,
                    unplaceable: None,
                };
            }
            Err(err) => match culprit(&err, &manifests) {
                Some(index) => {
                    let (object, _) = manifests.remove(index);
                    refused.push(Refusal {
                        object,
                        reason: err.to_string(),
                    });
                }
                None => {
                    return Translation {
                        plan: None,
                        refused,
                        unplaceable: Some(err.to_string()),
                    };
                }
            },
        }
    }
}

/// The manifest a refusal is located in.
fn culprit(err: &ManifestError, manifests: &[(ObjectRef, Manifest)]) -> Option<usize> {
    let location = err.location()?;
    manifests
        .iter()
        .position(|(reference, _)| *location.file == *reference.path())
}

/// For each of the plan's workloads, the `podIP:port` of its Ready pods: the pods in
/// its namespace carrying its pod template's labels (what its ReplicaSets select), on
/// the port the image listens on.
pub fn endpoints(plan: &Plan, snapshot: &Snapshot) -> Vec<Vec<SocketAddr>> {
    plan.workloads
        .iter()
        .map(|workload| {
            let mut addresses: Vec<SocketAddr> = snapshot
                .of(PODS)
                .iter()
                .filter(|pod| namespace_of(pod) == workload.namespace)
                .filter(|pod| {
                    workload.labels.iter().all(|(k, v)| {
                        pod.pointer("/metadata/labels")
                            .and_then(|l| l.get(k))
                            .and_then(Value::as_str)
                            == Some(v.as_str())
                    })
                })
                .filter(|pod| pod.pointer("/metadata/deletionTimestamp").is_none())
                .filter(|pod| is_ready(pod))
                .filter_map(|pod| {
                    pod.pointer("/status/podIP")?
                        .as_str()?
                        .parse::<IpAddr>()
                        .ok()
                })
                .map(|ip| SocketAddr::new(ip, workload.pod_port))
                .collect();
            addresses.sort();
            addresses
        })
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The Envoy resources for the plan: its clusters, and its gateway listeners bound to
/// `addresses[gateway]` and the listener port (the local target binds 127.0.0.1 with a
/// kernel-chosen port instead). A gateway without an address gets no listener.
pub struct Resources {
    pub listeners: Vec<Value>,
    pub clusters: Vec<Value>,
    /// The listener names of each gateway, to tell when it is programmed.
    pub gateway_listeners: BTreeMap<ObjectKey, Vec<String>>,
}

pub fn resources(
    plan: &Plan,
    pods: &[Vec<SocketAddr>],
    addresses: &BTreeMap<ObjectKey, IpAddr>,
) -> Resources {
    let config = bootstrap(plan, pods);
    let mut by_name: BTreeMap<String, (IpAddr, u16)> = BTreeMap::new();
    let mut gateway_listeners = BTreeMap::new();
    for gateway in &plan.gateways {
        let Some(ip) = addresses.get(&gateway.gateway) else {
            continue;
        };
        let names: Vec<String> = gateway
            .ports
            .iter()
            .map(|p| {
                let name = listener_name(&gateway.gateway, p.port);
                by_name.insert(name.clone(), (*ip, p.port));
                name
            })
            .collect();
        gateway_listeners.insert(gateway.gateway.clone(), names);
    }
    let listeners = config
        .pointer("/static_resources/listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|listener| {
            let (ip, port) = by_name.get(listener["name"].as_str()?)?;
            let mut listener = listener.clone();
            listener["address"]["socket_address"] =
                serde_json::json!({"address": ip.to_string(), "port_value": port});
            // Envoy binds with SO_REUSEPORT by default: a second tier on the same
            // machine would silently share the address and take half the connections.
            // Without it, that bind fails and the Gateway says so.
            listener["enable_reuse_port"] = serde_json::json!(false);
            Some(listener)
        })
        .collect();
    let clusters = config
        .pointer("/static_resources/clusters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Resources {
        listeners,
        clusters,
        gateway_listeners,
    }
}
