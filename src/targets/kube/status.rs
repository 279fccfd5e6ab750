//! Readiness as read from an object's JSON: no client here, so every rule (conditions,
//! generations, sidecars) is unit-tested on plain documents.
//!
//! Each check returns [`Readiness`]: either ready, or not yet with a short description
//! of what was seen last, which becomes part of the timeout error.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::fixtures::IstioStatus;
use crate::manifest::{Manifest, ObjectKey};

/// The verdict of one readiness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not ready yet; the text says what was seen (a condition, a count, a generation).
    Pending(String),
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }

    /// What was seen, for progress lines and timeout errors.
    pub fn describe(&self) -> String {
        match self {
            Readiness::Ready => "ready".to_string(),
            Readiness::Pending(seen) => seen.clone(),
        }
    }
}

fn generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

/// One `status.conditions[]` entry, as Gateway API and apps/v1 both write them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionView<'a> {
    pub type_: &'a str,
    pub status: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
    pub observed_generation: Option<i64>,
}

impl ConditionView<'_> {
    fn summary(&self) -> String {
        let mut text = format!("{}={}", self.type_, self.status);
        if !self.reason.is_empty() {
            text.push_str(&format!(" ({})", self.reason));
        }
        if !self.message.is_empty() {
            text.push_str(&format!(": {}", self.message));
        }
        text
    }
}

/// Finds a condition by type in a `conditions` array.
pub fn find_condition<'a>(conditions: Option<&'a Value>, type_: &str) -> Option<ConditionView<'a>> {
    conditions?.as_array()?.iter().find_map(|c| {
        let t = c.get("type")?.as_str()?;
        (t == type_).then(|| ConditionView {
            type_: t,
            status: c.get("status").and_then(Value::as_str).unwrap_or(""),
            reason: c.get("reason").and_then(Value::as_str).unwrap_or(""),
            message: c.get("message").and_then(Value::as_str).unwrap_or(""),
            observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
        })
    })
}

/// A condition that must be True and, when the object has a generation, observed at
/// that generation: a True left over from the previous spec does not count.
fn require_condition(
    conditions: Option<&Value>,
    type_: &str,
    generation: Option<i64>,
) -> Result<(), String> {
    let Some(condition) = find_condition(conditions, type_) else {
        return Err(format!("no {type_} condition yet"));
    };
    if let (Some(want), Some(seen)) = (generation, condition.observed_generation)
        && seen < want
    {
        return Err(format!(
            "{} observed at generation {seen}, current generation is {want}",
            condition.summary()
        ));
    }
    if generation.is_some() && condition.observed_generation.is_none() {
        // Gateway API requires observedGeneration on conditions; without it we cannot
        // tell a stale True from a fresh one.
        return Err(format!(
            "{} without observedGeneration",
            condition.summary()
        ));
    }
    if condition.status != "True" {
        return Err(condition.summary());
    }
    Ok(())
}

/// A CustomResourceDefinition is usable once `Established=True`.
pub fn crd_established(obj: &Value) -> Readiness {
    match find_condition(obj.pointer("/status/conditions"), "Established") {
        Some(c) if c.status == "True" => Readiness::Ready,
        Some(c) => Readiness::Pending(c.summary()),
        None => Readiness::Pending("no Established condition yet".into()),
    }
}

