//! What a route attaches to and where its backends resolve, on the local target, as
//! Istio does it: backendRefs that resolve to nothing (answered with 500 for their
//! share), ReferenceGrants, listeners that select namespaces by label, listener
//! isolation. The fixtures are the fidelity corpus entries (`tests/data/fidelity/`),
//! whose configuration `istio_oracle` compares with Istio's: here the same fixtures run
//! on a real Envoy.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use meshcheck::manifest::{Manifest, ObjectKey, load_file, load_str};
use meshcheck::targets::local::{
    LocalEnvironment, LocalError, LocalOptions, RouteAction, ensure_envoy, installing_message, plan,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(entry: &str) -> Vec<Manifest> {
    load_file(&root().join(format!("tests/data/fidelity/{entry}/fixtures.yaml"))).unwrap()
}

fn edge_gateway() -> ObjectKey {
    ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("edge".into()),
        name: "gw".into(),
    }
}

async fn options() -> LocalOptions {
    let envoy = ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap();
    LocalOptions::new(envoy, PathBuf::from(env!("CARGO_BIN_EXE_meshcheck")))
}

/// One request on its own connection: the status and the body.
async fn get(address: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

/// The action of the only route of the virtual host `host` on the gateway's port 80.
fn action_for(manifests: &[Manifest], host: &str) -> RouteAction {
    let plan = plan(manifests).unwrap();
    let port = plan.gateways[0]
        .ports
        .iter()
        .find(|p| p.port == 80)
        .unwrap();
    let vhost = port
        .virtual_hosts()
        .into_iter()
        .find(|v| v.hostname == host)
        .unwrap_or_else(|| panic!("no virtual host {host}"));
    assert_eq!(vhost.routes.len(), 1, "{host}");
    vhost.routes[0].action.clone()
}

#[test]
fn backend_refs_name_the_clusters_istio_names() {
    let manifests = corpus("backend-refs");
    let cluster = |name: &str| format!("outbound|80||{name}.svc.cluster.local");
    let cases = [
        (
            "a.example.com",
            RouteAction::Cluster(cluster("granted.shop")),
        ),
        (
            "b.example.com",
            RouteAction::Cluster("UnknownService".into()),
        ),
        ("c.example.com", RouteAction::Cluster(cluster("open.other"))),
        (
            "d.example.com",
            RouteAction::Weighted(vec![
                (cluster("local.edge"), 1),
                (cluster("missing.edge"), 1),
            ]),
        ),
        (
            "e.example.com",
            RouteAction::Cluster("outbound|81||local.edge.svc.cluster.local".into()),
        ),
        (
            "f.example.com",
            RouteAction::Weighted(vec![
                ("UnknownService".into(), 1),
                (cluster("local.edge"), 3),
            ]),
        ),
        (
            "g.example.com",
            RouteAction::Cluster("UnknownService".into()),
        ),
        ("h.example.com", RouteAction::Cluster(cluster("local.edge"))),
        (
            "i.example.com",
            RouteAction::Weighted(vec![
                (cluster("local.edge"), 2),
                ("UnknownService".into(), 1),
            ]),
        ),
    ];
    for (host, expected) in cases {
        assert_eq!(action_for(&manifests, host), expected, "{host}");
    }
}

/// GAMMA routes are not held to ReferenceGrants (Istio checks them for Gateway
/// parents only): a mesh route to a Service in another namespace routes to it.
#[test]
fn mesh_routes_need_no_reference_grant() {
    let mut manifests = corpus("backend-refs");
    manifests.extend(
        load_str(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: mesh, namespace: edge}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: local, port: 80}]\n  rules:\n  - backendRefs: [{name: not-granted, namespace: shop, port: 80}]\n",
            Path::new("tests/mesh.yaml"),
        )
        .unwrap(),
    );
    let plan = plan(&manifests).unwrap();
    let routed: Vec<_> = plan.mesh.iter().filter(|m| m.gamma).collect();
    assert_eq!(routed.len(), 1);
    assert_eq!(
        routed[0].routes[0].action,
        RouteAction::Cluster("outbound|80||not-granted.shop.svc.cluster.local".into())
    );
}

