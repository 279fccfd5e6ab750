//! Fixture translation for the local target, without running anything: the Envoy
//! cluster JSON a DestinationRule produces, routes, and the located refusals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use meshcheck::manifest::{Manifest, load_file, load_str};
use meshcheck::targets::local::{
    LocalError, MatchCondition, PathMatch, RouteAction, StringMatch, UNLIMITED, bootstrap, plan,
};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seed() -> Vec<Manifest> {
    [
        "backends.yaml",
        "gateway.yaml",
        "httproute.yaml",
        "destinationrules.yaml",
    ]
    .iter()
    .flat_map(|f| load_file(&root().join("fixtures/ingress-canary").join(f)).unwrap())
    .collect()
}

fn pods(n: usize) -> Vec<Vec<SocketAddr>> {
    (0..n)
        .map(|w| vec![SocketAddr::from(([127, 0, 0, 1], 30000 + w as u16))])
        .collect()
}

fn cluster<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

#[test]
fn seed_destination_rule_becomes_istio_cluster_settings() {
    let plan = plan(&seed()).unwrap();
    let config = bootstrap(&plan, &pods(plan.workloads.len()));
    let v1 = cluster(
        &config,
        "outbound|80||backend-v1.istio-test.svc.cluster.local",
    );
    let mut without_endpoints = v1.clone();
    without_endpoints["load_assignment"]["endpoints"] = json!("<endpoints>");
    assert_eq!(
        without_endpoints,
        json!({
            "name": "outbound|80||backend-v1.istio-test.svc.cluster.local",
            "type": "STATIC",
            "connect_timeout": "10s",
            "lb_policy": "ROUND_ROBIN",
            "load_assignment": {
                "cluster_name": "outbound|80||backend-v1.istio-test.svc.cluster.local",
                "endpoints": "<endpoints>"
            },
            "circuit_breakers": {"thresholds": [{
                "max_connections": 100,
                "max_pending_requests": 50,
                "max_requests": 100,
                "max_retries": UNLIMITED,
                "track_remaining": true
            }]},
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "common_http_protocol_options": {"max_requests_per_connection": 2},
                    "explicit_http_config": {"http_protocol_options": {}}
                }
            },
            "outlier_detection": {
                "enforcing_success_rate": 0,
                "consecutive_5xx": 5,
                "enforcing_consecutive_5xx": 100,
                "interval": "30s",
                "base_ejection_time": "30s",
                "max_ejection_percent": 50
            },
            "common_lb_config": {"healthy_panic_threshold": {"value": 0}}
        })
    );
    // Three replicas of backend-v1 (the test pods give one address per workload).
    assert_eq!(plan.workloads[0].replicas, 3);
    assert_eq!(plan.workloads[1].replicas, 2);
    assert_eq!(plan.workloads[0].echo_args, ["-text=hello from backend v1"]);

    let route = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"];
    // One domain per hostname: the route table ignores the Host header's port, as
    // Istio's does.
    assert_eq!(
        route["virtual_hosts"][0]["domains"],
        json!(["test.devopscube.com"])
    );
    assert_eq!(route["ignore_port_in_host_matching"], json!(true));
    assert_eq!(
        route["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"],
        json!({"clusters": [
            {"name": "outbound|80||backend-v1.istio-test.svc.cluster.local", "weight": 50},
            {"name": "outbound|80||backend-v2.istio-test.svc.cluster.local", "weight": 50}
        ]})
    );
}

#[test]
fn a_service_without_a_rule_gets_istio_defaults() {
    let manifests: Vec<Manifest> = seed()
        .into_iter()
        .filter(|m| m.kind != "DestinationRule")
        .collect();
    let plan = plan(&manifests).unwrap();
    let config = bootstrap(&plan, &pods(2));
    let v2 = cluster(
        &config,
        "outbound|80||backend-v2.istio-test.svc.cluster.local",
    );
    assert_eq!(v2["lb_policy"], "LEAST_REQUEST");
    assert_eq!(
        v2["circuit_breakers"]["thresholds"][0]["max_connections"],
        4294967295u32
    );
    assert!(v2.get("outlier_detection").is_none());
    assert!(v2.get("common_lb_config").is_none());
}

