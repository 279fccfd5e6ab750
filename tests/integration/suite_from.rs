//! East-west request keys: `request.from`, the namespace an east-west case's in-mesh
//! client runs in, and `request.pod`, a call to a pod's own address. What the loader
//! accepts and refuses (each refusal located at the field), which GAMMA routes the
//! local target's sidecar gives a caller, and what a pod receives.

use std::path::{Path, PathBuf};

use meshcheck::manifest::ObjectKey;
use meshcheck::suite::{Entry, load_suite};
use meshcheck::targets::local::plan_fixtures;
use tempfile::TempDir;

/// The fidelity corpus's consumer-route fixtures: Namespaces shop, store and outside
/// (all injected), the Service shop/api with a producer route (/producer) and a
/// consumer route in store (/consumer).
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fidelity/gamma-consumer-routes/fixtures.yaml")
}

/// Writes a suite whose only case has this `request:` block (indented by 6) over
/// `fixtures` and extra fixture text (none when empty), and returns its path.
fn suite(dir: &TempDir, request: &str, extra_fixtures: &str) -> PathBuf {
    let mut files = format!("'{}'", fixtures().display());
    if !extra_fixtures.is_empty() {
        std::fs::write(dir.path().join("extra.yaml"), extra_fixtures).unwrap();
        files.push_str(", extra.yaml");
    }
    let text = format!(
        "name: from\nfixtures: [{files}]\ncases:\n  - name: c\n    request:\n{request}    traffic: {{requests: 1}}\n    expect: {{status: 200}}\n"
    );
    let path = dir.path().join("suite.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn refused(request: &str, extra_fixtures: &str, line: usize, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let text = load_suite(&suite(&dir, request, extra_fixtures))
        .expect_err("the suite must be refused")
        .to_string();
    assert!(
        text.contains(&format!("suite.yaml:{line}:")),
        "expected suite.yaml:{line}: in: {text}"
    );
    assert!(text.contains(expected), "expected {expected:?} in: {text}");
}

const NO_EXTRA: &str = "";

/// Runs the meshcheck binary with `args` and the suite at `path`: its exit code and
/// everything it printed.
fn meshcheck(args: &[&str], path: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .args(args)
        .arg(path)
        .output()
        .expect("run meshcheck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn api() -> ObjectKey {
    ObjectKey {
        kind: "Service".into(),
        namespace: Some("shop".into()),
        name: "api".into(),
    }
}

#[test]
fn from_places_the_client_and_defaults_to_the_services_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite(
        &dir,
        "      service: shop/api\n      from: store\n      url: http://api.shop/\n",
        NO_EXTRA,
    );
    let suite_with_from = load_suite(&path).unwrap();
    assert_eq!(
        suite_with_from.cases[0].entry,
        Entry::Service {
            service: api(),
            from: "store".into()
        }
    );
    let path = suite(
        &dir,
        "      service: shop/api\n      url: http://api.shop/\n",
        NO_EXTRA,
    );
    assert_eq!(
        load_suite(&path).unwrap().cases[0].entry,
        Entry::service(api())
    );
}

#[test]
fn from_on_a_gateway_case_is_refused() {
    let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\nspec:\n  gatewayClassName: istio\n  listeners: [{name: http, protocol: HTTP, port: 80}]\n";
    refused(
        "      gateway: shop/gw\n      from: store\n      url: http://api.shop/\n",
        gateway,
        7,
        "`from` places the in-mesh client of an east-west case",
    );
}

#[test]
fn from_a_namespace_the_fixtures_lack_is_refused() {
    refused(
        "      service: shop/api\n      from: elsewhere\n      url: http://api.shop/\n",
        NO_EXTRA,
        7,
        "namespace `elsewhere` is not in the suite's fixtures",
    );
}

#[test]
fn from_a_namespace_without_injection_is_refused() {
    let plain = "apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n";
    refused(
        "      service: shop/api\n      from: plain\n      url: http://api.shop/\n",
        plain,
        7,
        "namespace `plain` has no label that injects Istio's sidecar",
    );
}

/// Which route a caller's sidecar picks for /consumer and /producer, by namespace:
/// the consumer route replaces the producer's for callers in store only.
#[test]
fn a_consumer_route_replaces_the_producer_route_for_its_namespace_only() {
    let dir = tempfile::tempdir().unwrap();
    let suite = load_suite(&suite(
        &dir,
        "      service: shop/api\n      url: http://api.shop/\n",
        NO_EXTRA,
    ))
    .unwrap();
    let plan = plan_fixtures(&suite.fixtures).unwrap();
    let routes_of = |caller: &str| -> Vec<String> {
        let mesh = plan.mesh_route_for(caller, &api(), 80).unwrap();
        mesh.routes
            .iter()
            .map(|r| format!("{:?}", r.path))
            .collect()
    };
    for caller in ["shop", "outside"] {
        let routes = routes_of(caller);
        assert!(
            routes.iter().any(|r| r.contains("/producer"))
                && !routes.iter().any(|r| r.contains("/consumer")),
            "{caller}: {routes:?}"
        );
    }
    let routes = routes_of("store");
    assert!(
        routes.iter().any(|r| r.contains("/consumer"))
            && !routes.iter().any(|r| r.contains("/producer")),
        "store: {routes:?}"
    );
}

/// An east-west case to a port the local sidecar does not serve (a headless Service's)
/// is refused by `lint --target local` at the case, with why, and fails at run time
/// with the same reason.
#[test]
fn an_east_west_case_to_a_headless_service_says_why_it_cannot_run_locally() {
    let dir = tempfile::tempdir().unwrap();
    let headless = "apiVersion: v1\nkind: Service\nmetadata: {name: direct, namespace: shop}\nspec:\n  clusterIP: None\n  selector: {app: api}\n  ports: [{name: http, port: 80, targetPort: 5678}]\n";
    let path = suite(
        &dir,
        "      service: shop/direct\n      url: http://direct.shop/\n",
        headless,
    );
    let why =
        "Service shop/direct is headless: in-mesh callers reach its pods by their own addresses";
    let (code, text) = meshcheck(&["lint", "--target", "local"], &path);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("suite.yaml:4:")
            && text.contains("case `from::c` cannot run on the local target")
            && text.contains(why),
        "{text}"
    );
    let (code, text) = meshcheck(&["run", "--quiet"], &path);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(why), "{text}");
}

