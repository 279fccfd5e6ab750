//! Which fields the local target honours, kind by kind. Every field present in a
//! fixture must be on this list or the fixture is refused with a located error: a
//! field we silently dropped would make a test pass locally and fail on a cluster.

use crate::manifest::yaml::{Located, Node};
use crate::manifest::{GroupKind, Manifest, ManifestError};

/// Metadata every kind may carry. Labels select pods; annotations only matter to cloud
/// controllers (the seed's AWS NLB one), so they are accepted and have no effect here.
const METADATA: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels.*",
    "metadata.annotations.*",
];

const NAMESPACE: &[&str] = &[];

const DEPLOYMENT: &[&str] = &[
    "spec.replicas",
    "spec.selector.matchLabels.*",
    "spec.template.metadata.labels.*",
    "spec.template.metadata.annotations.*",
    "spec.template.spec.containers[].name",
    "spec.template.spec.containers[].image",
    "spec.template.spec.containers[].imagePullPolicy",
    "spec.template.spec.containers[].args[]",
    "spec.template.spec.containers[].ports[].containerPort",
    "spec.template.spec.containers[].ports[].name",
    "spec.template.spec.containers[].ports[].protocol",
    // Requests and limits shape scheduling on a cluster; a local process has none.
    "spec.template.spec.containers[].resources.**",
    // echo-basic's settings: values, and the pod's own fields (resolved or refused in
    // `echo_basic.rs`); http-echo gets none (refused in `plan.rs`).
    "spec.template.spec.containers[].env[].name",
    "spec.template.spec.containers[].env[].value",
    "spec.template.spec.containers[].env[].valueFrom.fieldRef.fieldPath",
    "spec.template.spec.containers[].env[].valueFrom.fieldRef.apiVersion",
    // On the list only to be refused with the reason (`plan.rs` `workload`): nothing
    // is mounted, and echo-basic's TLS backend needs its certificate files.
    "spec.template.spec.containers[].volumeMounts[].**",
    "spec.template.spec.volumes[].**",
];

const SERVICE: &[&str] = &[
    "spec.type",
    // `None` only (headless); a fixed cluster IP is refused in `plan.rs`.
    "spec.clusterIP",
    "spec.selector.*",
    "spec.ports[].name",
    "spec.ports[].port",
    "spec.ports[].targetPort",
    "spec.ports[].protocol",
    "spec.ports[].appProtocol",
];

const GATEWAY: &[&str] = &[
    "spec.gatewayClassName",
    "spec.listeners[].name",
    "spec.listeners[].protocol",
    "spec.listeners[].port",
    "spec.listeners[].hostname",
    "spec.listeners[].tls.mode",
    "spec.listeners[].tls.certificateRefs[].group",
    "spec.listeners[].tls.certificateRefs[].kind",
    "spec.listeners[].tls.certificateRefs[].name",
    "spec.listeners[].tls.certificateRefs[].namespace",
    "spec.listeners[].allowedRoutes.namespaces.from",
    "spec.listeners[].allowedRoutes.namespaces.selector.matchLabels.*",
    "spec.listeners[].allowedRoutes.namespaces.selector.matchExpressions[].key",
    "spec.listeners[].allowedRoutes.namespaces.selector.matchExpressions[].operator",
    "spec.listeners[].allowedRoutes.namespaces.selector.matchExpressions[].values[]",
    "spec.listeners[].allowedRoutes.kinds[].group",
    "spec.listeners[].allowedRoutes.kinds[].kind",
    // Only what Istio copies onto the objects it deploys (`generated_objects`);
    // `parametersRef` stays refused.
    "spec.infrastructure.labels.*",
    "spec.infrastructure.annotations.*",
    // On the list only to be refused with the reason (`gateway_addresses`).
    "spec.addresses[].type",
    "spec.addresses[].value",
];

/// An EndpointSlice without endpoints, as the conformance manifests write them for a
/// Service without a selector (upstream fills them in at run time): it adds no
/// endpoint, so the Service has none. Endpoints are pod addresses the local target
/// does not have, so `endpoints` is not on the list.
const ENDPOINT_SLICE: &[&str] = &[
    "addressType",
    "ports[].name",
    "ports[].port",
    "ports[].protocol",
    "ports[].appProtocol",
];

