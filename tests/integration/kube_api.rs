//! The kube target against a fake API server on loopback: discovery, server-side apply,
//! waits with generations, gateway addresses, cleanup, diagnostics, preflight, and the
//! error paths (403, 404, 409, 500, timeouts, unreachable server). Inputs are the real
//! upstream CRDs and the seed fixtures.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::fake_api::{FakeApi, State};
use http::Method;
use meshcheck::manifest::{Manifest, ObjectKey, load_file};
use meshcheck::runner::Pending;
use meshcheck::targets::kube::{KubeEnvironment, KubeError, KubeOptions, KubeTimeouts};
use serde_json::{Value, json};

const SENTINEL: &str = "sentinel-token-4f2a9c1e7b";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn crds() -> Vec<Manifest> {
    let mut all = load_file(&root().join("crds/gateway-api-v1.3.0-standard-install.yaml")).unwrap();
    all.extend(load_file(&root().join("crds/istio-crd-all.gen.yaml")).unwrap());
    all
}

fn fixtures() -> Vec<Manifest> {
    let dir = root().join("fixtures/ingress-canary");
    [
        "backends.yaml",
        "gateway.yaml",
        "httproute.yaml",
        "destinationrules.yaml",
    ]
    .iter()
    .flat_map(|f| load_file(&dir.join(f)).unwrap())
    .collect()
}

fn only(manifests: &[Manifest], kind: &str) -> Vec<Manifest> {
    manifests
        .iter()
        .filter(|m| m.kind == kind)
        .cloned()
        .collect()
}

struct Setup {
    api: FakeApi,
    env: KubeEnvironment,
    _dir: tempfile::TempDir,
}

async fn setup(timeout: Duration) -> Setup {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path(), SENTINEL);
    let options = KubeOptions {
        kubeconfig: Some(kubeconfig),
        context: None,
        keep: false,
        timeouts: KubeTimeouts::uniform(timeout),
        ..KubeOptions::default()
    };
    let env = KubeEnvironment::connect(options)
        .await
        .expect("connect to the fake API");
    Setup {
        api,
        env,
        _dir: dir,
    }
}

fn assert_no_secret(err: &KubeError) {
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(SENTINEL), "credential leaked: {shown}");
}

#[tokio::test]
async fn applies_real_crds_then_fixtures_with_server_side_apply() {
    let mut s = setup(Duration::from_secs(10)).await;
    // Fixtures first in the input: ordering must still put CRDs and Namespaces first.
    let mut input = fixtures();
    input.extend(crds());
    s.env.apply(&input).await.unwrap();

    let patches: Vec<_> = s
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::PATCH)
        .collect();
    assert_eq!(patches.len(), input.len());
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml", "{p:?}");
        assert!(p.query.contains("fieldManager=meshcheck"), "{p:?}");
        assert!(
            !p.query.contains("force=true"),
            "conflicts must surface, not be forced: {p:?}"
        );
    }
    let first_non_crd = patches
        .iter()
        .position(|p| !p.path.contains("customresourcedefinitions"))
        .unwrap();
    assert_eq!(first_non_crd, 20, "all 20 CRDs go first");
    assert_eq!(patches[20].path, "/api/v1/namespaces/istio-test");

    // The Gateway API kinds were unknown to the server until their CRDs were applied:
    // discovery of the group happened after, not before.
    let requests = s.api.requests();
    let discovery = requests
        .iter()
        .position(|r| r.method == Method::GET && r.path == "/apis/gateway.networking.k8s.io/v1")
        .unwrap();
    let gateway_crd = requests
        .iter()
        .position(|r| {
            r.method == Method::PATCH && r.path.ends_with("/gateways.gateway.networking.k8s.io")
        })
        .unwrap();
    assert!(discovery > gateway_crd);

    let route = s
        .api
        .get(
            "gateway.networking.k8s.io",
            "httproutes",
            Some("istio-test"),
            "backend-route",
        )
        .unwrap();
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"][1]["weight"],
        json!(50)
    );
    let dr = s
        .api
        .get(
            "networking.istio.io",
            "destinationrules",
            Some("istio-test"),
            "backend-destination-rule",
        )
        .unwrap();
    assert_eq!(
        dr["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"],
        json!(5)
    );
    assert!(s.env.applied().iter().all(|a| a.created));
}