/// A consumer route (in another namespace than its Service parent) applies only to
/// callers in its own namespace, as Istio scopes GAMMA routes: callers in the Service's
/// namespace keep its default route, callers in the route's get the route.
#[test]
fn a_consumer_route_leaves_callers_in_the_services_namespace_alone() {
    let mut manifests = corpus("backend-refs");
    manifests.extend(
        load_str(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: consumer, namespace: shop}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: local, namespace: edge, port: 80}]\n  rules:\n  - backendRefs: [{name: not-granted, namespace: shop, port: 80}]\n",
            Path::new("tests/consumer.yaml"),
        )
        .unwrap(),
    );
    let plan = plan(&manifests).unwrap();
    let local = ObjectKey {
        kind: "Service".into(),
        namespace: Some("edge".into()),
        name: "local".into(),
    };
    let first_action = |caller: &str| {
        plan.mesh_route_for(caller, &local, 80)
            .expect("the Service's port is routed for in-mesh callers")
            .routes[0]
            .action
            .clone()
    };
    assert_eq!(
        first_action("edge"),
        RouteAction::Cluster("outbound|80||local.edge.svc.cluster.local".into())
    );
    assert_eq!(
        first_action("shop"),
        RouteAction::Cluster("outbound|80||not-granted.shop.svc.cluster.local".into())
    );
}