/// A Secret matters only as an HTTPS listener's certificate (`tls.crt`, `tls.key`);
/// other keys are accepted and unused, as on a cluster.
const SECRET: &[&str] = &["type", "data.*", "stringData.*"];

const HTTP_ROUTE: &[&str] = &[
    "spec.parentRefs[].group",
    "spec.parentRefs[].kind",
    "spec.parentRefs[].name",
    "spec.parentRefs[].namespace",
    "spec.parentRefs[].sectionName",
    "spec.parentRefs[].port",
    "spec.hostnames[]",
    "spec.rules[].name",
    "spec.rules[].matches[].path.type",
    "spec.rules[].matches[].path.value",
    "spec.rules[].matches[].headers[].name",
    "spec.rules[].matches[].headers[].value",
    "spec.rules[].matches[].headers[].type",
    "spec.rules[].matches[].method",
    "spec.rules[].matches[].queryParams[].name",
    "spec.rules[].matches[].queryParams[].value",
    "spec.rules[].matches[].queryParams[].type",
    "spec.rules[].filters[].type",
    "spec.rules[].filters[].requestHeaderModifier.set[].name",
    "spec.rules[].filters[].requestHeaderModifier.set[].value",
    "spec.rules[].filters[].requestHeaderModifier.add[].name",
    "spec.rules[].filters[].requestHeaderModifier.add[].value",
    "spec.rules[].filters[].requestHeaderModifier.remove[]",
    "spec.rules[].filters[].responseHeaderModifier.set[].name",
    "spec.rules[].filters[].responseHeaderModifier.set[].value",
    "spec.rules[].filters[].responseHeaderModifier.add[].name",
    "spec.rules[].filters[].responseHeaderModifier.add[].value",
    "spec.rules[].filters[].responseHeaderModifier.remove[]",
    "spec.rules[].filters[].requestRedirect.scheme",
    "spec.rules[].filters[].requestRedirect.hostname",
    "spec.rules[].filters[].requestRedirect.port",
    "spec.rules[].filters[].requestRedirect.statusCode",
    "spec.rules[].filters[].requestRedirect.path.type",
    "spec.rules[].filters[].requestRedirect.path.replaceFullPath",
    "spec.rules[].filters[].requestRedirect.path.replacePrefixMatch",
    "spec.rules[].filters[].urlRewrite.hostname",
    "spec.rules[].filters[].urlRewrite.path.type",
    "spec.rules[].filters[].urlRewrite.path.replaceFullPath",
    "spec.rules[].filters[].urlRewrite.path.replacePrefixMatch",
    "spec.rules[].filters[].requestMirror.backendRef.group",
    "spec.rules[].filters[].requestMirror.backendRef.kind",
    "spec.rules[].filters[].requestMirror.backendRef.name",
    "spec.rules[].filters[].requestMirror.backendRef.namespace",
    "spec.rules[].filters[].requestMirror.backendRef.port",
    "spec.rules[].filters[].requestMirror.percent",
    "spec.rules[].filters[].requestMirror.fraction.numerator",
    "spec.rules[].filters[].requestMirror.fraction.denominator",
    "spec.rules[].backendRefs[].filters[].type",
    "spec.rules[].backendRefs[].filters[].requestHeaderModifier.set[].name",
    "spec.rules[].backendRefs[].filters[].requestHeaderModifier.set[].value",
    "spec.rules[].backendRefs[].filters[].requestHeaderModifier.add[].name",
    "spec.rules[].backendRefs[].filters[].requestHeaderModifier.add[].value",
    "spec.rules[].backendRefs[].filters[].requestHeaderModifier.remove[]",
    "spec.rules[].backendRefs[].filters[].responseHeaderModifier.set[].name",
    "spec.rules[].backendRefs[].filters[].responseHeaderModifier.set[].value",
    "spec.rules[].backendRefs[].filters[].responseHeaderModifier.add[].name",
    "spec.rules[].backendRefs[].filters[].responseHeaderModifier.add[].value",
    "spec.rules[].backendRefs[].filters[].responseHeaderModifier.remove[]",
    "spec.rules[].timeouts.request",
    "spec.rules[].timeouts.backendRequest",
    "spec.rules[].backendRefs[].group",
    "spec.rules[].backendRefs[].kind",
    "spec.rules[].backendRefs[].name",
    "spec.rules[].backendRefs[].namespace",
    "spec.rules[].backendRefs[].port",
    "spec.rules[].backendRefs[].weight",
];