fn route_status(observed: i64) -> Value {
    json!({"parents": [{"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "istio-gateway", "namespace": "istio-test"},
        "controllerName": "istio.io/gateway-controller",
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": observed},
            {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "observedGeneration": observed}]}]})
}

/// A watch that the server closes mid-wait (API server restarts and load balancers do
/// this) is resumed: the wait still sees the condition that arrives afterwards.
#[tokio::test]
async fn wait_survives_a_dropped_watch() {
    let s = setup(Duration::from_secs(20)).await;
    let Setup { api, env, _dir } = s;
    let mut env = env;
    env.apply(&crds()).await.unwrap();
    let fx = fixtures();
    env.apply(&fx).await.unwrap();
    let routes = only(&fx, "HTTPRoute");
    let watches = |st: &State| {
        st.requests
            .iter()
            .filter(|r| r.query.contains("watch=true") && r.path.ends_with("/httproutes"))
            .count()
    };
    let waiter = env.wait_ready(&routes, &|_| {});
    let server = async {
        api.until(|st| watches(st) >= 1).await;
        api.drop_watches();
        // The client must come back with a new watch before the status changes.
        api.until(|st| watches(st) >= 2).await;
        api.set_status(
            "gateway.networking.k8s.io",
            "httproutes",
            Some("istio-test"),
            "backend-route",
            route_status(1),
        );
    };
    // Bounded: a client that never watched again would leave `server` waiting.
    let (result, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(waiter, server)
    })
    .await
    .expect("the client watched again after the drop, within a minute");
    result.expect("the wait resumes after the watch is dropped");
}

#[tokio::test]
async fn route_wait_ignores_conditions_from_an_older_generation() {
    let mut s = setup(Duration::from_millis(300)).await;
    s.env.apply(&crds()).await.unwrap();
    let fx = fixtures();
    s.env.apply(&fx).await.unwrap();
    s.api.set_status(
        "gateway.networking.k8s.io",
        "httproutes",
        Some("istio-test"),
        "backend-route",
        route_status(1),
    );

    // A changed spec moves the route to generation 2; the controller has not caught up.
    let mut changed = only(&fx, "HTTPRoute");
    let text = std::fs::read_to_string(root().join("fixtures/ingress-canary/httproute.yaml"))
        .unwrap()
        .replace("weight: 50", "weight: 90");
    changed = meshcheck::manifest::load_str(&text, Path::new("httproute-90.yaml"))
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == changed[0].kind)
        .collect();
    s.env.apply(&changed).await.unwrap();
    let route = s
        .api
        .get(
            "gateway.networking.k8s.io",
            "httproutes",
            Some("istio-test"),
            "backend-route",
        )
        .unwrap();
    assert_eq!(route["metadata"]["generation"], json!(2));

    let err = s.env.wait_ready(&changed, &|_| {}).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KubeError::WaitTimeout { .. }), "{text}");
    assert!(
        text.contains("HTTPRoute istio-test/backend-route"),
        "{text}"
    );
    assert!(
        text.contains("observed at generation 1, current generation is 2"),
        "{text}"
    );

    // Now the controller catches up while we wait: the watch must see it.
    let s2 = setup(Duration::from_secs(20)).await;
    let Setup { api, env, _dir } = s2;
    let mut env = env;
    env.apply(&crds()).await.unwrap();
    env.apply(&fx).await.unwrap();
    env.apply(&changed).await.unwrap();
    let routes = only(&changed, "HTTPRoute");
    let progress_seen = std::sync::Mutex::new(Vec::new());
    let waiter = async {
        env.wait_ready(&routes, &|pending| {
            progress_seen.lock().unwrap().extend_from_slice(pending)
        })
        .await
    };
    let controller = async {
        api.until(|st| {
            st.requests
                .iter()
                .any(|r| r.query.contains("watch=true") && r.path.ends_with("/httproutes"))
        })
        .await;
        api.set_status(
            "gateway.networking.k8s.io",
            "httproutes",
            Some("istio-test"),
            "backend-route",
            route_status(2),
        );
    };
    let (result, ()) = tokio::join!(waiter, controller);
    result.unwrap();
    // First what is awaited, then what each sighting of the route still lacked,
    // until the controller caught up.
    let seen = progress_seen.into_inner().unwrap();
    assert!(
        seen.iter()
            .all(|p| p.object == "HTTPRoute istio-test/backend-route"),
        "{seen:?}"
    );
    assert!(
        seen[0].reason.starts_with("waiting for Accepted=True"),
        "{seen:?}"
    );
    assert!(
        seen[1..].iter().any(|p| p
            .reason
            .contains("parent istio-test/istio-gateway: no status from a controller yet")),
        "{seen:?}"
    );
}