#[test]
fn every_supported_field_is_translated() {
    let mut manifests: Vec<Manifest> = seed()
        .into_iter()
        .filter(|m| m.kind != "DestinationRule")
        .collect();
    manifests.extend(load_file(&root().join("tests/data/local/everything.yaml")).unwrap());
    let plan = plan(&manifests).unwrap();
    let config = bootstrap(&plan, &pods(2));
    let v1 = cluster(
        &config,
        "outbound|80||backend-v1.istio-test.svc.cluster.local",
    );
    assert_eq!(v1["lb_policy"], "LEAST_REQUEST");
    assert_eq!(v1["connect_timeout"], "0.250000000s");
    assert_eq!(
        v1["circuit_breakers"]["thresholds"][0],
        json!({"max_connections": 7, "max_pending_requests": 3, "max_requests": 9, "max_retries": 4, "track_remaining": true})
    );
    assert_eq!(
        v1["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            ["common_http_protocol_options"],
        json!({"max_requests_per_connection": 1, "idle_timeout": "60s"})
    );
    assert_eq!(
        v1["outlier_detection"],
        json!({
            "enforcing_success_rate": 0,
            "consecutive_5xx": 2, "enforcing_consecutive_5xx": 100,
            "consecutive_gateway_failure": 3, "enforcing_consecutive_gateway_failure": 100,
            "interval": "1s", "base_ejection_time": "1.500000000s", "max_ejection_percent": 100
        })
    );
    assert_eq!(
        v1["common_lb_config"]["healthy_panic_threshold"]["value"],
        20
    );
    let v2 = cluster(
        &config,
        "outbound|80||backend-v2.istio-test.svc.cluster.local",
    );
    assert_eq!(v2["lb_policy"], "RANDOM");

    // Routes on match.example.com in Gateway API precedence: exact, then the longer
    // prefix with method and header, then /zero, then the catch-all.
    let vhost = plan.gateways[0].ports[0]
        .virtual_hosts()
        .into_iter()
        .find(|v| v.hostname == "match.example.com")
        .unwrap();
    let paths: Vec<_> = vhost.routes.iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            PathMatch::Exact("/only-v2".into()),
            PathMatch::Prefix("/zero".into()),
            PathMatch::Prefix("/v2/".into()),
            PathMatch::Prefix("/".into()),
        ]
    );
    assert_eq!(vhost.routes[1].action, RouteAction::DirectResponse(500));
    assert_eq!(
        vhost.routes[2].method.as_ref().map(|m| m.as_str()),
        Some("GET")
    );
    // The header name as written, as Istio writes it (Envoy compares names
    // case-insensitively).
    assert_eq!(
        vhost.routes[2].headers,
        [MatchCondition {
            name: "X-Canary".into(),
            value: StringMatch::Exact("yes".into()),
        }]
    );
    assert_eq!(
        vhost.routes[3].action,
        RouteAction::Cluster("outbound|80||backend-v1.istio-test.svc.cluster.local".into())
    );
}

/// Loads the seed with one extra document appended to a named fixture file.
fn refused(file: &str, extra: &str) -> String {
    let mut manifests: Vec<Manifest> = seed()
        .into_iter()
        .filter(|m| m.kind != "DestinationRule")
        .collect();
    manifests.extend(load_str(extra, Path::new(file)).unwrap());
    let err = plan(&manifests).map(|_| ()).unwrap_err();
    LocalError::from(err).to_string()
}