/// A Deployment is ready when the controller has seen the current spec, every replica
/// is updated and available, and `Available=True`.
pub fn deployment_available(obj: &Value) -> Readiness {
    let want = generation(obj).unwrap_or(0);
    let status = obj.get("status");
    let num = |field: &str| {
        status
            .and_then(|s| s.get(field))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let observed = num("observedGeneration");
    if observed < want {
        return Readiness::Pending(format!(
            "controller observed generation {observed}, current generation is {want}"
        ));
    }
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (updated, available) = (num("updatedReplicas"), num("availableReplicas"));
    if updated < replicas || available < replicas {
        return Readiness::Pending(format!(
            "{available}/{replicas} replicas available, {updated} updated"
        ));
    }
    match find_condition(status.and_then(|s| s.get("conditions")), "Available") {
        Some(c) if c.status == "True" => Readiness::Ready,
        Some(c) => Readiness::Pending(c.summary()),
        None => Readiness::Pending("no Available condition yet".into()),
    }
}

/// A pod is ready when `Ready=True` and, in a namespace with sidecar injection, the
/// `istio-proxy` sidecar is there (as a container, or as a native sidecar init
/// container) and ready.
pub fn pod_ready(obj: &Value, expect_sidecar: bool) -> Readiness {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    if expect_sidecar && !has_sidecar(obj) {
        return Readiness::Pending(format!(
            "pod {name} has no istio-proxy sidecar (injection enabled on its namespace but the pod predates it or the webhook did not run)"
        ));
    }
    match find_condition(obj.pointer("/status/conditions"), "Ready") {
        Some(c) if c.status == "True" => Readiness::Ready,
        Some(c) => Readiness::Pending(format!("pod {name}: {}", c.summary())),
        None => {
            let phase = obj
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Unknown");
            Readiness::Pending(format!("pod {name}: phase {phase}"))
        }
    }
}

/// Whether the pod has Istio's `istio-proxy` sidecar, as a container or as a native
/// sidecar init container.
fn has_sidecar(obj: &Value) -> bool {
    let has = |list: &str| {
        obj.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("name").and_then(Value::as_str) == Some("istio-proxy"))
            })
    };
    has("containers") || has("initContainers")
}

/// A Deployment's pods in one phrase, for a wait's progress: `1/3 pods ready (2
/// without the istio-proxy sidecar)`, or `no pods yet`.
pub fn pods_progress(pods: &[&Value], expect_sidecar: bool) -> String {
    if pods.is_empty() {
        return "no pods yet".to_owned();
    }
    let ready = pods
        .iter()
        .filter(|p| pod_ready(p, expect_sidecar).is_ready())
        .count();
    let mut text = format!("{ready}/{} pods ready", pods.len());
    let without = pods.iter().filter(|p| !has_sidecar(p)).count();
    if expect_sidecar && without > 0 {
        text.push_str(&format!(" ({without} without the istio-proxy sidecar)"));
    }
    text
}

/// A Gateway is ready when `Programmed=True` at its current generation.
pub fn gateway_programmed(obj: &Value) -> Readiness {
    match require_condition(
        obj.pointer("/status/conditions"),
        "Programmed",
        generation(obj),
    ) {
        Ok(()) => Readiness::Ready,
        Err(seen) => Readiness::Pending(seen),
    }
}

/// A GatewayClass is ready when `Accepted=True` at its current generation.
pub fn gateway_class_accepted(obj: &Value) -> Readiness {
    match require_condition(
        obj.pointer("/status/conditions"),
        "Accepted",
        generation(obj),
    ) {
        Ok(()) => Readiness::Ready,
        Err(seen) => Readiness::Pending(seen),
    }
}

/// An HTTPRoute (or GRPCRoute) is ready when every `spec.parentRefs` entry has a
/// matching `status.parents` entry with `Accepted=True` and `ResolvedRefs=True`, both
/// observed at the route's current generation.
pub fn route_accepted(obj: &Value) -> Readiness {
    let generation = generation(obj);
    let route_ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    let refs = obj
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if refs.is_empty() {
        return Readiness::Pending("route has no parentRefs".into());
    }
    let parents = obj
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for parent_ref in &refs {
        let label = parent_label(parent_ref, route_ns);
        let Some(parent) = parents.iter().find(|p| {
            p.get("parentRef")
                .is_some_and(|r| same_parent(r, parent_ref, route_ns))
        }) else {
            return Readiness::Pending(format!("parent {label}: no status from a controller yet"));
        };
        for type_ in ["Accepted", "ResolvedRefs"] {
            if let Err(seen) = require_condition(parent.get("conditions"), type_, generation) {
                return Readiness::Pending(format!("parent {label}: {seen}"));
            }
        }
    }
    Readiness::Ready
}