fn deployment_status(replicas: i64) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]})
}

fn pod(name: &str, version: &str, sidecar: bool) -> Value {
    let mut containers = vec![json!({"name": "echo", "image": "hashicorp/http-echo"})];
    if sidecar {
        containers.push(json!({"name": "istio-proxy", "image": "istio/proxyv2"}));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "backend", "version": version}},
        "spec": {"containers": containers},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
}

#[tokio::test]
async fn deployment_pods_need_the_injected_sidecar() {
    let mut s = setup(Duration::from_millis(400)).await;
    let fx = fixtures();
    let backends: Vec<Manifest> = fx
        .iter()
        .filter(|m| m.kind == "Namespace" || (m.kind == "Deployment" && m.name == "backend-v2"))
        .cloned()
        .collect();
    s.env.apply(&backends).await.unwrap();
    s.api.set_status(
        "apps",
        "deployments",
        Some("istio-test"),
        "backend-v2",
        deployment_status(2),
    );
    s.api.insert(
        "",
        "pods",
        Some("istio-test"),
        pod("backend-v2-a", "v2", false),
    );
    s.api.insert(
        "",
        "pods",
        Some("istio-test"),
        pod("backend-v2-b", "v2", true),
    );
    // A pod of the other deployment must not count.
    s.api.insert(
        "",
        "pods",
        Some("istio-test"),
        pod("backend-v1-a", "v1", false),
    );

    let seen = std::sync::Mutex::new(Vec::new());
    let err = s
        .env
        .wait_ready(&backends, &|pending| {
            seen.lock().unwrap().push(pending.to_vec())
        })
        .await
        .unwrap_err();
    // While it waited, it said which pods are missing the sidecar; the timeout
    // still came, with the full story.
    let seen = seen.into_inner().unwrap();
    assert_eq!(
        seen.last(),
        Some(&vec![Pending {
            object: "Deployment istio-test/backend-v2".into(),
            reason: "1/2 pods ready (1 without the istio-proxy sidecar)".into(),
        }]),
        "{seen:?}"
    );
    let text = err.to_string();
    assert!(text.contains("pods of Deployment istio-test/backend-v2 (app=backend,version=v2) Ready with the istio-proxy sidecar"), "{text}");
    assert!(
        text.contains("pod backend-v2-a has no istio-proxy sidecar"),
        "{text}"
    );
    assert!(!text.contains("backend-v1-a"), "{text}");

    // The rollout replaces the uninjected pod.
    s.api
        .state
        .lock()
        .unwrap()
        .objects
        .retain(|k, _| k.3 != "backend-v2-a");
    s.api.insert(
        "",
        "pods",
        Some("istio-test"),
        pod("backend-v2-c", "v2", true),
    );
    s.env.wait_ready(&backends, &|_| {}).await.unwrap();
}

