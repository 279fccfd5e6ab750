//! One reconcile: from a snapshot of the API server's objects to the gateways'
//! Deployments, Services and addresses, the Envoy configuration, and the status of
//! Gateways and routes. Level-triggered: every pass reads everything, so a missed or
//! merged event costs nothing, and a failed API call is retried on the next pass.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use meshcheck::fixtures::IstioStatus;
use meshcheck::manifest::ObjectKey;

use crate::context::Context;

use super::dns::{self, GatewayDns};
use super::envoy::{DataPlane, ListenerState};
use super::failure_modes;
use super::gateway_objects::{self, object_name};
use super::install::{GATEWAY_CLASS, resource};
use super::manifests::{ObjectRef, suite_objects};
use super::status::{Condition, conditions, differs};
use super::translate::{self, Translation};
use super::watch::{self, Snapshot, generation_of, name_of, namespace_of};

/// How soon to look again while a gateway's listeners are not listening yet: Envoy
/// says nothing when it has loaded a file, so its admin API is asked.
const LISTENER_POLL: Duration = Duration::from_millis(100);

/// Which object a status is for.
type StatusKey = (&'static str, String, String);

pub struct Controller {
    ctx: Arc<Context>,
    data_plane: DataPlane,
    dns: GatewayDns,
    /// Each Gateway's loopback address, by namespace and name, while it exists.
    addresses: BTreeMap<(String, String), Ipv4Addr>,
    /// The Gateways (uid, generation) whose Deployment and Service are applied.
    applied: BTreeSet<(String, i64)>,
    /// A delayed status: what was wanted, and since when.
    delayed: BTreeMap<StatusKey, (Value, Instant)>,
}

impl Controller {
    pub fn new(ctx: Arc<Context>, data_plane: DataPlane, dns: GatewayDns) -> Controller {
        Controller {
            ctx,
            data_plane,
            dns,
            addresses: BTreeMap::new(),
            applied: BTreeSet::new(),
            delayed: BTreeMap::new(),
        }
    }

    pub async fn stop(self) {
        self.data_plane.stop().await;
    }

    /// One pass; returns when to look again without a change (a gateway still
    /// coming up, a delayed status falling due).
    pub async fn reconcile(&mut self, snapshot: &Snapshot) -> Option<Instant> {
        let gateways: Vec<&Value> = snapshot
            .of(watch::GATEWAYS)
            .iter()
            .filter(|g| {
                g.pointer("/spec/gatewayClassName").and_then(Value::as_str) == Some(GATEWAY_CLASS)
            })
            .filter(|g| g.pointer("/metadata/deletionTimestamp").is_none())
            .collect();
        self.assign_addresses(&gateways);
        for gateway in &gateways {
            self.deploy(gateway, snapshot).await;
        }

        let objects = suite_objects(snapshot);
        let translation = translate::translate(&objects);
        let istio = translate::istio_status(&objects);
        for refusal in &translation.refused {
            eprintln!(
                "istiod stand-in: the local translation refuses {} {}/{}: {}",
                refusal.object.kind, refusal.object.namespace, refusal.object.name, refusal.reason
            );
        }
        let addresses: BTreeMap<ObjectKey, IpAddr> = self
            .addresses
            .iter()
            .map(|((ns, name), ip)| (key(ns, name), IpAddr::V4(*ip)))
            .collect();
        let mut gateway_listeners = BTreeMap::new();
        if let Some(plan) = &translation.plan {
            let pods = translate::endpoints(plan, snapshot);
            let resources = translate::resources(plan, &pods, &addresses);
            gateway_listeners = resources.gateway_listeners;
            if let Err(err) = self
                .data_plane
                .program(resources.listeners, resources.clusters)
            {
                eprintln!(
                    "istiod stand-in: {}",
                    meshcheck::error_chain::caused_by(&err)
                );
            }
        }
        let states = self.data_plane.listener_states().await;

        let mut wake: Option<Instant> = None;
        let mut soonest = |at: Instant| {
            wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
        };
        let mut pending_gateways = BTreeSet::new();
        for gateway in &gateways {
            let programmed = programmed(gateway, &translation, &gateway_listeners, &states);
            if matches!(programmed, Programmed::Pending(_)) {
                soonest(Instant::now() + LISTENER_POLL);
                pending_gateways.insert(ObjectRef::of(gateway));
            }
            let status = self.gateway_status(gateway, &istio, &programmed);
            if let Some(at) = self.write_status(gateway, "gateways", status).await {
                soonest(at);
            }
        }
        for route in snapshot.of(watch::HTTP_ROUTES) {
            if route.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            // A route's status waits for the data plane to run it: accepted before its
            // Gateway's Envoy has loaded it, a client would see 404s from the
            // configuration without it. (Istio writes status without waiting; there the
            // kube target's convergence absorbs the gap, here the stand-in closes it.)
            if gateways
                .iter()
                .any(|g| pending_gateways.contains(&ObjectRef::of(g)) && route_names(route, g))
            {
                continue;
            }
            let Some(status) = route_status(route, &istio, &translation) else {
                continue;
            };
            if let Some(at) = self.write_status(route, "httproutes", status).await {
                soonest(at);
            }
        }
        for class in snapshot.of(watch::GATEWAY_CLASSES) {
            let Some(status) = gateway_class_status(class, &istio) else {
                continue;
            };
            if let Some(at) = self.write_status(class, "gatewayclasses", status).await {
                soonest(at);
            }
        }
        wake
    }

    /// A loopback address for each new Gateway; the addresses of Gateways gone are
    /// given back.
    fn assign_addresses(&mut self, gateways: &[&Value]) {
        let present: BTreeSet<(String, String)> = gateways
            .iter()
            .map(|g| (namespace_of(g).to_owned(), name_of(g).to_owned()))
            .collect();
        let pool = &self.ctx.gateway_addresses;
        self.addresses.retain(|key, ip| {
            let keep = present.contains(key);
            if !keep {
                pool.release(*ip);
            }
            keep
        });
        for gateway in gateways {
            let key = (
                namespace_of(gateway).to_owned(),
                name_of(gateway).to_owned(),
            );
            if self.addresses.contains_key(&key) {
                continue;
            }
            let ports = listener_ports(gateway);
            loop {
                match pool.allocate() {
                    // Another tier on this machine (a colleague's, a second CI job) may
                    // serve this address already: it stays taken, the next is tried.
                    Ok(ip) if !ports_free(ip, &ports) => continue,
                    Ok(ip) => {
                        self.addresses.insert(key, ip);
                    }
                    Err(err) => eprintln!("istiod stand-in: Gateway {}/{}: {err}", key.0, key.1),
                }
                break;
            }
        }
    }

    /// The Gateway's Deployment and Service, and its address on the Service and in DNS.
    async fn deploy(&mut self, gateway: &Value, snapshot: &Snapshot) {
        let client = &self.ctx.client;
        let (namespace, name) = (namespace_of(gateway), name_of(gateway));
        let uid = gateway
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let applied_key = (uid.to_owned(), generation_of(gateway));
        if !self.applied.contains(&applied_key) {
            match gateway_objects::apply(client, gateway).await {
                Ok(()) => {
                    self.applied.insert(applied_key);
                }
                Err(err) => eprintln!(
                    "istiod stand-in: Gateway {namespace}/{name}: applying its Deployment and Service: {err}"
                ),
            }
        }
        let Some(ip) = self
            .addresses
            .get(&(namespace.to_owned(), name.to_owned()))
            .copied()
        else {
            return;
        };
        let ingress = if failure_modes::hostname_address(gateway) {
            let hostname = dns::hostname(namespace, name);
            self.dns.publish(&hostname, ip).await;
            json!({"hostname": hostname})
        } else {
            json!({"ip": ip.to_string()})
        };
        let service_name = object_name(name);
        let service = snapshot
            .of(watch::SERVICES)
            .iter()
            .find(|s| namespace_of(s) == namespace && name_of(s) == service_name);
        if service.is_none() {
            // Not in the store yet: the next pass (its watch event) publishes.
            return;
        }
        if let Err(err) = gateway_objects::publish_load_balancer(
            client,
            service,
            namespace,
            &service_name,
            ingress,
        )
        .await
        {
            eprintln!(
                "istiod stand-in: Service {namespace}/{service_name}: publishing its load balancer: {err}"
            );
        }
    }

    /// The Gateway's status: addresses, then Istio's conditions and listeners with
    /// `Programmed` as this data plane has it (Istio's says True once the Deployment
    /// exists; here it is True only once Envoy listens with the current configuration).
    fn gateway_status(
        &self,
        gateway: &Value,
        istio: &Result<IstioStatus, String>,
        programmed: &Programmed,
    ) -> Value {
        let (namespace, name) = (namespace_of(gateway), name_of(gateway));
        let generation = generation_of(gateway);
        let existing = gateway.get("status");
        let addresses = match self.addresses.get(&(namespace.to_owned(), name.to_owned())) {
            Some(_) if failure_modes::hostname_address(gateway) => {
                json!([{"type": "Hostname", "value": dns::hostname(namespace, name)}])
            }
            Some(ip) => json!([{"type": "IPAddress", "value": ip.to_string()}]),
            None => json!([]),
        };
        let service = format!("{}.{namespace}.svc.cluster.local", object_name(name));
        let our_programmed = match programmed {
            Programmed::Yes => Condition::new(
                "Programmed",
                true,
                "Programmed",
                format!("Resource programmed, assigned to service(s) {service}"),
            ),
            Programmed::Pending(why) => Condition::new("Programmed", false, "Pending", why.clone()),
            Programmed::Invalid(why) => Condition::new("Programmed", false, "Invalid", why.clone()),
        };
        let view = match istio {
            Ok(status) => status.gateway(&key(namespace, name)),
            Err(_) => None,
        };
        let Some(view) = view else {
            // Istio's status could not be computed: say why, on the Gateway.
            let why = match istio {
                Err(why) => why.clone(),
                Ok(_) => {
                    "the Gateway is not among the objects Istio's status was computed from".into()
                }
            };
            let conditions = conditions(
                existing.and_then(|s| s.get("conditions")),
                &[
                    Condition::new("Accepted", false, "Invalid", why),
                    our_programmed,
                ],
                generation,
            );
            return json!({"addresses": addresses, "conditions": conditions, "listeners": []});
        };
        // Istio's condition, unless it is Programmed=True: then ours.
        let with_ours = |c: &meshcheck::fixtures::StatusCondition, ours: &Condition| {
            if c.type_ == "Programmed" && c.is_true() {
                ours.clone()
            } else {
                Condition::from(c)
            }
        };
        let gateway_conditions: Vec<Condition> = view
            .conditions
            .iter()
            .map(|c| with_ours(c, &our_programmed))
            .collect();
        let mut listener_programmed = our_programmed.clone();
        if listener_programmed.status {
            listener_programmed.message = "No errors found".into();
        }
        let listeners: Vec<Value> = view
            .listeners
            .iter()
            .map(|listener| {
                let previous = existing
                    .and_then(|s| s.get("listeners"))
                    .and_then(Value::as_array)
                    .and_then(|ls| ls.iter().find(|l| l["name"] == listener.name.as_str()))
                    .and_then(|l| l.get("conditions"));
                let wanted: Vec<Condition> = listener
                    .conditions
                    .iter()
                    .map(|c| with_ours(c, &listener_programmed))
                    .collect();
                json!({
                    "name": listener.name,
                    "supportedKinds": listener.supported_kinds,
                    "attachedRoutes": listener.attached_routes,
                    "conditions": conditions(previous, &wanted, generation),
                })
            })
            .collect();
        json!({
            "addresses": addresses,
            "conditions": conditions(existing.and_then(|s| s.get("conditions")), &gateway_conditions, generation),
            "listeners": listeners,
        })
    }

    /// Writes `wanted` as the object's status when it differs from what the server has,
    /// after the object's failure-mode delay; returns when a delayed write falls due.
    async fn write_status(
        &mut self,
        object: &Value,
        plural: &str,
        wanted: Value,
    ) -> Option<Instant> {
        let kind: &'static str = match plural {
            "gateways" => "Gateway",
            "gatewayclasses" => "GatewayClass",
            _ => "HTTPRoute",
        };
        let key: StatusKey = (
            kind,
            namespace_of(object).to_owned(),
            name_of(object).to_owned(),
        );
        if !differs(object.get("status"), &wanted) {
            self.delayed.remove(&key);
            return None;
        }
        if let Some(delay) = failure_modes::status_delay(object) {
            let since = match self.delayed.get(&key) {
                Some((pending, since)) if !differs(Some(pending), &wanted) => *since,
                _ => {
                    let now = Instant::now();
                    self.delayed.insert(key.clone(), (wanted.clone(), now));
                    now
                }
            };
            if since.elapsed() < delay {
                return Some(since + delay);
            }
        }
        let resource = resource("gateway.networking.k8s.io", "v1", kind, plural);
        // A GatewayClass is cluster-scoped: its namespace is empty.
        let api: Api<DynamicObject> = if key.1.is_empty() {
            Api::all_with(self.ctx.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.ctx.client.clone(), &key.1, &resource)
        };
        match api
            .patch_status(
                &key.2,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": wanted})),
            )
            .await
        {
            Ok(_) => {
                self.delayed.remove(&key);
                None
            }
            Err(err) => {
                eprintln!(
                    "istiod stand-in: {kind} {}/{}: writing its status: {err}",
                    key.1, key.2
                );
                Some(Instant::now() + Duration::from_secs(1))
            }
        }
    }
}