fn str_field<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// Parent references match on name, namespace (defaulting to the route's), kind
/// (defaulting to Gateway) and section name/port when the spec gives them.
fn same_parent(status_ref: &Value, spec_ref: &Value, route_ns: Option<&str>) -> bool {
    let ns = |r: &Value| str_field(r, "namespace").or(route_ns).map(str::to_owned);
    let kind = |r: &Value| str_field(r, "kind").unwrap_or("Gateway").to_owned();
    str_field(status_ref, "name") == str_field(spec_ref, "name")
        && ns(status_ref) == ns(spec_ref)
        && kind(status_ref) == kind(spec_ref)
        && (spec_ref.get("sectionName").is_none()
            || status_ref.get("sectionName") == spec_ref.get("sectionName"))
        && (spec_ref.get("port").is_none() || status_ref.get("port") == spec_ref.get("port"))
}

fn parent_label(parent_ref: &Value, route_ns: Option<&str>) -> String {
    let name = str_field(parent_ref, "name").unwrap_or("?");
    let ns = str_field(parent_ref, "namespace")
        .or(route_ns)
        .unwrap_or("?");
    match str_field(parent_ref, "sectionName") {
        Some(section) => format!("{ns}/{name}/{section}"),
        None => format!("{ns}/{name}"),
    }
}

/// What a wait is for: the readiness rule chosen from the object's kind. Kinds without a
/// rule (Services, DestinationRules, ...) are ready once they exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    CrdEstablished,
    DeploymentAvailable,
    GatewayProgrammed,
    GatewayClassAccepted,
    RouteAccepted,
    /// A Gateway Istio is expected not to program, or a route it is expected not to
    /// accept or resolve (see [`Rejections`]): ready once Istio has written its status
    /// for the current generation. What that status says is the suite's cases' to
    /// judge (`expect.conditions`, or the 500s of an unresolved backend).
    GatewayStatusWritten,
    RouteStatusWritten,
    Present,
}

impl WaitKind {
    pub fn for_kind(group: &str, kind: &str) -> WaitKind {
        match (group, kind) {
            ("apiextensions.k8s.io", "CustomResourceDefinition") => WaitKind::CrdEstablished,
            ("apps", "Deployment") => WaitKind::DeploymentAvailable,
            ("gateway.networking.k8s.io", "Gateway") => WaitKind::GatewayProgrammed,
            ("gateway.networking.k8s.io", "GatewayClass") => WaitKind::GatewayClassAccepted,
            ("gateway.networking.k8s.io", "HTTPRoute" | "GRPCRoute") => WaitKind::RouteAccepted,
            _ => WaitKind::Present,
        }
    }

    pub fn evaluate(self, obj: &Value) -> Readiness {
        match self {
            WaitKind::CrdEstablished => crd_established(obj),
            WaitKind::DeploymentAvailable => deployment_available(obj),
            WaitKind::GatewayProgrammed => gateway_programmed(obj),
            WaitKind::GatewayClassAccepted => gateway_class_accepted(obj),
            WaitKind::RouteAccepted => route_accepted(obj),
            WaitKind::GatewayStatusWritten => super::route_status::gateway_status_current(obj),
            WaitKind::RouteStatusWritten => super::route_status::route_status_current(obj),
            WaitKind::Present => Readiness::Ready,
        }
    }