#[tokio::test]
async fn deployment_wait_reports_replicas_seen() {
    let mut s = setup(Duration::from_millis(300)).await;
    let fx = fixtures();
    let backends: Vec<Manifest> = fx
        .iter()
        .filter(|m| m.kind == "Namespace" || (m.kind == "Deployment" && m.name == "backend-v1"))
        .cloned()
        .collect();
    s.env.apply(&backends).await.unwrap();
    let mut status = deployment_status(3);
    status["availableReplicas"] = json!(1);
    s.api.set_status(
        "apps",
        "deployments",
        Some("istio-test"),
        "backend-v1",
        status,
    );
    let err = s.env.wait_ready(&backends, &|_| {}).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "timed out after 300ms waiting for Deployment istio-test/backend-v1 available with every replica updated; last seen: 1/3 replicas available, 3 updated"
    );
}

#[tokio::test]
async fn gateway_programmed_and_destination_rules_present() {
    let mut s = setup(Duration::from_secs(20)).await;
    s.env.apply(&crds()).await.unwrap();
    let fx = fixtures();
    let wanted: Vec<Manifest> = fx
        .iter()
        .filter(|m| matches!(m.kind.as_str(), "Namespace" | "Gateway" | "DestinationRule"))
        .cloned()
        .collect();
    s.env.apply(&wanted).await.unwrap();
    let waiter = s.env.wait_ready(&wanted, &|_| {});
    let controller = async {
        s.api
            .until(|st| {
                st.requests
                    .iter()
                    .any(|r| r.query.contains("watch=true") && r.path.ends_with("/gateways"))
            })
            .await;
        s.api.set_status("gateway.networking.k8s.io", "gateways", Some("istio-test"), "istio-gateway", json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": 1}]}));
    };
    let (result, ()) = tokio::join!(waiter, controller);
    result.unwrap();
}

#[tokio::test]
async fn a_tls_secret_is_applied_and_needs_no_status() {
    let mut s = setup(Duration::from_secs(5)).await;
    let mut fx = only(&fixtures(), "Namespace");
    fx.extend(load_file(&root().join("fixtures/ingress-tls/secret.yaml")).unwrap());
    s.env.apply(&fx).await.unwrap();
    // No controller ever writes a Secret's status: present is ready.
    s.env.wait_ready(&fx, &|_| {}).await.unwrap();
    let secret = s
        .api
        .get("", "secrets", Some("istio-test"), "test-devopscube-tls")
        .unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let key = fx[1].to_json()["data"]["tls.key"].clone();
    assert!(key.as_str().is_some_and(|k| k.len() > 100), "{key}");
    assert_eq!(secret["data"]["tls.key"], key);

    // A failed apply names the Secret, not its data.
    s.api
        .fault(Method::PATCH, "secrets/test-devopscube-tls", 500, 1);
    let err = s.env.apply(&fx).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("Secret istio-test/test-devopscube-tls: HTTP 500"),
        "{shown}"
    );
    assert!(!shown.contains(&key.as_str().unwrap()[..40]), "{shown}");
}

async fn with_gateway(timeout: Duration) -> Setup {
    let mut s = setup(timeout).await;
    s.env.apply(&crds()).await.unwrap();
    let fx = fixtures();
    let gw: Vec<Manifest> = fx
        .iter()
        .filter(|m| matches!(m.kind.as_str(), "Namespace" | "Gateway"))
        .cloned()
        .collect();
    s.env.apply(&gw).await.unwrap();
    s
}

fn gateway_key() -> ObjectKey {
    ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("istio-test".into()),
        name: "istio-gateway".into(),
    }
}