#[test]
fn unsupported_fields_are_located_errors() {
    let cases = [
        (
            "fixtures/dr-tls.yaml",
            "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n  name: tls\n  namespace: istio-test\nspec:\n  host: backend-v1\n  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n",
            "fixtures/dr-tls.yaml:9:5: DestinationRule tls: field `spec.trafficPolicy.tls` is not supported by the local target",
        ),
        (
            "fixtures/dr-subsets.yaml",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: s\n  namespace: istio-test\nspec:\n  host: backend-v1\n  subsets:\n  - name: v1\n    labels: {version: v1}\n",
            "field `spec.subsets` is not supported by the local target",
        ),
        (
            "fixtures/dr-lb.yaml",
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: p\n  namespace: istio-test\nspec:\n  host: backend-v1\n  trafficPolicy:\n    loadBalancer:\n      simple: PASSTHROUGH\n",
            "field `spec.trafficPolicy.loadBalancer.simple` is not supported by the local target (`PASSTHROUGH`",
        ),
        (
            "fixtures/route-filter.yaml",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: f\n  namespace: istio-test\nspec:\n  parentRefs: [{name: istio-gateway}]\n  rules:\n  - filters:\n    - type: CORS\n      cors: {allowOrigins: ['*']}\n    backendRefs: [{name: backend-v1, port: 80}]\n",
            "fixtures/route-filter.yaml:11:7: HTTPRoute f: field `spec.rules[0].filters[0].cors` is not supported by the local target",
        ),
        (
            "fixtures/gamma.yaml",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: mesh\n  namespace: istio-test\nspec:\n  parentRefs:\n  - {group: \"\", kind: Service, name: backend-v1}\n  hostnames: [backend.example.com]\n  rules:\n  - backendRefs: [{name: backend-v1, port: 80}]\n",
            "field `spec.hostnames` is not supported by the local target (hostnames on a GAMMA route",
        ),
        (
            "fixtures/nginx.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: istio-test\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n",
            "fixtures/nginx.yaml:13:9: Deployment web: field `spec.template.spec.containers[0].image` is not supported by the local target (image `nginx:1.27`",
        ),
        (
            "fixtures/lb.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\n  namespace: istio-test\nspec:\n  type: LoadBalancer\n  selector: {app: backend}\n  ports: [{port: 80, targetPort: 5678}]\n",
            "field `spec.type` is not supported by the local target",
        ),
        (
            "fixtures/static-address.yaml",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: pinned\n  namespace: istio-test\nspec:\n  gatewayClassName: istio\n  addresses:\n  - type: IPAddress\n    value: 10.0.0.7\n  listeners:\n  - {name: http, port: 8080, protocol: HTTP}\n",
            "fixtures/static-address.yaml:10:5: Gateway pinned: field `spec.addresses[0].value` is not supported by the local target (a requested IP address is the cluster's load balancer's to give",
        ),
        (
            "fixtures/address-without-value.yaml",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: unvalued\n  namespace: istio-test\nspec:\n  gatewayClassName: istio\n  addresses:\n  - {}\n  listeners:\n  - {name: http, port: 8080, protocol: HTTP}\n",
            "fixtures/address-without-value.yaml:9:5: Gateway unvalued: field `spec.addresses[0]`: an address of type IPAddress needs a value: the Gateway API v1.3.0 CRD's rules",
        ),
        (
            "fixtures/named-address.yaml",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: by-hand\n  namespace: istio-test\nspec:\n  gatewayClassName: istio\n  addresses:\n  - type: NamedAddress\n  listeners:\n  - {name: http, port: 8080, protocol: HTTP}\n",
            "fixtures/named-address.yaml:9:5: Gateway by-hand: field `spec.addresses[0]` is not supported by the local target (with this address Istio leaves the Gateway to be deployed by hand",
        ),
        (
            "fixtures/fixed-cluster-ip.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: pinned\n  namespace: istio-test\nspec:\n  clusterIP: 10.96.0.20\n  selector: {app: backend}\n  ports: [{port: 80, targetPort: 5678}]\n",
            "fixtures/fixed-cluster-ip.yaml:7:3: Service pinned: field `spec.clusterIP` is not supported by the local target (cluster IP 10.96.0.20",
        ),
        (
            "fixtures/gamma-headless.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: direct\n  namespace: istio-test\nspec:\n  clusterIP: None\n  selector: {app: backend}\n  ports: [{port: 80, targetPort: 5678}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: mesh\n  namespace: istio-test\nspec:\n  parentRefs:\n  - {group: \"\", kind: Service, name: direct}\n  rules:\n  - backendRefs: [{name: backend-v1, port: 80}]\n",
            "field `spec.parentRefs[0]` is not supported by the local target (a GAMMA route on the headless Service",
        ),
        (
            "fixtures/gamma-to-headless.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: direct\n  namespace: istio-test\nspec:\n  clusterIP: None\n  selector: {app: backend}\n  ports: [{port: 80, targetPort: 5678}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: mesh\n  namespace: istio-test\nspec:\n  parentRefs:\n  - {group: \"\", kind: Service, name: backend-v1}\n  rules:\n  - backendRefs: [{name: direct, port: 80}]\n",
            "field `spec.rules[0].backendRefs[0]` is not supported by the local target (a GAMMA route to the headless Service istio-test/direct",
        ),
        (
            "fixtures/endpoints.yaml",
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: manual\n  namespace: istio-test\n  labels: {kubernetes.io/service-name: backend-v1}\naddressType: IPv4\nendpoints:\n- addresses: [10.0.0.9]\nports: [{port: 5678}]\n",
            "fixtures/endpoints.yaml:8:1: EndpointSlice manual: field `endpoints` is not supported by the local target",
        ),
        (
            "fixtures/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: istio-test\ndata: {a: b}\n",
            "fixtures/cm.yaml:1:1: ConfigMap cm is not supported by the local target",
        ),
    ];
    for (file, text, expected) in cases {
        let message = refused(file, text);
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
        assert!(message.starts_with(file), "{message}");
    }
}

/// A parentRef to a Gateway the fixtures do not have is a typo, not "no route". (A
/// backendRef to a missing Service is not an error: Istio answers its share with 500,
/// see `local_attach`.)
#[test]
fn dangling_references_are_errors() {
    let message = refused(
        "fixtures/typo.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: typo\n  namespace: istio-test\nspec:\n  parentRefs: [{name: istio-gateway-typo}]\n  rules:\n  - backendRefs: [{name: backend-v1, port: 80}]\n",
    );
    assert!(
        message.contains("fixtures/typo.yaml:7:")
            && message.contains("Gateway istio-test/istio-gateway-typo is not in the fixtures"),
        "{message}"
    );
}

/// Istio applies a DestinationRule only from the client's namespace, the Service's and
/// `istio-system`, and reads a host with a dot as a full name; a rule that names no
/// Service or is out of scope is ignored there, so it is ignored here too (and `meshcheck
/// lint` warns, see `cli::lint_warns_about_destination_rules_istio_ignores`).
#[test]
fn destination_rules_istio_ignores_are_ignored() {
    let mut manifests: Vec<Manifest> = seed()
        .into_iter()
        .filter(|m| m.kind != "DestinationRule")
        .collect();
    let rule = |name: &str, namespace: &str, host: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  host: {host}\n  trafficPolicy:\n    connectionPool:\n      tcp: {{maxConnections: 5}}\n"
        )
    };
    let text = [
        rule(
            "nothing",
            "istio-test",
            "nothing.istio-test.svc.cluster.local",
        ),
        // `name.namespace` is a full name in Istio, and no Service has it.
        rule("dotted", "istio-test", "backend-v1.istio-test"),
        // Not the client's (the Gateway's) namespace, not the Service's, not the root.
        rule(
            "elsewhere",
            "other",
            "backend-v2.istio-test.svc.cluster.local",
        ),
    ]
    .concat();
    manifests.extend(load_str(&text, Path::new("fixtures/dr.yaml")).unwrap());
    let planned = plan(&manifests).unwrap_or_else(|err| panic!("{err}"));
    let with_policy: Vec<&str> = planned
        .clusters
        .iter()
        .filter(|c| c.policy.is_some())
        .map(|c| c.name.as_str())
        .collect();
    assert!(with_policy.is_empty(), "{with_policy:?}");

    // In the root namespace, the same rule applies to every client.
    let mut manifests: Vec<Manifest> = seed()
        .into_iter()
        .filter(|m| m.kind != "DestinationRule")
        .collect();
    manifests.extend(
        load_str(
            &rule(
                "root",
                "istio-system",
                "backend-v2.istio-test.svc.cluster.local",
            ),
            Path::new("fixtures/dr.yaml"),
        )
        .unwrap(),
    );
    let planned = plan(&manifests).unwrap_or_else(|err| panic!("{err}"));
    let with_policy: Vec<&str> = planned
        .clusters
        .iter()
        .filter(|c| c.policy.is_some())
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        with_policy,
        ["outbound|80||backend-v2.istio-test.svc.cluster.local"]
    );
}