    /// What is awaited, for messages: "Gateway istio-test/istio-gateway Programmed=True".
    pub fn goal(self) -> &'static str {
        match self {
            WaitKind::CrdEstablished => "Established=True",
            WaitKind::DeploymentAvailable => "available with every replica updated",
            WaitKind::GatewayProgrammed => "Programmed=True at the current generation",
            WaitKind::GatewayClassAccepted => "Accepted=True at the current generation",
            WaitKind::RouteAccepted => {
                "Accepted=True and ResolvedRefs=True for every parent at the current generation"
            }
            WaitKind::GatewayStatusWritten => {
                "status from Istio at the current generation (Istio is expected not to program it)"
            }
            WaitKind::RouteStatusWritten => {
                "status from Istio at the current generation (Istio is expected not to accept it or not to resolve its references)"
            }
            WaitKind::Present => "present",
        }
    }
}

/// The Gateways and routes of a suite that Istio is expected to reject, by the
/// fixtures' status as Istio computes it ([`IstioStatus`], the same the local target
/// reports): a Gateway not `Programmed`, a route with a parent not `Accepted` or not
/// `ResolvedRefs`. Waiting for those to be Programmed or Accepted would only time
/// out (the conformance suites' invalid routes are written to be rejected), so they
/// are awaited until Istio has written their status ([`WaitKind::GatewayStatusWritten`],
/// [`WaitKind::RouteStatusWritten`]); every other object by its kind's rule.
#[derive(Clone, Debug, Default)]
pub struct Rejections {
    rejected: BTreeSet<ObjectKey>,
}

impl Rejections {
    pub fn expected_by(status: &IstioStatus) -> Rejections {
        let gateways = status
            .gateways
            .iter()
            .filter(|g| {
                !g.conditions
                    .iter()
                    .any(|c| c.type_ == "Programmed" && c.is_true())
            })
            .map(|g| g.gateway.clone());
        let routes = status
            .routes
            .iter()
            .filter(|r| {
                r.parents.iter().any(|p| {
                    ["Accepted", "ResolvedRefs"]
                        .iter()
                        .any(|t| !p.conditions.iter().any(|c| c.type_ == *t && c.is_true()))
                })
            })
            .map(|r| r.route.clone());
        Rejections {
            rejected: gateways.chain(routes).collect(),
        }
    }