fn listener_ports(gateway: &Value) -> Vec<u16> {
    gateway
        .pointer("/spec/listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| u16::try_from(l["port"].as_u64()?).ok())
        .collect()
}

/// Whether every port can be bound on `ip` now (the probe socket is closed at once).
fn ports_free(ip: Ipv4Addr, ports: &[u16]) -> bool {
    ports
        .iter()
        .all(|port| std::net::TcpListener::bind((ip, *port)).is_ok())
}

fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: "Gateway".into(),
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// Whether a Gateway is programmed: refused by the translation, its listeners not all
/// listening at the configuration last written, or all of them listening.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Programmed {
    Yes,
    Pending(String),
    Invalid(String),
}

fn programmed(
    gateway: &Value,
    translation: &Translation,
    gateway_listeners: &BTreeMap<ObjectKey, Vec<String>>,
    states: &BTreeMap<String, ListenerState>,
) -> Programmed {
    let reference = ObjectRef::of(gateway);
    if let Some(refusal) = translation.refused.iter().find(|r| r.object == reference) {
        return Programmed::Invalid(format!(
            "the kube tier's data plane (the local target's translation) refuses it: {}",
            refusal.reason
        ));
    }
    if let Some(why) = &translation.unplaceable {
        return Programmed::Invalid(format!(
            "the kube tier's data plane (the local target's translation) refuses the cluster's objects: {why}"
        ));
    }
    let Some(names) = gateway_listeners.get(&key(namespace_of(gateway), name_of(gateway))) else {
        return Programmed::Pending("no address assigned yet".into());
    };
    let mut waiting = Vec::new();
    for name in names {
        match states.get(name) {
            Some(ListenerState::Active) => {}
            Some(ListenerState::Failed(why)) => {
                return Programmed::Invalid(format!("Envoy refused listener {name}: {why}"));
            }
            Some(ListenerState::Pending) | None => waiting.push(name.as_str()),
        }
    }
    if waiting.is_empty() {
        Programmed::Yes
    } else {
        Programmed::Pending(format!(
            "waiting for the data plane to listen: {}",
            waiting.join(", ")
        ))
    }
}