/// A GatewayClass only has status on the local target (Istio's controller accepts the
/// classes that name it); `parametersRef` would configure deployments there are none of.
const GATEWAY_CLASS: &[&str] = &["spec.controllerName", "spec.description"];

const REFERENCE_GRANT: &[&str] = &[
    "spec.from[].group",
    "spec.from[].kind",
    "spec.from[].namespace",
    "spec.to[].group",
    "spec.to[].kind",
    "spec.to[].name",
];

const DESTINATION_RULE: &[&str] = &[
    "spec.host",
    "spec.trafficPolicy.loadBalancer.simple",
    "spec.trafficPolicy.connectionPool.tcp.maxConnections",
    "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
    "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
    "spec.trafficPolicy.connectionPool.http.http2MaxRequests",
    "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection",
    "spec.trafficPolicy.connectionPool.http.maxRetries",
    "spec.trafficPolicy.connectionPool.http.idleTimeout",
    "spec.trafficPolicy.outlierDetection.consecutive5xxErrors",
    "spec.trafficPolicy.outlierDetection.consecutiveGatewayErrors",
    "spec.trafficPolicy.outlierDetection.interval",
    "spec.trafficPolicy.outlierDetection.baseEjectionTime",
    "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
    "spec.trafficPolicy.outlierDetection.minHealthPercent",
];

/// The kinds the local target knows, by API group and kind, with their fields.
pub(crate) fn supported_fields(manifest: &Manifest) -> Option<&'static [&'static str]> {
    Some(match manifest.group_kind() {
        GroupKind::NAMESPACE => NAMESPACE,
        GroupKind::DEPLOYMENT => DEPLOYMENT,
        GroupKind::SERVICE => SERVICE,
        GroupKind::ENDPOINT_SLICE => ENDPOINT_SLICE,
        GroupKind::SECRET => SECRET,
        GroupKind::GATEWAY => GATEWAY,
        GroupKind::GATEWAY_CLASS => GATEWAY_CLASS,
        GroupKind::HTTP_ROUTE => HTTP_ROUTE,
        GroupKind::DESTINATION_RULE => DESTINATION_RULE,
        GroupKind::REFERENCE_GRANT => REFERENCE_GRANT,
        _ => return None,
    })
}

/// Refuses a kind the local target does not know, or any field of a known kind that is
/// not on its list, pointing at the first such field.
pub(crate) fn check(manifest: &Manifest) -> Result<(), ManifestError> {
    let Some(fields) = supported_fields(manifest) else {
        return Err(ManifestError::UnsupportedKind {
            location: manifest.location(),
            kind: manifest.kind.clone(),
            name: manifest.name.clone(),
            target: "local",
        });
    };
    let patterns: Vec<Vec<&str>> = METADATA
        .iter()
        .chain(fields)
        .map(|p| split_pattern(p))
        .collect();
    let candidates: Vec<&[&str]> = patterns.iter().map(Vec::as_slice).collect();
    walk(manifest, &manifest.root, String::new(), &candidates)?;
    if manifest.group_kind() == GroupKind::GATEWAY {
        gateway_addresses(manifest)?;
    }
    Ok(())
}