    /// How `m` is awaited.
    pub fn wait_kind(&self, m: &Manifest) -> WaitKind {
        let by_kind = WaitKind::for_kind(m.group(), &m.kind);
        if !self.rejected.contains(&m.key()) {
            return by_kind;
        }
        match by_kind {
            WaitKind::GatewayProgrammed => WaitKind::GatewayStatusWritten,
            WaitKind::RouteAccepted => WaitKind::RouteStatusWritten,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(generation: i64, parents: Value) -> Value {
        json!({
            "metadata": {"name": "backend-route", "namespace": "istio-test", "generation": generation},
            "spec": {"parentRefs": [{"name": "istio-gateway", "namespace": "istio-test"}]},
            "status": {"parents": parents},
        })
    }

    fn parent(accepted: &str, resolved: &str, observed: i64) -> Value {
        json!({
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "istio-gateway", "namespace": "istio-test"},
            "controllerName": "istio.io/gateway-controller",
            "conditions": [
                {"type": "Accepted", "status": accepted, "reason": "Accepted", "observedGeneration": observed},
                {"type": "ResolvedRefs", "status": resolved, "reason": if resolved == "True" {"ResolvedRefs"} else {"BackendNotFound"}, "message": "backend-v3 not found", "observedGeneration": observed},
            ],
        })
    }

    /// The conformance fixtures of HTTPRouteInvalidNonExistentBackendRef: Istio accepts
    /// the route but cannot resolve its backend, so it is awaited until its status is
    /// written; the Gateways of the base manifests are programmed, so they are awaited
    /// until they are.
    #[test]
    fn a_route_istio_rejects_is_awaited_until_its_status_is_written() {
        let manifests = crate::fixtures::test_support::conformance_manifests(
            "httproute-invalid-nonexistent-backendref.yaml",
        );
        let status = crate::fixtures::Fixtures::new(&manifests)
            .unwrap()
            .istio_status()
            .unwrap();
        let rejections = Rejections::expected_by(&status);
        let kind_of = |kind: &str, name: &str| {
            let m = manifests
                .iter()
                .find(|m| m.kind == kind && m.name == name)
                .unwrap_or_else(|| panic!("no {kind} {name}"));
            rejections.wait_kind(m)
        };
        assert_eq!(
            kind_of("HTTPRoute", "invalid-nonexistent-backend-ref"),
            WaitKind::RouteStatusWritten
        );
        assert_eq!(
            kind_of("Gateway", "same-namespace"),
            WaitKind::GatewayProgrammed
        );
        assert_eq!(
            kind_of("Deployment", "infra-backend-v1"),
            WaitKind::DeploymentAvailable
        );
        // Nothing expected: every object by its kind's rule.
        let none = Rejections::default();
        assert_eq!(
            none.wait_kind(manifests.iter().find(|m| m.kind == "HTTPRoute").unwrap()),
            WaitKind::RouteAccepted
        );
    }

    #[test]
    fn a_written_status_is_enough_only_at_the_current_generation() {
        let mut rejected = route(2, json!([parent("True", "False", 2)]));
        rejected["status"]["parents"][0]["controllerName"] =
            json!(crate::fixtures::ISTIO_CONTROLLER_NAME);
        assert!(WaitKind::RouteStatusWritten.evaluate(&rejected).is_ready());
        assert!(!WaitKind::RouteAccepted.evaluate(&rejected).is_ready());
        rejected["metadata"]["generation"] = json!(3);
        assert!(!WaitKind::RouteStatusWritten.evaluate(&rejected).is_ready());
    }

    #[test]
    fn route_ready_only_at_current_generation() {
        assert_eq!(
            route_accepted(&route(2, json!([parent("True", "True", 2)]))),
            Readiness::Ready
        );
        let stale = route_accepted(&route(3, json!([parent("True", "True", 2)])));
        assert_eq!(
            stale,
            Readiness::Pending(
                "parent istio-test/istio-gateway: Accepted=True (Accepted) observed at generation 2, current generation is 3".into()
            )
        );
    }

    #[test]
    fn route_reports_unresolved_refs_with_reason() {
        let seen = route_accepted(&route(1, json!([parent("True", "False", 1)]))).describe();
        assert!(
            seen.contains("ResolvedRefs=False (BackendNotFound): backend-v3 not found"),
            "{seen}"
        );
    }

    #[test]
    fn route_without_status_for_its_parent_is_pending() {
        let mut other = parent("True", "True", 1);
        other["parentRef"]["name"] = json!("other-gateway");
        let seen = route_accepted(&route(1, json!([other]))).describe();
        assert_eq!(
            seen,
            "parent istio-test/istio-gateway: no status from a controller yet"
        );
        assert!(!route_accepted(&route(1, json!(null))).is_ready());
    }

    #[test]
    fn route_condition_without_observed_generation_is_not_trusted() {
        let mut p = parent("True", "True", 1);
        p["conditions"][0]
            .as_object_mut()
            .unwrap()
            .remove("observedGeneration");
        assert!(!route_accepted(&route(1, json!([p]))).is_ready());
    }

    #[test]
    fn gateway_programmed_needs_true_and_fresh() {
        let gw = |status: &str, observed: i64| {
            json!({"metadata": {"generation": 2}, "status": {"conditions": [
                {"type": "Accepted", "status": "True", "observedGeneration": observed},
                {"type": "Programmed", "status": status, "reason": "AddressNotAssigned", "observedGeneration": observed},
            ]}})
        };
        assert_eq!(gateway_programmed(&gw("True", 2)), Readiness::Ready);
        assert!(!gateway_programmed(&gw("True", 1)).is_ready());
        assert_eq!(
            gateway_programmed(&gw("False", 2)).describe(),
            "Programmed=False (AddressNotAssigned)"
        );
        assert_eq!(
            gateway_programmed(&json!({"metadata": {"generation": 1}})).describe(),
            "no Programmed condition yet"
        );
    }

    #[test]
    fn deployment_checks_generation_replicas_and_available() {
        let d = |observed: i64, available: i64| {
            json!({"metadata": {"generation": 2}, "spec": {"replicas": 3}, "status": {
                "observedGeneration": observed, "updatedReplicas": 3, "availableReplicas": available,
                "conditions": [{"type": "Available", "status": "True"}]}})
        };
        assert_eq!(deployment_available(&d(2, 3)), Readiness::Ready);
        assert_eq!(
            deployment_available(&d(1, 3)).describe(),
            "controller observed generation 1, current generation is 2"
        );
        assert_eq!(
            deployment_available(&d(2, 2)).describe(),
            "2/3 replicas available, 3 updated"
        );
    }

    #[test]
    fn pods_need_the_sidecar_when_injection_is_on() {
        let pod = |containers: Value| {
            json!({"metadata": {"name": "backend-v1-x"}, "spec": {"containers": containers},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        };
        let plain = pod(json!([{"name": "echo"}]));
        let injected = pod(json!([{"name": "echo"}, {"name": "istio-proxy"}]));
        assert!(pod_ready(&plain, false).is_ready());
        assert!(
            pod_ready(&plain, true)
                .describe()
                .contains("no istio-proxy sidecar")
        );
        assert!(pod_ready(&injected, true).is_ready());
        let mut native = plain.clone();
        native["spec"]["initContainers"] =
            json!([{"name": "istio-proxy", "restartPolicy": "Always"}]);
        assert!(pod_ready(&native, true).is_ready());
        let pending = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}});
        assert_eq!(
            pod_ready(&pending, false).describe(),
            "pod p: phase Pending"
        );
    }