/// A DestinationRule duration is read as Istio's CRD validates it (a Go duration of at
/// least 1ms): what the API server would reject is a located error naming the field,
/// not a value humantime happens to accept.
#[test]
fn durations_a_cluster_rejects_are_located_errors() {
    let rule = |field: &str, value: &str| {
        let (pool, key) = match field {
            "connectTimeout" => ("connectionPool:\n      tcp:\n", field),
            "idleTimeout" => ("connectionPool:\n      http:\n", field),
            _ => ("outlierDetection:\n", field),
        };
        let indent = if pool.starts_with("outlier") {
            "      "
        } else {
            "        "
        };
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: d\n  namespace: istio-test\nspec:\n  host: backend-v1\n  trafficPolicy:\n    {pool}{indent}{key}: {value}\n"
        )
    };
    for (field, value, path, line_column, reason) in [
        (
            "connectTimeout",
            "2days",
            "connectionPool.tcp.connectTimeout",
            "11:25",
            "is not a Go duration",
        ),
        (
            "idleTimeout",
            "\"100 ms\"",
            "connectionPool.http.idleTimeout",
            "11:22",
            "is not a Go duration",
        ),
        (
            "interval",
            "0s",
            "outlierDetection.interval",
            "10:17",
            "is below the 1ms",
        ),
    ] {
        let message = refused("fixtures/dr.yaml", &rule(field, value));
        let expected = format!(
            "fixtures/dr.yaml:{line_column}: DestinationRule d: field `spec.trafficPolicy.{path}`:"
        );
        assert!(
            message.starts_with(&expected),
            "expected {expected:?} in {message:?}"
        );
        assert!(
            message.contains(reason),
            "expected {reason:?} in {message:?}"
        );
    }
    for (field, value, expected) in [
        ("connectTimeout", "1h2m3s", "3723s"),
        ("idleTimeout", "100ms", "0.100000000s"),
        ("baseEjectionTime", "1.5s", "1.500000000s"),
    ] {
        let mut manifests: Vec<Manifest> = seed()
            .into_iter()
            .filter(|m| m.kind != "DestinationRule")
            .collect();
        manifests.extend(load_str(&rule(field, value), Path::new("fixtures/dr.yaml")).unwrap());
        let plan = plan(&manifests).unwrap_or_else(|err| panic!("{field}: {value}: {err}"));
        let policy = plan
            .clusters
            .iter()
            .find_map(|c| c.policy.clone())
            .expect("the rule applies to backend-v1");
        let got = match field {
            "connectTimeout" => policy.connect_timeout,
            "idleTimeout" => policy.idle_timeout,
            _ => policy.outlier.and_then(|o| o.base_ejection_time),
        };
        assert_eq!(
            got.map(meshcheck::targets::local::proto_duration)
                .as_deref(),
            Some(expected),
            "{field}: {value}"
        );
    }
}