fn route_names(route: &Value, gateway: &Value) -> bool {
    route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|parent| names_gateway(parent, namespace_of(route), gateway))
}

fn names_gateway(parent: &Value, route_namespace: &str, gateway: &Value) -> bool {
    parent["kind"].as_str().unwrap_or("Gateway") == "Gateway"
        && parent["group"]
            .as_str()
            .unwrap_or("gateway.networking.k8s.io")
            == "gateway.networking.k8s.io"
        && parent["name"].as_str() == Some(name_of(gateway))
        && parent["namespace"].as_str().unwrap_or(route_namespace) == namespace_of(gateway)
}

/// A GatewayClass's `status`, as Istio's class controller writes it for a class that
/// names it (`None` for any other class).
fn gateway_class_status(class: &Value, istio: &Result<IstioStatus, String>) -> Option<Value> {
    let view = istio.as_ref().ok()?.gateway_class(&ObjectKey {
        kind: "GatewayClass".into(),
        namespace: None,
        name: name_of(class).to_owned(),
    })?;
    let wanted: Vec<Condition> = view.conditions.iter().map(Condition::from).collect();
    Some(json!({
        "conditions": conditions(class.pointer("/status/conditions"), &wanted, generation_of(class)),
    }))
}

/// The route's `status.parents` as Istio computes them (`None` for a route with no
/// parent Istio owns), except where the stand-in knows better: a route the local
/// translation refuses is not run by this data plane, and the never-accept failure
/// mode; both make `Accepted` False with the reason.
fn route_status(
    route: &Value,
    istio: &Result<IstioStatus, String>,
    translation: &Translation,
) -> Option<Value> {
    let view = istio.as_ref().ok()?.route(&ObjectKey {
        kind: "HTTPRoute".into(),
        namespace: Some(namespace_of(route).to_owned()),
        name: name_of(route).to_owned(),
    })?;
    let generation = generation_of(route);
    let refusal = translation
        .refused
        .iter()
        .find(|r| r.object == ObjectRef::of(route));
    let existing = route.pointer("/status/parents").and_then(Value::as_array);
    let parents: Vec<Value> = view
        .parents
        .iter()
        .map(|parent| {
            let parent_ref = serde_json::to_value(&parent.parent_ref).unwrap_or_default();
            let wanted: Vec<Condition> = parent
                .conditions
                .iter()
                .map(|c| {
                    if c.type_ != "Accepted" {
                        Condition::from(c)
                    } else if failure_modes::never_accept(route) {
                        Condition::new(
                            "Accepted",
                            false,
                            "NotAllowedByListeners",
                            format!(
                                "the kube tier's istiod stand-in never accepts this route ({} is set)",
                                failure_modes::NEVER_ACCEPT
                            ),
                        )
                    } else if let (Some(refusal), true) = (refusal, c.is_true()) {
                        Condition::new(
                            "Accepted",
                            false,
                            "UnsupportedValue",
                            format!(
                                "the kube tier's data plane (the local target's translation) refuses it: {}",
                                refusal.reason
                            ),
                        )
                    } else {
                        Condition::from(c)
                    }
                })
                .collect();
            let previous = existing
                .and_then(|ps| ps.iter().find(|p| p.get("parentRef") == Some(&parent_ref)))
                .and_then(|p| p.get("conditions"));
            json!({
                "parentRef": parent_ref,
                "controllerName": parent.controller_name,
                "conditions": conditions(previous, &wanted, generation),
            })
        })
        .collect();
    Some(json!({"parents": parents}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, controller: &str, generation: i64) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": name, "generation": generation},
            "spec": {"controllerName": controller},
        })
    }

    /// A class that names Istio's controller is Accepted at its current generation (an
    /// edit moves observedGeneration on); a class of another controller is not ours.
    #[test]
    fn a_class_naming_istio_is_accepted_at_its_generation_and_others_are_left_alone() {
        let ours = class("ours", "istio.io/gateway-controller", 3);
        let theirs = class("theirs", "example.net/gateway-controller", 1);
        let istio = translate::istio_status(&[ours.clone(), theirs.clone()]);
        let status = gateway_class_status(&ours, &istio).expect("Istio's class has status");
        let accepted = &status["conditions"][0];
        assert_eq!(accepted["type"], "Accepted");
        assert_eq!(accepted["status"], "True");
        assert_eq!(accepted["reason"], "Accepted");
        assert_eq!(accepted["observedGeneration"], 3);
        assert_eq!(gateway_class_status(&theirs, &istio), None);
    }
}