/// A call to a pod reaches one of the Deployment's pods with the pod's address and the
/// container port as its Host, as a client that looked the pod up would send it; the
/// `pod-ip` placeholder never reaches the backend.
#[test]
fn a_call_to_a_pod_names_the_pods_address() {
    let dir = tempfile::tempdir().unwrap();
    let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance/base");
    let path = dir.path().join("pod.yaml");
    std::fs::write(
        &path,
        format!(
            "name: pod\nfixtures: ['{0}/namespaces.yaml', '{0}/infra-backends.yaml']\ncases:\n  - name: c\n    request:\n      pod: gateway-conformance-infra/infra-backend-v1\n      url: http://pod-ip:3000/direct\n    traffic: {{requests: 2}}\n    expect:\n      status: 200\n      servedBy: gateway-conformance-infra/infra-backend-v1\n      request: {{path: /direct, host: '127.0.0.1:3000'}}\n",
            infra.display()
        ),
    )
    .unwrap();
    let run = |path: &Path| meshcheck(&["run", "--quiet"], path);
    let (code, text) = run(&path);
    assert_eq!(code, Some(0), "{text}");
    // A port the pod does not listen on is refused with why.
    let wrong_port = std::fs::read_to_string(&path)
        .unwrap()
        .replace("pod-ip:3000", "pod-ip:8080")
        .replace("127.0.0.1:3000", "127.0.0.1:8080");
    std::fs::write(&path, wrong_port).unwrap();
    let (code, text) = run(&path);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "no pod of Deployment gateway-conformance-infra/infra-backend-v1 to call on port 8080"
        ) && text.contains("listen on 3000"),
        "{text}"
    );
}

#[test]
fn a_call_to_a_pod_needs_the_placeholder_host_and_one_entry() {
    refused(
        "      pod: shop/api\n      url: http://api.shop:5678/\n",
        NO_EXTRA,
        7,
        "with `pod`, the URL's host is `pod-ip`",
    );
    refused(
        "      pod: shop/missing\n      url: http://pod-ip:5678/\n",
        NO_EXTRA,
        6,
        "Deployment shop/missing is not in the suite's fixtures",
    );
    refused(
        "      service: shop/api\n      pod: shop/api\n      url: http://pod-ip:5678/\n",
        NO_EXTRA,
        7,
        "give one of `gateway` (north-south), `service` and `pod` (east-west)",
    );
}

/// A caller's namespace counts as a DestinationRule client: a rule in `outside` that
/// only a client there applies cannot be served by the local target's shared clusters,
/// which says so at the rule instead of leaving the rule out.
#[test]
fn a_rule_only_the_calling_namespace_applies_is_a_located_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api-limits, namespace: outside}\nspec:\n  host: api.shop.svc.cluster.local\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n";
    let path = suite(
        &dir,
        "      service: shop/api\n      from: outside\n      url: http://api.shop/producer\n",
        rule,
    );
    let suite = load_suite(&path).unwrap();
    let err = plan_fixtures(&suite.fixtures).unwrap_err().to_string();
    assert!(
        err.contains("extra.yaml:5:")
            && err.contains(
                "clients in namespace `outside` apply DestinationRule outside/api-limits"
            ),
        "{err}"
    );
}

/// `from` naming the Service's own namespace asks nothing more than leaving it out,
/// even where that namespace is not declared.
#[test]
fn from_the_services_own_namespace_is_accepted_as_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let lone = "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: lone}\nspec:\n  selector: {app: api}\n  ports: [{name: http, port: 80, targetPort: 5678}]\n";
    let path = suite(
        &dir,
        "      service: lone/api\n      from: lone\n      url: http://api.lone/\n",
        lone,
    );
    let loaded = load_suite(&path).unwrap();
    assert_eq!(
        loaded.cases[0].entry,
        Entry::service(ObjectKey {
            kind: "Service".into(),
            namespace: Some("lone".into()),
            name: "api".into(),
        })
    );
}

/// A status-only case sends nothing, so a Service parent whose port 80 is opaque TCP is
/// no reason for `lint --target local` to refuse it.
#[test]
fn lint_leaves_status_only_cases_out_of_the_sidecar_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extra.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: direct, namespace: shop}\nspec:\n  selector: {app: api}\n  ports:\n  - {name: tcp-a, port: 80, targetPort: 5678}\n  - {name: http, port: 81, targetPort: 5678}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: to-direct, namespace: shop}\nspec:\n  parentRefs:\n  - {group: \"\", kind: Service, name: direct}\n  rules:\n  - backendRefs: [{name: direct, port: 81}]\n",
    )
    .unwrap();
    let path = dir.path().join("suite.yaml");
    std::fs::write(
        &path,
        format!(
            "name: st\nfixtures: ['{}', extra.yaml]\ncases:\n  - name: status\n    expect:\n      conditions:\n        - route: shop/to-direct\n          parent: shop/direct\n          parentKind: Service\n          conditions: [{{type: Accepted, status: \"True\"}}]\n",
            fixtures().display()
        ),
    )
    .unwrap();
    let (code, text) = meshcheck(&["lint", "--target", "local"], &path);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("cannot run on the local target"), "{text}");
}