/// A route hostname broader than its listener's serves only what the two share
/// (Gateway API `Hostnames`, apis/v1/httproute_types.go): `*.example.com` on a
/// `*.foo.example.com` listener is the virtual host `*.foo.example.com`.
#[test]
fn a_broad_route_hostname_serves_only_the_listeners_narrower_one() {
    let mut manifests: Vec<Manifest> = seed()
        .into_iter()
        .filter(|m| m.kind != "Gateway" && m.kind != "HTTPRoute")
        .collect();
    manifests.extend(
        load_str(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: narrow, namespace: istio-test}
spec:
  gatewayClassName: istio
  listeners:
  - {name: foo, port: 80, protocol: HTTP, hostname: "*.foo.example.com"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broad, namespace: istio-test}
spec:
  parentRefs: [{name: narrow}]
  hostnames: ["*.example.com"]
  rules:
  - backendRefs: [{name: backend-v1, port: 80}]
"#,
            Path::new("tests/narrow.yaml"),
        )
        .unwrap(),
    );
    let plan = plan(&manifests).unwrap();
    let hosts: Vec<&str> = plan.gateways[0].ports[0]
        .virtual_hosts()
        .iter()
        .map(|v| v.hostname.as_str())
        .collect();
    assert_eq!(hosts, ["*.foo.example.com"]);
}