/// Refuses a Gateway's `spec.addresses`, each with the reason, as none leaves Istio
/// deploying the Gateway as the local target serves it. Istio deploys a Gateway itself
/// only without addresses or with one of type `IPAddress`
/// (istio/istio `pilot/pkg/config/kube/gatewaycommon/gateway_utils.go`, `IsManaged`);
/// otherwise the addresses name the Service of a Gateway deployed by hand, and only
/// `Hostname` ones count (`pilot/pkg/config/kube/gateway/conversion.go`,
/// `extractGatewayServices`). An `IPAddress` without a value the API server refuses
/// under the Gateway API v1.3.0 CRD, whose uniqueness rules on `spec.addresses` read
/// every such entry's value (`no such key: value`, seen on the kube tier;
/// kubernetes-sigs/gateway-api `config/crd/standard/gateway.networking.k8s.io_gateways.yaml`),
/// and the same holds for a `Hostname` without a value. The type defaults to
/// `IPAddress`.
fn gateway_addresses(manifest: &Manifest) -> Result<(), ManifestError> {
    let spec = manifest.to_json();
    let Some(addresses) = spec
        .pointer("/spec/addresses")
        .and_then(serde_json::Value::as_array)
    else {
        return Ok(());
    };
    let deployed_by_hand = |field: &str| {
        manifest.unsupported(
            field,
            "local",
            Some(
                "with this address Istio leaves the Gateway to be deployed by hand, its addresses naming the Service in front of it; the local target serves only Gateways Istio deploys (no addresses, or one IPAddress)"
                    .into(),
            ),
        )
    };
    let address = match addresses.as_slice() {
        [] => return Ok(()),
        [address] => address,
        [_, ..] => return Err(deployed_by_hand("spec.addresses[1]")),
    };
    let value = address
        .get("value")
        .and_then(serde_json::Value::as_str)
        .filter(|v| !v.is_empty());
    let type_ = address
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("IPAddress");
    Err(match (type_, value) {
        ("IPAddress" | "Hostname", None) => crate::manifest::invalid_field(
            manifest,
            "spec.addresses[0]",
            format!(
                "an address of type {type_} needs a value: the Gateway API v1.3.0 CRD's rules on `spec.addresses` read it, and the API server refuses the Gateway (`no such key: value`); leave the address out to get one assigned"
            ),
        ),
        ("IPAddress", Some(_)) => manifest.unsupported(
            "spec.addresses[0].value",
            "local",
            Some(
                "a requested IP address is the cluster's load balancer's to give (GatewayStaticAddresses); leave the address out to get one assigned"
                    .into(),
            ),
        ),
        _ => deployed_by_hand("spec.addresses[0]"),
    })
}

/// The unsupported-field error; [`Manifest::unsupported`] points at the key itself,
/// where the user has to delete it.
fn unsupported_key(manifest: &Manifest, path: &str) -> ManifestError {
    manifest.unsupported(path, "local", None)
}

/// `a.b[].c` becomes `a`, `b`, `[]`, `c`.
fn split_pattern(pattern: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    for part in pattern.split('.') {
        match part.strip_suffix("[]") {
            Some(key) => {
                segments.push(key);
                segments.push("[]");
            }
            None => segments.push(part),
        }
    }
    segments
}

fn walk(
    manifest: &Manifest,
    node: &Located,
    path: String,
    candidates: &[&[&str]],
) -> Result<(), ManifestError> {
    // Everything below a `**` pattern is accepted as a whole.
    if candidates.iter().any(|c| c.first() == Some(&"**")) {
        return Ok(());
    }
    match &node.node {
        Node::Map(entries) => {
            for entry in entries {
                let (key, child) = (&entry.key, &entry.value);
                let next: Vec<&[&str]> = candidates
                    .iter()
                    .filter(|c| matches!(c.first(), Some(s) if *s == key || *s == "*"))
                    .map(|c| &c[1..])
                    .collect();
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if next.is_empty() {
                    return Err(unsupported_key(manifest, &child_path));
                }
                walk(manifest, child, child_path, &next)?;
            }
            Ok(())
        }
        Node::Seq(items) => {
            let next: Vec<&[&str]> = candidates
                .iter()
                .filter(|c| c.first() == Some(&"[]"))
                .map(|c| &c[1..])
                .collect();
            for (index, child) in items.iter().enumerate() {
                // A list where the model expects a scalar is a type error the typed
                // decoder reports better; only walk lists the model has.
                if next.is_empty() {
                    return Ok(());
                }
                walk(manifest, child, format!("{path}[{index}]"), &next)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load_str;
    use std::path::Path;

    fn check_text(text: &str) -> Result<(), ManifestError> {
        let manifests = load_str(text, Path::new("fx/dr.yaml")).unwrap();
        check(&manifests[0])
    }

    #[test]
    fn unknown_fields_are_located() {
        let err = check_text(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: d\n  namespace: n\nspec:\n  host: a\n  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fx/dr.yaml:9:5: DestinationRule d: field `spec.trafficPolicy.tls` is not supported by the local target"
        );
    }

    #[test]
    fn lists_are_indexed_and_annotations_accepted() {
        let err = check_text(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  annotations: {a.b/c: x}\nspec:\n  rules:\n  - backendRefs: [{name: a}]\n  - retry: {}\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("field `spec.rules[1].retry` is not supported by the local target"),
            "{err}"
        );
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let err =
            check_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "fx/dr.yaml:1:1: ConfigMap c is not supported by the local target"
        );
    }
}