#[tokio::test]
async fn gateway_address_from_status_or_service() {
    let s = with_gateway(Duration::from_secs(5)).await;
    s.api.set_status(
        "gateway.networking.k8s.io",
        "gateways",
        Some("istio-test"),
        "istio-gateway",
        json!({"addresses": [{"type": "IPAddress", "value": "172.18.255.200"}]}),
    );
    assert_eq!(
        s.env.gateway_address(&gateway_key(), 80).await.unwrap(),
        "172.18.255.200:80".parse().unwrap()
    );

    let s = with_gateway(Duration::from_secs(5)).await;
    s.api.insert("", "services", Some("istio-test"), json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "istio-gateway-istio", "labels": {"gateway.networking.k8s.io/gateway-name": "istio-gateway"}},
        "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.201"}]}}}));
    assert_eq!(
        s.env.gateway_address(&gateway_key(), 8080).await.unwrap(),
        "172.18.255.201:8080".parse().unwrap()
    );
}

#[tokio::test]
async fn gateway_without_address_times_out_with_what_was_seen() {
    let s = with_gateway(Duration::from_millis(200)).await;
    let err = s.env.gateway_address(&gateway_key(), 80).await.unwrap_err();
    assert!(matches!(err, KubeError::NoAddress { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("no load balancer ingress on Service istio-gateway-istio"),
        "{err}"
    );
}

#[tokio::test]
async fn cleanup_deletes_only_what_this_run_created_in_reverse_and_waits() {
    let mut s = setup(Duration::from_secs(20)).await;
    // The namespace exists already (someone else's): it must survive.
    s.api.insert("", "namespaces", None, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-test", "labels": {"istio-injection": "enabled"}}}));
    s.api.insert(
        "",
        "configmaps",
        Some("istio-test"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-ours"}}),
    );
    let fx = only(&fixtures(), "Service");
    let ns = only(&fixtures(), "Namespace");
    s.env.apply(&[ns, fx].concat()).await.unwrap();
    assert_eq!(s.env.applied().iter().filter(|a| a.created).count(), 2);

    s.api.state.lock().unwrap().hold_deletions = true;
    let api = s.api.clone();
    let mut cleanup = tokio::spawn(s.env.cleanup());
    let report = loop {
        tokio::select! {
            report = &mut cleanup => break report.unwrap(),
            () = api.until(|st| st.objects.values().any(|o| o.pointer("/metadata/deletionTimestamp").is_some())) => {
                // The object is still there (a finalizer runs): cleanup must still be waiting.
                assert!(!cleanup.is_finished());
                api.release_deletions();
            }
        }
    };
    assert_eq!(
        report.removed,
        [
            "Service istio-test/backend-v2",
            "Service istio-test/backend-v1"
        ]
    );
    assert!(report.failed.is_empty(), "{report:?}");
    let deletes: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        deletes,
        [
            "/api/v1/namespaces/istio-test/services/backend-v2",
            "/api/v1/namespaces/istio-test/services/backend-v1"
        ]
    );
    assert!(api.get("", "namespaces", None, "istio-test").is_some());
    assert!(
        api.get("", "configmaps", Some("istio-test"), "not-ours")
            .is_some()
    );
}

#[tokio::test]
async fn keep_leaves_everything() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = KubeOptions {
        kubeconfig: Some(api.write_kubeconfig(dir.path(), SENTINEL)),
        keep: true,
        ..Default::default()
    };
    let mut env = KubeEnvironment::connect(options).await.unwrap();
    env.apply(&only(&fixtures(), "Namespace")).await.unwrap();
    let report = env.cleanup().await;
    assert!(report.removed.is_empty() && report.failed.is_empty());
    assert!(api.get("", "namespaces", None, "istio-test").is_some());
}

#[tokio::test]
async fn cleanup_reports_failures_and_carries_on() {
    let mut s = setup(Duration::from_secs(5)).await;
    s.env
        .apply(&[only(&fixtures(), "Namespace"), only(&fixtures(), "Service")].concat())
        .await
        .unwrap();
    s.api.fault(Method::DELETE, "services/backend-v2", 500, 1);
    let report = s.env.cleanup().await;
    assert_eq!(
        report.removed,
        ["Service istio-test/backend-v1", "Namespace istio-test"]
    );
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].starts_with("Service istio-test/backend-v2: HTTP 500 InternalError"),
        "{:?}",
        report.failed
    );
}