/// An HTTPRoute around one rule (`rule` is the YAML of `spec.rules[0]`, indented as a
/// list item), on the seed's gateway and backends.
fn rule_route(rule: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  namespace: istio-test\nspec:\n  parentRefs: [{{name: istio-gateway}}]\n  rules:\n{rule}"
    )
}

/// Mistakes in matches, filters and timeouts that a cluster's CRD validation or Envoy
/// would refuse, each at its line (the rule starts on line 9).
#[test]
fn route_rule_mistakes_are_located_errors() {
    let backend = "    backendRefs: [{name: backend-v1, port: 80}]\n";
    let cases = [
        (
            format!("  - matches:\n    - path: {{type: RegularExpression, value: \"/a(\"}}\n{backend}"),
            "r.yaml:10:",
            "`/a(` is not a valid regular expression",
        ),
        (
            format!("  - matches:\n    - headers: [{{name: x, type: RegularExpression, value: \"[a-z&&[^m]]\"}}]\n{backend}"),
            "r.yaml:10:",
            "which RE2 (Envoy's regex engine) does not support",
        ),
        (
            format!("  - matches:\n    - queryParams: [{{name: q, type: RegularExpression, value: \"(?x) a\"}}]\n{backend}"),
            "r.yaml:10:",
            "a flag other than i, m, s and U",
        ),
        (
            format!("  - matches:\n    - headers: [{{name: \"bad header\", value: x}}]\n{backend}"),
            "r.yaml:10:",
            "`bad header` is not an HTTP header name",
        ),
        (
            format!("  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set: [{{name: \"x:y\", value: v}}]\n{backend}"),
            "r.yaml:12:",
            "`x:y` is not an HTTP header name",
        ),
        (
            format!("  - filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier:\n        add: [{{name: x, value: \"a\\u0001b\"}}]\n{backend}"),
            "r.yaml:12:",
            "contains characters a header cannot carry",
        ),
        (
            format!("  - timeouts: {{request: 1.5s}}\n{backend}"),
            "r.yaml:9:",
            "`1.5s` is not a Gateway API duration",
        ),
        (
            format!("  - timeouts: {{request: 1s, backendRequest: 2s}}\n{backend}"),
            "r.yaml:9:",
            "cannot be longer than the request timeout",
        ),
        (
            format!("  - filters:\n    - type: RequestRedirect\n      requestRedirect: {{scheme: https}}\n{backend}"),
            "r.yaml:10:",
            "cannot be used together with backendRefs",
        ),
        (
            "  - filters:\n    - type: RequestRedirect\n      requestRedirect: {scheme: https}\n    - type: URLRewrite\n      urlRewrite: {hostname: a.example.com}\n".to_string(),
            "r.yaml:12:",
            "a RequestRedirect or a URLRewrite filter, not both",
        ),
        (
            "  - matches: [{path: {type: Exact, value: /a}}]\n    filters:\n    - type: RequestRedirect\n      requestRedirect:\n        path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}\n".to_string(),
            "r.yaml:13:",
            "needs exactly one match, of type PathPrefix",
        ),
        (
            "  - filters:\n    - type: RequestRedirect\n      requestRedirect:\n        path: {type: ReplaceFullPath, replacePrefixMatch: /b}\n".to_string(),
            "r.yaml:12:",
            "`replacePrefixMatch` does not go with type ReplaceFullPath",
        ),
        (
            "  - filters:\n    - type: RequestRedirect\n      requestRedirect: {statusCode: 200}\n".to_string(),
            "r.yaml:11:",
            "200 is not a redirect status",
        ),
        (
            format!("  - filters:\n    - type: URLRewrite\n{backend}"),
            "r.yaml:10:",
            "a URLRewrite filter needs `urlRewrite`",
        ),
        (
            format!("  - filters:\n    - type: RequestMirror\n      requestMirror: {{backendRef: {{name: backend-v2, port: 80}}, percent: 5, fraction: {{numerator: 1}}}}\n{backend}"),
            "r.yaml:11:",
            "`percent` or `fraction`, not both",
        ),
        (
            format!("  - filters:\n    - type: RequestMirror\n      requestMirror: {{backendRef: {{name: nowhere, port: 80}}}}\n{backend}"),
            "r.yaml:11:",
            "Service istio-test/nowhere with port 80 is not in the fixtures",
        ),
        (
            "  - backendRefs:\n    - name: backend-v1\n      port: 80\n      filters:\n      - type: RequestMirror\n".to_string(),
            "r.yaml:13:",
            "RequestMirror filters on a backendRef",
        ),
    ];
    for (rule, location, message) in cases {
        let err = refused("r.yaml", &rule_route(&rule));
        assert!(
            err.starts_with(location) && err.contains(message),
            "{rule}\nwanted {location} ... {message}\ngot: {err}"
        );
    }
}