    #[test]
    fn crd_and_class_conditions() {
        assert!(
            crd_established(
                &json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}})
            )
            .is_ready()
        );
        assert!(!crd_established(&json!({})).is_ready());
        let class = json!({"metadata": {"generation": 1}, "status": {"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1}]}});
        assert!(gateway_class_accepted(&class).is_ready());
    }

    #[test]
    fn wait_kind_follows_group_and_kind() {
        assert_eq!(
            WaitKind::for_kind("gateway.networking.k8s.io", "HTTPRoute"),
            WaitKind::RouteAccepted
        );
        assert_eq!(
            WaitKind::for_kind("networking.istio.io", "DestinationRule"),
            WaitKind::Present
        );
        assert_eq!(
            WaitKind::for_kind("apps", "Deployment"),
            WaitKind::DeploymentAvailable
        );
        // A kind named Gateway in Istio's own group is not a Gateway API Gateway.
        assert_eq!(
            WaitKind::for_kind("networking.istio.io", "Gateway"),
            WaitKind::Present
        );
    }

    #[test]
    fn pods_progress_counts_ready_pods_and_those_without_the_sidecar() {
        let pod = |name: &str, sidecar: bool, ready: &str| {
            let mut containers = vec![json!({"name": "echo"})];
            if sidecar {
                containers.push(json!({"name": "istio-proxy"}));
            }
            json!({"metadata": {"name": name}, "spec": {"containers": containers},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}})
        };
        let pods = [
            pod("a", true, "True"),
            pod("b", false, "True"),
            pod("c", false, "False"),
        ];
        let all: Vec<&Value> = pods.iter().collect();
        assert_eq!(
            pods_progress(&all, true),
            "1/3 pods ready (2 without the istio-proxy sidecar)"
        );
        assert_eq!(pods_progress(&all, false), "2/3 pods ready");
        assert_eq!(pods_progress(&[], true), "no pods yet");
    }
}
