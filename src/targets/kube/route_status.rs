//! Gateway and HTTPRoute status as read from the objects' JSON, into the same views the
//! local target computes ([`crate::fixtures::IstioStatus`]), so `expect.conditions`
//! judges both alike. No client here: the rules (is the status current, what it says)
//! are unit-tested on plain documents.

use serde_json::Value;

use crate::fixtures::{
    GatewayAddressView, GatewayClassStatusView, GatewayStatusView, ISTIO_CONTROLLER_NAME,
    ListenerStatusView, ParentRefView, RouteParentStatusView, RouteStatusView, StatusCondition,
};
use crate::manifest::{GATEWAY_API_GROUP, ObjectKey};

use super::status::Readiness;

fn generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/generation").and_then(Value::as_i64)
}

fn conditions(value: Option<&Value>) -> Vec<StatusCondition> {
    let text = |c: &Value, key: &str| {
        c.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    value
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|c| StatusCondition {
                    type_: text(c, "type"),
                    status: text(c, "status"),
                    reason: text(c, "reason"),
                    message: text(c, "message"),
                    observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every condition of `value` was written for `generation` (a status left over
/// from the previous spec does not count); `what` names them for the pending text.
fn current(value: Option<&Value>, generation: Option<i64>, what: &str) -> Readiness {
    let Some(all) = value.and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        return Readiness::Pending(format!("no {what} conditions yet"));
    };
    let Some(generation) = generation else {
        return Readiness::Ready;
    };
    match all
        .iter()
        .find(|c| c.get("observedGeneration").and_then(Value::as_i64) != Some(generation))
    {
        None => Readiness::Ready,
        Some(stale) => Readiness::Pending(format!(
            "{what} condition {} observed generation {}, the object is at {generation}",
            stale.get("type").and_then(Value::as_str).unwrap_or("?"),
            stale
                .get("observedGeneration")
                .and_then(Value::as_i64)
                .map_or("none".to_string(), |g| g.to_string())
        )),
    }
}

/// Whether a Gateway's status describes its current generation: its own conditions
/// and each listener's.
pub fn gateway_status_current(obj: &Value) -> Readiness {
    let generation = generation(obj);
    let own = current(obj.pointer("/status/conditions"), generation, "Gateway");
    if !own.is_ready() {
        return own;
    }
    for listener in obj
        .pointer("/status/listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let verdict = current(listener.get("conditions"), generation, "listener");
        if !verdict.is_ready() {
            return verdict;
        }
    }
    Readiness::Ready
}

/// Whether a GatewayClass's status describes its current generation.
pub fn gateway_class_status_current(obj: &Value) -> Readiness {
    current(
        obj.pointer("/status/conditions"),
        generation(obj),
        "GatewayClass",
    )
}

/// A GatewayClass's status as read.
pub fn gateway_class_status(key: &ObjectKey, obj: &Value) -> GatewayClassStatusView {
    GatewayClassStatusView {
        class: key.clone(),
        generation: generation(obj),
        conditions: conditions(obj.pointer("/status/conditions")),
    }
}

/// Whether an HTTPRoute's status has Istio's entries, each for the current generation.
pub fn route_status_current(obj: &Value) -> Readiness {
    let generation = generation(obj);
    let ours: Vec<&Value> = obj
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("controllerName").and_then(Value::as_str) == Some(ISTIO_CONTROLLER_NAME))
        .collect();
    if ours.is_empty() {
        return Readiness::Pending(format!("no parent status from {ISTIO_CONTROLLER_NAME} yet"));
    }
    for parent in ours {
        let verdict = current(parent.get("conditions"), generation, "parent");
        if !verdict.is_ready() {
            return verdict;
        }
    }
    Readiness::Ready
}

/// A Gateway's status as read.
pub fn gateway_status(key: &ObjectKey, obj: &Value) -> GatewayStatusView {
    let listeners = obj
        .pointer("/status/listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| ListenerStatusView {
            name: l
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            supported_kinds: l
                .get("supportedKinds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|k| crate::fixtures::RouteKind {
                    group: k
                        .get("group")
                        .and_then(Value::as_str)
                        .unwrap_or(GATEWAY_API_GROUP)
                        .to_string(),
                    kind: k
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect(),
            attached_routes: l
                .get("attachedRoutes")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            conditions: conditions(l.get("conditions")),
        })
        .collect();
    let addresses = obj
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| GatewayAddressView {
            // The Gateway API schema defaults the type to IPAddress.
            type_: a
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("IPAddress")
                .to_string(),
            value: a
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    GatewayStatusView {
        gateway: key.clone(),
        generation: generation(obj),
        addresses,
        generated: Vec::new(),
        conditions: conditions(obj.pointer("/status/conditions")),
        listeners,
    }
}

/// An HTTPRoute's status as read: Istio's parent entries, their parentRefs with the
/// API's defaults filled in.
pub fn route_status(key: &ObjectKey, obj: &Value) -> RouteStatusView {
    let namespace = key.namespace_or_default();
    let parents = obj
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("controllerName").and_then(Value::as_str) == Some(ISTIO_CONTROLLER_NAME))
        .map(|p| {
            let field = |name: &str| {
                p.pointer(&format!("/parentRef/{name}"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            RouteParentStatusView {
                parent_ref: ParentRefView {
                    group: field("group").unwrap_or_else(|| GATEWAY_API_GROUP.into()),
                    kind: field("kind").unwrap_or_else(|| "Gateway".into()),
                    namespace: field("namespace").unwrap_or_else(|| namespace.to_string()),
                    name: field("name").unwrap_or_default(),
                    section_name: field("sectionName"),
                    port: p
                        .pointer("/parentRef/port")
                        .and_then(Value::as_i64)
                        .and_then(|n| i32::try_from(n).ok()),
                },
                controller_name: ISTIO_CONTROLLER_NAME.into(),
                conditions: conditions(p.get("conditions")),
            }
        })
        .collect();
    RouteStatusView {
        route: key.clone(),
        generation: generation(obj),
        parents,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(kind: &str) -> ObjectKey {
        ObjectKey {
            kind: kind.into(),
            namespace: Some("infra".into()),
            name: "r".into(),
        }
    }

    #[test]
    fn a_route_status_counts_once_istio_wrote_it_for_the_current_generation() {
        let route = |observed: i64| {
            json!({"metadata": {"generation": 2}, "status": {"parents": [
                {"controllerName": "other.io/controller", "parentRef": {"name": "gw"}, "conditions": []},
                {"controllerName": ISTIO_CONTROLLER_NAME, "parentRef": {"name": "gw", "sectionName": "http"},
                 "conditions": [{"type": "Accepted", "status": "False", "reason": "NoMatchingParent", "observedGeneration": observed, "message": "m"}]}
            ]}})
        };
        assert!(!route_status_current(&route(1)).is_ready());
        assert!(route_status_current(&route(2)).is_ready());
        assert!(!route_status_current(&json!({"metadata": {"generation": 1}})).is_ready());
        let view = route_status(&key("HTTPRoute"), &route(2));
        assert_eq!(view.parents.len(), 1);
        let parent = view.parent("Gateway", "infra", "gw", Some("http")).unwrap();
        assert_eq!(parent.conditions[0].reason, "NoMatchingParent");
        assert_eq!(parent.parent_ref.group, GATEWAY_API_GROUP);
    }

    #[test]
    fn a_gateway_status_needs_its_listeners_current_too() {
        let gateway = |listener_generation: i64| {
            json!({"metadata": {"generation": 3}, "status": {
                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 3}],
                "listeners": [{"name": "http", "attachedRoutes": 2, "supportedKinds": [{"kind": "HTTPRoute"}],
                    "conditions": [{"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "observedGeneration": listener_generation}]}]
            }})
        };
        assert!(!gateway_status_current(&gateway(2)).is_ready());
        assert!(gateway_status_current(&gateway(3)).is_ready());
        let view = gateway_status(&key("Gateway"), &gateway(3));
        let listener = view.listener("http").unwrap();
        assert_eq!(listener.attached_routes, 2);
        assert_eq!(listener.supported_kinds[0].group, GATEWAY_API_GROUP);
    }
}