/// The Envoy route of each filter kind, as Istio writes it (checked against Istio's
/// own output by `istio_oracle.rs`; here the local side alone, so a change shows).
#[test]
fn filters_become_istio_shaped_envoy_routes() {
    let route_yaml = rule_route(
        "  - matches: [{path: {value: /strip}}]\n    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set: [{name: X-B, value: b}, {name: X-A, value: a}, {name: x-a, value: ignored}]\n        add: [{name: X-Add, value: more}]\n        remove: [X-Gone]\n    - type: URLRewrite\n      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}\n    - type: RequestMirror\n      requestMirror: {backendRef: {name: backend-v2, port: 80}, fraction: {numerator: 1, denominator: 8}}\n    timeouts: {request: 10s, backendRequest: 250ms}\n    backendRefs: [{name: backend-v1, port: 80}]\n",
    );
    let mut manifests: Vec<Manifest> = seed()
        .into_iter()
        .filter(|m| m.kind != "DestinationRule" && m.kind != "HTTPRoute")
        .collect();
    manifests.extend(load_str(&route_yaml, Path::new("r.yaml")).unwrap());
    let plan = plan(&manifests).unwrap();
    let config = bootstrap(&plan, &pods(plan.workloads.len()));
    let route = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"][0];
    assert_eq!(
        route["request_headers_to_add"],
        json!([
            {"header": {"key": "x-a", "value": "a"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-b", "value": "b"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-add", "value": "more"}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
        ])
    );
    assert_eq!(route["request_headers_to_remove"], json!(["X-Gone"]));
    assert_eq!(
        route["route"]["regex_rewrite"],
        json!({"pattern": {"regex": "^/strip(/?)(.*)"}, "substitution": "/\\2"})
    );
    assert_eq!(
        route["route"]["request_mirror_policies"],
        json!([{
            "cluster": "outbound|80||backend-v2.istio-test.svc.cluster.local",
            "runtime_fraction": {"default_value": {"numerator": 125000, "denominator": "MILLION"}},
            "trace_sampled": false,
            "disable_shadow_host_suffix_append": true
        }])
    );
    // Without a retry stanza the backendRequest timeout is the route timeout.
    assert_eq!(route["route"]["timeout"], json!("0.250000000s"));
}