/// GAMMA routes of one namespace on one Service, one naming a port and one not, are
/// two VirtualServices in Istio of which only one keeps the port: refused, located at
/// the later parentRef, rather than merged.
#[test]
fn gamma_routes_with_and_without_a_port_on_one_service_are_refused() {
    let mut manifests = corpus("backend-refs");
    manifests.extend(
        load_str(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: with-port, namespace: edge}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: local, port: 80}]\n  rules:\n  - backendRefs: [{name: local, port: 80}]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: portless, namespace: edge}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: local}]\n  rules:\n  - backendRefs: [{name: local, port: 80}]\n",
            Path::new("tests/mixed.yaml"),
        )
        .unwrap(),
    );
    let err = plan(&manifests).unwrap_err().to_string();
    assert!(
        err.contains("tests/mixed.yaml:13:") && err.contains("both with and without a `port`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_backend_that_resolves_to_nothing_answers_its_share_with_500() {
    let env = LocalEnvironment::start(&corpus("backend-refs"), options().await)
        .await
        .unwrap();
    let address = env.gateway_address(&edge_gateway(), 80).unwrap();
    // Granted cross-namespace backends are served; a forbidden one, a missing port and
    // an unknown kind are all 500.
    assert_eq!(
        get(address, "a.example.com", "/").await,
        (200, "granted\n".into())
    );
    assert_eq!(
        get(address, "c.example.com", "/").await,
        (200, "open\n".into())
    );
    for host in ["b.example.com", "e.example.com", "g.example.com"] {
        assert_eq!(get(address, host, "/").await.0, 500, "{host}");
    }
    // Half of the split goes to a Service that does not exist: over 60 requests both
    // halves show (the chance that one does not is 2^-59), and only those two.
    let mut answers: BTreeMap<(u16, String), u32> = BTreeMap::new();
    for _ in 0..60 {
        let (status, body) = get(address, "d.example.com", "/").await;
        let body = if status == 200 { body } else { String::new() };
        *answers.entry((status, body)).or_default() += 1;
    }
    let kinds: Vec<&(u16, String)> = answers.keys().collect();
    assert_eq!(
        kinds,
        [&(200, "local\n".to_string()), &(500, String::new())],
        "{answers:?}"
    );
    let report = env.shutdown().await;
    assert!(report.failed.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_selector_listener_takes_routes_from_the_namespaces_it_selects() {
    let env = LocalEnvironment::start(&corpus("listener-attachment"), options().await)
        .await
        .unwrap();
    let address = env.gateway_address(&edge_gateway(), 80).unwrap();
    assert_eq!(
        get(address, "a.labels.example.com", "/").await,
        (200, "shop\n".into())
    );
    assert_eq!(
        get(address, "a.expressions.example.com", "/").await,
        (200, "shop\n".into())
    );
    assert_eq!(
        get(address, "a.same.example.com", "/").await,
        (200, "edge\n".into())
    );
    // Not selected, a listener that takes no HTTPRoute, no such section, a route from
    // another namespace on a `Same` listener: no route.
    for host in [
        "b.same.example.com",
        "b.labels.example.com",
        "b.expressions.example.com",
        "a.grpc.example.com",
        "c.labels.example.com",
    ] {
        assert_eq!(get(address, host, "/").await.0, 404, "{host}");
    }
    let other_port = env.gateway_address(&edge_gateway(), 8080).unwrap();
    assert_eq!(
        get(other_port, "port.example.com", "/").await,
        (200, "store\n".into())
    );
    let report = env.shutdown().await;
    assert!(report.failed.is_empty(), "{report:?}");
}

/// The upstream GatewayHTTPListenerIsolation expectations, plus routes that name
/// hostnames a more specific listener owns.
#[tokio::test]
async fn a_request_goes_to_the_most_specific_listener_only() {
    let env = LocalEnvironment::start(&corpus("listener-isolation"), options().await)
        .await
        .unwrap();
    let address = env.gateway_address(&edge_gateway(), 80).unwrap();
    let cases = [
        ("bar.com", "/empty-hostname", Some("empty")),
        ("bar.com", "/wildcard-example-com", None),
        ("baz.example.com", "/wildcard-example-com", Some("wildcard")),
        ("baz.example.com", "/empty-hostname", None),
        (
            "bar.foo.example.com",
            "/wildcard-foo-example-com",
            Some("foo"),
        ),
        ("bar.foo.example.com", "/wildcard-example-com", None),
        ("abc.foo.example.com", "/abc-foo-example-com", Some("abc")),
        ("abc.foo.example.com", "/wildcard-foo-example-com", None),
        // Named hostnames: kept where no more specific listener owns them. A named
        // host is its own virtual host, which the wildcard's routes are not part of
        // (the oracle shows Istio does the same).
        ("bar.example.com", "/named", Some("wildcard")),
        ("bar.example.com", "/wildcard-example-com", None),
        ("bar.foo.example.com", "/named", None),
        ("other.org", "/named", Some("empty")),
        ("abc.foo.example.com", "/named", None),
        ("zzz.example.com", "/named", None),
    ];
    for (host, path, served_by) in cases {
        let (status, body) = get(address, host, path).await;
        match served_by {
            Some(name) => assert_eq!((status, body), (200, format!("{name}\n")), "{host}{path}"),
            None => assert_eq!(status, 404, "{host}{path}: {body}"),
        }
    }
    let report = env.shutdown().await;
    assert!(report.failed.is_empty(), "{report:?}");
}

#[test]
fn lint_warns_about_backends_istio_answers_with_500() {
    let output = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .arg("lint")
        .arg("tests/data/fidelity/backend-refs.yaml")
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let file = "tests/data/fidelity/backend-refs/fixtures.yaml";
    for expected in [
        format!(
            "warning: {file}:228:7: HTTPRoute edge/not-granted `spec.rules[0].backendRefs[0]`: Service shop/not-granted is in another namespace and no ReferenceGrant there allows HTTPRoutes from this one: Istio answers its share of the traffic with 500 (ResolvedRefs=False, RefNotPermitted)"
        ),
        format!(
            "warning: {file}:253:7: HTTPRoute edge/missing-service `spec.rules[0].backendRefs[1]`: Service edge/missing (port 80) is not in the fixtures"
        ),
        format!(
            "warning: {file}:265:7: HTTPRoute edge/missing-port `spec.rules[0].backendRefs[0]`: Service edge/local has no port 81"
        ),
        format!(
            "warning: {file}:277:7: HTTPRoute edge/unknown-kind `spec.rules[0].backendRefs[0]`: kind ConfigMap is not a backend Istio routes to: Istio answers its share of the traffic with 500 (ResolvedRefs=False, InvalidKind)"
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");
    }
    // Granted, zero-weight and resolvable backends are not warned about.
    assert_eq!(stderr.matches("warning:").count(), 6, "{stderr}");
    assert!(!stderr.contains("edge/zero-weight-invalid"), "{stderr}");
}

#[test]
fn lint_notes_routes_a_listener_does_not_take() {
    let output = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .arg("lint")
        .arg("tests/data/fidelity/listener-attachment.yaml")
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let file = "tests/data/fidelity/listener-attachment/fixtures.yaml";
    for expected in [
        format!(
            "{file}:225:16: HTTPRoute other/labels is not attached to Gateway edge/gw listener labels: the listener allows routes from the namespaces its selector picks: shop (Accepted=False, NotAllowedByListeners)"
        ),
        format!(
            "{file}:269:16: HTTPRoute store/no-such-section is not attached to Gateway edge/gw: no listener matches spec.parentRefs[0]'s sectionName/port (Accepted=False, NoMatchingParent)"
        ),
        format!("{file}:258:16: HTTPRoute shop/grpc-only is not attached"),
        format!(
            "{file}:324:16: HTTPRoute shop/same is not attached to Gateway edge/gw listener same: the listener allows routes from its own namespace only (Accepted=False, NotAllowedByListeners)"
        ),
        format!(
            "{file}:335:16: HTTPRoute shop/no-common-hostname is not attached to Gateway edge/gw listener labels: no hostname in common (Accepted=False, NoMatchingListenerHostname)"
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected}\nnot in:\n{stderr}");
    }
}

/// A namespace selector the API server would refuse is a located error, not a
/// listener that silently takes nothing.
#[test]
fn a_malformed_namespace_selector_is_a_located_error() {
    let mut manifests: Vec<Manifest> = corpus("listener-attachment");
    let text = std::fs::read_to_string(
        root().join("tests/data/fidelity/listener-attachment/fixtures.yaml"),
    )
    .unwrap()
    .replace(
        "operator: In, values: [shop, store]",
        "operator: Has, values: [shop]",
    );
    manifests = {
        let replaced = load_str(&text, Path::new("fx/selector.yaml")).unwrap();
        assert_eq!(replaced.len(), manifests.len());
        replaced
    };
    let err = LocalError::from(plan(&manifests).unwrap_err()).to_string();
    assert!(
        err.starts_with("fx/selector.yaml:")
            && err.contains(
                "field `spec.listeners[1].allowedRoutes.namespaces.selector`: not a label selector"
            ),
        "{err}"
    );
}

/// Istio proxies a Service port it reads as TCP (name `tcp-*`, `appProtocol:
/// kubernetes.io/wss`, ...) as opaque TCP for in-mesh callers: a GAMMA route has no
/// effect there. Naming such a port is refused (the local sidecar has no TCP
/// listener); a parentRef without a port routes the Service's HTTP ports only.
#[test]
fn gamma_routes_leave_tcp_ports_alone() {
    let gamma = |port: &str| {
        let mut manifests = corpus("port-protocols");
        manifests.extend(
            load_str(
                &format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: mesh, namespace: edge}}\nspec:\n  parentRefs: [{{group: \"\", kind: Service, name: backend{port}}}]\n  rules:\n  - backendRefs: [{{name: backend, port: 8080}}]\n"),
                Path::new("tests/mesh.yaml"),
            )
            .unwrap(),
        );
        plan(&manifests)
    };
    let err = LocalError::from(gamma(", port: 8085").unwrap_err()).to_string();
    assert!(
        err.starts_with("tests/mesh.yaml:5:")
            && err.contains("field `spec.parentRefs[0].port` is not supported by the local target")
            && err.contains("opaque TCP"),
        "{err}"
    );
    let plan = gamma("").unwrap();
    let backend_ports = |gamma: bool| -> Vec<u16> {
        plan.mesh
            .iter()
            .filter(|m| m.gamma == gamma && m.service.name == "backend")
            .map(|m| m.port)
            .collect()
    };
    assert_eq!(
        backend_ports(true),
        [8080, 8081, 8082, 8083, 8084, 8086, 8087]
    );
    // Without a GAMMA route the sidecar routes a Service port to the Service, as
    // Istio's default route does; the opaque TCP port gets no HTTP route either way.
    let tuned: Vec<u16> = plan
        .mesh
        .iter()
        .filter(|m| !m.gamma && m.service.name == "tuned")
        .map(|m| m.port)
        .collect();
    assert!(!tuned.is_empty(), "{:?}", plan.mesh);
    assert!(
        plan.mesh
            .iter()
            .all(|m| !(m.service.name == "backend" && m.port == 8085)),
        "{:?}",
        plan.mesh
    );
}