#[tokio::test]
async fn forbidden_get_is_reported_without_the_token() {
    let mut s = setup(Duration::from_secs(5)).await;
    s.api
        .fault_echoing_authorization(Method::GET, "/deployments/backend-v1", 403);
    let err = s
        .env
        .apply(
            &fixtures()
                .into_iter()
                .filter(|m| {
                    m.kind != "DestinationRule" && m.kind != "Gateway" && m.kind != "HTTPRoute"
                })
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(403));
    let text = err.to_string();
    assert!(text.starts_with("failed to get Deployment istio-test/backend-v1: HTTP 403 Forbidden: request with Authorization: Bearer <redacted>"), "{text}");
    assert_no_secret(&err);
}

#[tokio::test]
async fn conflict_and_server_errors_on_apply_point_at_the_file() {
    let mut s = setup(Duration::from_secs(5)).await;
    let fx = [only(&fixtures(), "Namespace"), only(&fixtures(), "Service")].concat();
    s.api.fault(Method::PATCH, "services/backend-v1", 409, 1);
    let err = s.env.apply(&fx).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("fixtures/ingress-canary/backends.yaml:"),
        "{text}"
    );
    assert!(
        text.contains("failed to apply Service istio-test/backend-v1: HTTP 409 Conflict"),
        "{text}"
    );

    s.api.fault(Method::PATCH, "services/backend-v2", 500, 1);
    let err = s.env.apply(&fx).await.unwrap_err();
    assert_eq!(err.status_code(), Some(500));
    assert!(
        err.to_string()
            .contains("Service istio-test/backend-v2: HTTP 500 InternalError"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_kind_is_located() {
    let mut s = setup(Duration::from_secs(5)).await;
    // Gateway API CRDs are not installed: the kind is not served.
    let err = s
        .env
        .apply(&only(&fixtures(), "HTTPRoute"))
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::UnknownKind { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("httproute.yaml:")
            && text
                .contains("HTTPRoute (gateway.networking.k8s.io/v1) is not served by the cluster"),
        "{text}"
    );
    assert_eq!(err.status_code(), Some(404));
}

#[tokio::test]
async fn unreachable_server_is_named_without_credentials() {
    // A port that was just free: connection refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, format!("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n    token: {SENTINEL}\n")).unwrap();
    let err = KubeEnvironment::connect(KubeOptions {
        kubeconfig: Some(path),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, KubeError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "failed to reach the API server at http://127.0.0.1:{port}/"
        )),
        "{err}"
    );
    assert_no_secret(&err);
}

#[tokio::test]
async fn missing_context_and_kubeconfig_errors() {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = api.write_kubeconfig(dir.path(), SENTINEL);
    let err = KubeEnvironment::connect(KubeOptions {
        kubeconfig: Some(path.clone()),
        context: Some("nope".into()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(err, KubeError::Kubeconfig { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert_no_secret(&err);
    let err = KubeEnvironment::connect(KubeOptions {
        kubeconfig: Some(dir.path().join("missing")),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(
        err.to_string().starts_with("failed to load kubeconfig"),
        "{err}"
    );
}

#[tokio::test]
async fn preflight_reports_what_is_missing_then_ready() {
    let mut s = setup(Duration::from_secs(10)).await;
    let report = s.env.preflight().await.unwrap();
    assert!(!report.is_ready());
    assert_eq!(report.missing().len(), 8, "{report}");
    assert!(
        report
            .to_string()
            .contains("MISSING CRD httproutes.gateway.networking.k8s.io Established: not found"),
        "{report}"
    );

    s.env.apply(&crds()).await.unwrap();
    s.api.insert(
        "",
        "namespaces",
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    );
    s.api.insert(
        "apps",
        "deployments",
        Some("istio-system"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod"},
        "spec": {"replicas": 1}, "status": deployment_status(1)}),
    );
    let report = s.env.preflight().await.unwrap();
    assert_eq!(
        report
            .missing()
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["GatewayClass istio Accepted"]
    );
    s.api.insert("gateway.networking.k8s.io", "gatewayclasses", None, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "istio"}, "spec": {"controllerName": "istio.io/gateway-controller"},
        "status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1}]}}));
    let report = s.env.preflight().await.unwrap();
    assert!(report.is_ready(), "{report}");
}

#[tokio::test]
async fn diagnostics_show_conditions_pods_and_proxy_log_redacted() {
    let mut s = setup(Duration::from_secs(10)).await;
    s.env.apply(&crds()).await.unwrap();
    s.env.apply(&fixtures()).await.unwrap();
    s.api.set_status("gateway.networking.k8s.io", "httproutes", Some("istio-test"), "backend-route", json!({"parents": [{"parentRef": {"name": "istio-gateway"},
        "conditions": [{"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "observedGeneration": 1, "message": "backend-v3 missing"}]}]}));
    let mut gw_pod = pod("istio-gateway-istio-1", "gw", false);
    gw_pod["metadata"]["labels"] =
        json!({"gateway.networking.k8s.io/gateway-name": "istio-gateway"});
    s.api.insert("", "pods", Some("istio-test"), gw_pod);
    s.api.set_log(
        "istio-gateway-istio-1",
        &format!("warn envoy upstream reset; token {SENTINEL}\n"),
    );
    let sections = s.env.diagnostics(&["istio-test".to_owned()]).await;
    let all: String = sections
        .iter()
        .map(|d| format!("## {}\n{}\n", d.title, d.body))
        .collect();
    assert!(all.contains("parent istio-gateway: ResolvedRefs=False reason=BackendNotFound observedGeneration=1 backend-v3 missing"), "{all}");
    assert!(all.contains("istio-gateway-istio-1: Running"), "{all}");
    assert!(all.contains("## gateway proxy log istio-test/istio-gateway-istio-1 (last 50 lines)\nwarn envoy upstream reset; token <redacted>"), "{all}");
    assert!(!all.contains(SENTINEL));
    assert!(format!("{:?}", s.env).contains("KubeEnvironment"));
    assert!(!format!("{:?}", s.env).contains(SENTINEL));
}

#[tokio::test]
async fn proxy_stats_without_a_gateway_pod_and_failed_exec_are_named() {
    let mut s = setup(Duration::from_secs(5)).await;
    s.env.apply(&only(&fixtures(), "Namespace")).await.unwrap();
    let err = s.env.proxy_stats(&gateway_key()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "no running pod for gateway Gateway istio-test/istio-gateway"
    );

    // The fake cannot upgrade to a WebSocket: exec must fail with the pod and command named.
    let mut gw_pod = pod("istio-gateway-istio-1", "gw", true);
    gw_pod["metadata"]["labels"] =
        json!({"gateway.networking.k8s.io/gateway-name": "istio-gateway"});
    s.api.insert("", "pods", Some("istio-test"), gw_pod);
    let err = s.env.proxy_stats(&gateway_key()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(r#"failed to exec ["pilot-agent", "request", "GET", "stats"] in istio-test/istio-gateway-istio-1 container istio-proxy: "#),
        "{text}"
    );
    let exec = s
        .api
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/pods/istio-gateway-istio-1/exec"))
        .expect("an exec request");
    assert!(
        exec.query.contains("container=istio-proxy") && exec.query.contains("command=pilot-agent"),
        "{exec:?}"
    );
    assert_no_secret(&err);
}

/// `expect.conditions` on a cluster: the status is read once Istio wrote it for the
/// object's current generation, and a status that stays stale times out saying so.
#[tokio::test]
async fn status_for_conditions_waits_for_the_current_generation() {
    let route_key = ObjectKey {
        kind: "HTTPRoute".into(),
        namespace: Some("istio-test".into()),
        name: "backend-route".into(),
    };
    let s = setup(Duration::from_secs(20)).await;
    let Setup { api, env, _dir } = s;
    let mut env = env;
    env.apply(&crds()).await.unwrap();
    env.apply(&fixtures()).await.unwrap();
    let reader = env.istio_status(std::slice::from_ref(&route_key), Duration::from_secs(20));
    let controller = async {
        api.until(|st| {
            st.requests
                .iter()
                .any(|r| r.query.contains("watch=true") && r.path.ends_with("/httproutes"))
        })
        .await;
        api.set_status(
            "gateway.networking.k8s.io",
            "httproutes",
            Some("istio-test"),
            "backend-route",
            route_status(1),
        );
    };
    let (status, ()) = tokio::join!(reader, controller);
    let status = status.expect("the status arrives while it is awaited");
    let parent = status
        .route(&route_key)
        .and_then(|r| r.parent("Gateway", "istio-test", "istio-gateway", None))
        .expect("Istio's entry for the parent");
    assert_eq!(parent.conditions[0].type_, "Accepted");
    assert!(parent.conditions[0].is_true());

    // Status from an older generation does not count.
    let stale = setup(Duration::from_secs(20)).await;
    let mut env = stale.env;
    env.apply(&crds()).await.unwrap();
    env.apply(&fixtures()).await.unwrap();
    stale.api.set_status(
        "gateway.networking.k8s.io",
        "httproutes",
        Some("istio-test"),
        "backend-route",
        route_status(0),
    );
    let err = env
        .istio_status(&[route_key], Duration::from_millis(300))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KubeError::WaitTimeout { .. }), "{text}");
    assert!(
        text.contains("observed generation 0, the object is at 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_mirror_pods_log_lines_after_the_mark_are_what_it_received() {
    use meshcheck::suite::expect::Receiver;
    let s = setup(Duration::from_secs(5)).await;
    s.api.insert(
        "",
        "services",
        Some("istio-test"),
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "mirror", "namespace": "istio-test"},
        "spec": {"selector": {"app": "backend", "version": "v2"}, "ports": [{"port": 8080}]}}),
    );
    let mut echo = pod("mirror-abc-1", "v2", true);
    echo["metadata"]["namespace"] = json!("istio-test");
    s.api.insert("", "pods", Some("istio-test"), echo);
    let mut other = pod("backend-v1-abc-1", "v1", true);
    other["metadata"]["namespace"] = json!("istio-test");
    s.api.insert("", "pods", Some("istio-test"), other);
    let before = "2026-12-02T01:00:00.100000000Z Echoing back request made to /mirror to client (10.0.0.1:1)\n";
    s.api.set_log("mirror-abc-1", before);
    s.api.set_log(
        "backend-v1-abc-1",
        "2026-12-02T01:00:05Z Echoing back request made to /mirror to client (10.0.0.1:9)\n",
    );
    let receivers = [Receiver {
        service: ObjectKey {
            kind: "Service".into(),
            namespace: Some("istio-test".into()),
            name: "mirror".into(),
        },
        deployments: Vec::new(),
    }];
    let mark = s.env.mark_received(&receivers).await.unwrap();
    s.api.set_log(
        "mirror-abc-1",
        &format!(
            "{before}2026-12-02T01:00:01.5Z Echoing back request made to /mirror?x=1 to client (10.0.0.1:2)\n\
             2026-12-02T01:00:01.6Z some other line\n"
        ),
    );
    // A mirror that must get every request settles once it has them all.
    let received = s
        .env
        .received_since(&mark, &[Some(1)], Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].targets, ["/mirror?x=1"]);
    assert!(received[0].settled);
    // Without a count, two reads that agree settle it; short of that the bound ends
    // the wait and says the records had not settled.
    let received = s
        .env
        .received_since(&mark, &[None], Duration::from_secs(5))
        .await
        .unwrap();
    assert!(received[0].settled, "{received:?}");
    let received = s
        .env
        .received_since(&mark, &[Some(2)], Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(received[0].targets, ["/mirror?x=1"]);
    assert!(!received[0].settled);
}
