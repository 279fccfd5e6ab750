//! The cluster's objects through the local target's translation: [`plan`] refusing
//! what it cannot honour object by object (a refused object is left out and the rest
//! translated again, so one suite's unsupported field does not take every Gateway
//! down), the endpoints from the Ready pods, and the Envoy listeners bound to each
//! Gateway's own address and listener port.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use meshcheck::fixtures::{Fixtures, IstioStatus};
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

/// Istio's status for the objects, as Istio computes it from them
/// ([`Fixtures::istio_status`], independent of what the local target can run). An
/// object the fixtures view cannot decode is left out, as in [`translate`]; the error
/// is one that no object can be blamed for.
pub fn istio_status(objects: &[Value]) -> Result<IstioStatus, String> {
    let mut manifests: Vec<(ObjectRef, Manifest)> = objects
        .iter()
        .filter_map(|o| Some((ObjectRef::of(o), manifest(o).ok()?)))
        .collect();
    loop {
        let current: Vec<Manifest> = manifests.iter().map(|(_, m)| m.clone()).collect();
        let computed = Fixtures::new(&current).and_then(|fixtures| fixtures.istio_status());
        match computed {
            Ok(status) => return Ok(status),
            Err(err) => match culprit(&err, &manifests) {
                Some(index) => {
                    manifests.remove(index);
                }
                None => return Err(err.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istiod::manifests::suite_objects;
    use serde_json::json;

    /// The seed's objects as the API server returns them: with status, managed fields
    /// and the defaults of built-in kinds, and beside the cluster's own objects.
    fn server_objects() -> Vec<Value> {
        let meta = |name: &str| {
            json!({"name": name, "namespace": "istio-test", "uid": "u-1",
            "resourceVersion": "7", "generation": 1, "managedFields": [{"manager": "meshcheck"}]})
        };
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-test",
                "labels": {"kubernetes.io/metadata.name": "istio-test"}}, "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("backend"),
                "spec": {"replicas": 2, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                    "strategy": {"type": "RollingUpdate"},
                    "selector": {"matchLabels": {"app": "backend"}},
                    "template": {"metadata": {"labels": {"app": "backend"}, "creationTimestamp": null},
                        "spec": {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                            "containers": [{"name": "echo", "image": "hashicorp/http-echo",
                                "args": ["-text=hello"], "imagePullPolicy": "Always", "resources": {},
                                "terminationMessagePath": "/dev/termination-log"}]}}},
                "status": {"replicas": 2}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("backend"),
                "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "sessionAffinity": "None",
                    "type": "ClusterIP", "selector": {"app": "backend"},
                    "ports": [{"port": 80, "targetPort": 5678, "protocol": "TCP"}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {"ports": [{"port": 443}]}}),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": meta("gw"),
                "spec": {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "Same"}}}]},
                "status": {"conditions": []}}),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta("route"),
                "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "backendRefs": [{"group": "", "kind": "Service", "name": "backend", "port": 80, "weight": 1}]}]}}),
        ]
    }

    fn gateway_key() -> ObjectKey {
        ObjectKey {
            kind: "Gateway".into(),
            namespace: Some("istio-test".into()),
            name: "gw".into(),
        }
    }

    #[test]
    fn server_shaped_objects_translate_and_listen_on_the_gateway_address() {
        let snapshot = Snapshot::from_objects(server_objects());
        let translation = translate(&suite_objects(&snapshot));
        assert_eq!(translation.refused, []);
        let plan = translation.plan.expect("the seed's objects translate");
        assert_eq!(plan.workloads.len(), 1);
        let address: IpAddr = "127.20.0.9".parse().unwrap();
        let pods = vec![vec!["127.10.0.2:5678".parse().unwrap()]];
        let resources = resources(&plan, &pods, &BTreeMap::from([(gateway_key(), address)]));
        assert_eq!(resources.listeners.len(), 1);
        assert_eq!(
            resources.listeners[0]["address"]["socket_address"],
            json!({"address": "127.20.0.9", "port_value": 80})
        );
        assert_eq!(resources.listeners[0]["enable_reuse_port"], false);
        assert_eq!(
            resources.gateway_listeners[&gateway_key()],
            ["istio-test/gw/0.0.0.0_80"]
        );
        let endpoints = resources.clusters[0]
            .pointer("/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address")
            .cloned();
        assert_eq!(
            endpoints,
            Some(json!({"address": "127.10.0.2", "port_value": 5678}))
        );
    }

    #[test]
    fn a_refused_object_is_left_out_with_its_located_reason_and_the_rest_translates() {
        let mut objects = server_objects();
        // A field the local target does not translate, on the route only.
        objects[6]["spec"]["rules"][0]["retry"] = json!({"attempts": 2});
        let snapshot = Snapshot::from_objects(objects);
        let translation = translate(&suite_objects(&snapshot));
        let [refusal] = translation.refused.as_slice() else {
            panic!("{:?}", translation.refused);
        };
        assert_eq!(refusal.object.kind, "HTTPRoute");
        assert!(
            refusal.reason.starts_with("httproutes/istio-test/route:")
                && refusal
                    .reason
                    .contains("field `spec.rules[0].retry` is not supported by the local target"),
            "{}",
            refusal.reason
        );
        let plan = translation.plan.expect("the rest translates");
        assert_eq!(plan.gateways.len(), 1, "the Gateway is still programmed");
    }

    #[test]
    fn only_ready_pods_of_the_workload_are_endpoints() {
        let mut objects = server_objects();
        let pod = |name: &str, ip: &str, ready: &str, app: &str| {
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "istio-test", "labels": {"app": app, "pod-template-hash": "x"}},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}]}})
        };
        objects.push(pod("a", "127.10.0.3", "True", "backend"));
        objects.push(pod("b", "127.10.0.2", "True", "backend"));
        objects.push(pod("c", "127.10.0.4", "False", "backend"));
        objects.push(pod("d", "127.10.0.5", "True", "other"));
        let snapshot = Snapshot::from_objects(objects);
        let plan = translate(&suite_objects(&snapshot)).plan.unwrap();
        let addresses: Vec<String> = endpoints(&plan, &snapshot)[0]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(addresses, ["127.10.0.2:5678", "127.10.0.3:5678"]);
    }
}
