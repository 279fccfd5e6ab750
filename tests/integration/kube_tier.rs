//! The kube target against a real kube-apiserver with etcd and kube-controller-manager's
//! controllers (the kube tier's control plane, `kube-tier/`), where the fake API server
//! of `kube_api.rs` cannot answer for Kubernetes: server-side apply as the API server
//! does it, CEL validation in the Gateway API CRDs, the Deployment and ReplicaSet
//! controllers making pods, namespace finalization.
//!
//! The kube tier's stand-ins run there too (`kube-tier/stand-in`): the kubelet
//! stand-in runs echo pods as `meshcheck echo` on loopback pod IPs and injects the
//! `istio-proxy` sidecar as Istio's webhook does, and a pod annotation switches on its
//! failure mode (a pod that never gets Ready). The tests are ignored in a plain
//! `cargo test`; `scripts/kube-tier.sh` starts the control plane and the stand-ins,
//! sets `KUBE_TIER_KUBECONFIG` and runs them with `--ignored`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use meshcheck::manifest::{Manifest, ObjectKey, load_file};
use meshcheck::runner::Pending;
use meshcheck::targets::kube::{KubeEnvironment, KubeOptions, KubeTimeouts};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubeconfig() -> PathBuf {
    std::env::var_os("KUBE_TIER_KUBECONFIG")
        .map(PathBuf::from)
        .expect("KUBE_TIER_KUBECONFIG names the control plane's kubeconfig (scripts/kube-tier.sh sets it)")
}

/// Waits bounded by `timeout`, except deleting: the real namespace controller takes a
/// few seconds to empty and finalize a namespace, and each test leaves none behind.
async fn connect(timeout: Duration) -> KubeEnvironment {
    KubeEnvironment::connect(KubeOptions {
        kubeconfig: Some(kubeconfig()),
        timeouts: KubeTimeouts {
            deletion: Duration::from_secs(120),
            ..KubeTimeouts::uniform(timeout)
        },
        ..KubeOptions::default()
    })
    .await
    .expect("connect to the kube tier's API server")
}

fn gateway_api_crds() -> Vec<Manifest> {
    load_file(&root().join("crds/gateway-api-v1.3.0-standard-install.yaml")).unwrap()
}

fn seed_fixtures() -> Vec<Manifest> {
    let dir = root().join("fixtures/ingress-canary");
    ["backends.yaml", "gateway.yaml", "httproute.yaml"]
        .iter()
        .flat_map(|f| load_file(&dir.join(f)).unwrap())
        .collect()
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn real_server_side_apply_versions_and_namespace_finalization() {
    let mut env = connect(Duration::from_secs(60)).await;
    let mut input = seed_fixtures();
    input.extend(gateway_api_crds());
    env.apply(&input)
        .await
        .expect("the seed applies to a real API server");

    let versions = env.versions().await;
    assert_eq!(
        versions.kubernetes.as_deref(),
        Ok("v1.36.1"),
        "the release pinned in kube-tier/go.mod"
    );
    let bundle = versions
        .gateway_api
        .expect("the CRDs carry their bundle version");
    assert_eq!(bundle.version, "v1.3.0");
    assert_eq!(bundle.channel.as_deref(), Some("standard"));
    // The istiod stand-in's Deployment runs the release meshcheck follows.
    assert_eq!(
        versions.istio.as_deref(),
        Ok(meshcheck::cluster::DEFAULT_ISTIO_VERSION)
    );

    // Applying the same objects again is a no-op for server-side apply with the same
    // field manager: nothing conflicts, and what this run created stays its own.
    let created: Vec<String> = env
        .applied()
        .iter()
        .filter(|a| a.created)
        .map(|a| a.key.to_string())
        .collect();
    env.apply(&input).await.expect("a second apply is accepted");
    assert!(
        created.iter().any(|k| k.contains("Namespace istio-test")),
        "{created:?}"
    );

    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(
        report.removed.iter().any(|r| r == "Namespace istio-test"),
        "{report:?}"
    );
    // Cleanup waited for the namespace controller to finalize the namespace (delete
    // what is in it, then drop its finalizer): it is gone, not terminating.
    let namespaces: Api<Namespace> = Api::all(client().await);
    let left = namespaces.get_opt("istio-test").await.unwrap();
    assert!(left.is_none(), "still there: {left:?}");
}

async fn client() -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig()).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Writes `text` as `name` in a fresh directory and loads it.
fn manifests(dir: &tempfile::TempDir, name: &str, text: &str) -> Vec<Manifest> {
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    load_file(&file).unwrap()
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn a_deployment_whose_pods_never_get_ready_is_named_with_the_real_controllers_count() {
    let mut env = connect(Duration::from_secs(4)).await;
    let dir = tempfile::tempdir().unwrap();
    // The kubelet stand-in runs the pod but, by this annotation, never reports it
    // Ready: a cluster whose readiness probe never passes.
    let manifests = manifests(
        &dir,
        "stuck.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-tier-never-ready}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: stuck, namespace: kube-tier-never-ready}\n\
         spec:\n  selector: {matchLabels: {app: stuck}}\n  template:\n\
         \x20   metadata:\n      labels: {app: stuck}\n\
         \x20     annotations: {kube-tier.meshcheck.dev/never-ready: \"true\"}\n\
         \x20   spec:\n      containers:\n\
         \x20     - {name: echo, image: hashicorp/http-echo, args: [\"-text=stuck\"]}\n",
    );
    env.apply(&manifests).await.unwrap();

    let seen: Arc<Mutex<Vec<Pending>>> = Arc::default();
    let heard = seen.clone();
    let waited = env
        .wait_ready(&manifests, &move |pending| {
            heard.lock().unwrap().extend_from_slice(pending)
        })
        .await;
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");

    let err = waited.expect_err("the pod is never Ready");
    let text = err.to_string();
    assert!(
        text.starts_with("timed out after 4s waiting for Deployment kube-tier-never-ready/stuck"),
        "{text}"
    );
    assert!(
        text.contains("last seen: 0/1 replicas available, 1 updated"),
        "{text}"
    );
    // The real Deployment controller rolled out the replica (its ReplicaSet made the
    // pod, the stand-in runs it) and the wait said so from the status it wrote.
    let reasons: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p.object, p.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("stuck") && r.contains("0/1 replicas available, 1 updated")),
        "{reasons:#?}"
    );
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn deployments_in_an_injected_namespace_become_available_with_the_sidecar_and_answer() {
    let mut env = connect(Duration::from_secs(30)).await;
    // The seed's backends: namespace istio-test is labelled istio-injection=enabled.
    let manifests: Vec<Manifest> =
        load_file(&root().join("fixtures/ingress-canary/backends.yaml")).unwrap();
    env.apply(&manifests).await.unwrap();
    let waited = env.wait_ready(&manifests, &|_| {}).await;
    let pods: Api<Pod> = Api::namespaced(client().await, "istio-test");
    let listed = pods
        .list(&kube::api::ListParams::default().labels("app=backend,version=v2"))
        .await;
    let mut answers = Vec::new();
    if let Ok(listed) = &listed {
        for pod in &listed.items {
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
            answers.push(match ip {
                Some(ip) => get(&format!("{ip}:5678"), "/").await,
                None => "no pod IP".to_owned(),
            });
        }
    }
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");

    // The kube target waited for the pods Ready with the sidecar (it expects one in an
    // injected namespace): the webhook injected it, the stand-in reported them Ready.
    waited.expect("the pods become Ready with the istio-proxy sidecar");
    let listed = listed.unwrap();
    assert_eq!(listed.items.len(), 2, "backend-v2 has two replicas");
    for pod in &listed.items {
        let meta = &pod.metadata;
        let containers: Vec<&str> = pod
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(containers, ["echo", "istio-proxy"], "{meta:?}");
        let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).cloned();
        assert_eq!(label("security.istio.io/tlsMode").as_deref(), Some("istio"));
        assert_eq!(
            label("service.istio.io/canonical-name").as_deref(),
            Some("backend")
        );
        assert!(
            meta.annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("sidecar.istio.io/status")),
            "{meta:?}"
        );
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .unwrap();
        assert!(ip.starts_with("127.10."), "a loopback pod IP: {ip}");
    }
    // Each pod is a real `meshcheck echo` on its pod IP and the image's port.
    assert_eq!(answers.len(), 2);
    for answer in &answers {
        assert!(answer.ends_with("hello from backend v2\n"), "{answer}");
    }
}

/// One plain HTTP/1.0 GET of `path` at `address`, the whole answer as text.
async fn get(address: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match tokio::net::TcpStream::connect(address).await {
        Ok(stream) => stream,
        Err(err) => return format!("connect {address}: {err}"),
    };
    let mut answer = String::new();
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    let sent = stream.write_all(request.as_bytes()).await;
    match sent {
        Ok(()) => match stream.read_to_string(&mut answer).await {
            Ok(_) => answer,
            Err(err) => format!("read {address}: {err}"),
        },
        Err(err) => format!("write {address}: {err}"),
    }
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn a_route_the_crds_cel_rules_reject_is_refused_at_its_file() {
    let mut env = connect(Duration::from_secs(30)).await;
    env.apply(&gateway_api_crds()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("route.yaml");
    // A rule may not both redirect and rewrite (a CEL rule of the HTTPRoute CRD that
    // only a real API server evaluates).
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: cel-test}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {name: both, namespace: cel-test}\nspec:\n  rules:\n  - filters:\n\
         \x20   - type: RequestRedirect\n      requestRedirect: {hostname: a.example.com}\n\
         \x20   - type: URLRewrite\n      urlRewrite: {hostname: b.example.com}\n",
    )
    .unwrap();
    let route = load_file(&file).unwrap();
    let refused = env.apply(&route).await;
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");
    let text = refused
        .expect_err("the API server refuses the route")
        .to_string();
    assert!(
        text.contains("route.yaml:5:1"),
        "located at the route: {text}"
    );
    assert!(
        text.contains("HTTP 422")
            && text.contains("spec.rules[0].filters")
            && text.contains(
                "httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both"
            ),
        "the server's own reason: {text}"
    );
}

/// A namespace with one http-echo backend, a Gateway of class istio and a route to it;
/// `gateway_annotations` and `route_annotations` switch on the istiod stand-in's
/// failure modes (flow-style YAML maps).
fn gatewayed_backend(
    dir: &tempfile::TempDir,
    namespace: &str,
    gateway_annotations: &str,
    route_annotations: &str,
) -> Vec<Manifest> {
    manifests(
        dir,
        "gatewayed.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: echo, namespace: {namespace}}}\n\
             spec:\n  selector: {{matchLabels: {{app: echo}}}}\n  template:\n\
             \x20   metadata: {{labels: {{app: echo}}}}\n\
             \x20   spec:\n      containers:\n\
             \x20     - {{name: echo, image: hashicorp/http-echo, args: [\"-text=hello through the gateway\"]}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: echo, namespace: {namespace}}}\n\
             spec:\n  selector: {{app: echo}}\n  ports: [{{port: 80, targetPort: 5678}}]\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
             metadata: {{name: gw, namespace: {namespace}, annotations: {gateway_annotations}}}\n\
             spec:\n  gatewayClassName: istio\n  listeners: [{{name: http, port: 80, protocol: HTTP}}]\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: route, namespace: {namespace}, annotations: {route_annotations}}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [echo.kube-tier.test]\n\
             \x20 rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]\n"
        ),
    )
}

/// One HTTP/1.1 GET of `/` at `address` with a Host header (Envoy, like Istio's
/// gateway, refuses HTTP/1.0), the connection closed after the answer.
async fn get_host(address: std::net::SocketAddr, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = match tokio::net::TcpStream::connect(address).await {
        Ok(stream) => stream,
        Err(err) => return format!("connect {address}: {err}"),
    };
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    match stream.write_all(request.as_bytes()).await {
        Ok(()) => match stream.read_to_string(&mut answer).await {
            Ok(_) => answer,
            Err(err) => format!("read {address}: {err}"),
        },
        Err(err) => format!("write {address}: {err}"),
    }
}

/// The first 200 from `address`, or the last answer after 30 s. Status says the
/// configuration is accepted, not that the data plane has the pods as endpoints yet (on
/// a cluster neither): like the runner's convergence, ask again until the proxy answers.
async fn converged_answer(address: std::net::SocketAddr, host: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut retry = tokio::time::interval(Duration::from_millis(100));
    loop {
        retry.tick().await;
        let answer = get_host(address, host).await;
        if answer.starts_with("HTTP/1.1 200") || tokio::time::Instant::now() >= deadline {
            return answer;
        }
    }
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn a_route_the_controller_never_accepts_is_named_with_its_parent_and_reason() {
    let mut env = connect(Duration::from_secs(8)).await;
    let dir = tempfile::tempdir().unwrap();
    // The istiod stand-in writes Accepted=False for this route's parents, as a
    // controller whose listeners do not take it would.
    let manifests = gatewayed_backend(
        &dir,
        "kube-tier-never-accepted",
        "{}",
        "{kube-tier.meshcheck.dev/never-accept: \"true\"}",
    );
    env.apply(&manifests).await.unwrap();
    let waited = env.wait_ready(&manifests, &|_| {}).await;
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");

    let text = waited.expect_err("the route is never accepted").to_string();
    assert!(
        text.starts_with("timed out after 8s waiting for HTTPRoute kube-tier-never-accepted/route"),
        "{text}"
    );
    assert!(
        text.contains(
            "last seen: parent kube-tier-never-accepted/gw: Accepted=False (NotAllowedByListeners)"
        ),
        "{text}"
    );
}

/// The resolver the kube target is given for the stand-in's DNS server, whose port
/// `scripts/kube-tier.sh` names in `KUBE_TIER_DNS_PORT_FILE`.
fn stand_in_resolver() -> hickory_resolver::TokioResolver {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    let file = std::env::var_os("KUBE_TIER_DNS_PORT_FILE")
        .map(PathBuf::from)
        .expect("KUBE_TIER_DNS_PORT_FILE names the istiod stand-in's DNS port file (scripts/kube-tier.sh sets it)");
    let port: u16 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut connection = ConnectionConfig::udp();
    connection.port = port;
    let server = NameServerConfig::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        true,
        vec![connection],
    );
    hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .build()
    .unwrap()
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn a_gateway_addressed_by_a_dns_name_resolves_and_carries_traffic() {
    let env = connect(Duration::from_secs(30)).await;
    let mut env = env.with_resolver(
        stand_in_resolver(),
        meshcheck::targets::kube::address::Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let manifests = gatewayed_backend(
        &dir,
        "kube-tier-dns-address",
        "{kube-tier.meshcheck.dev/address-type: Hostname}",
        "{}",
    );
    env.apply(&manifests).await.unwrap();
    let waited = env.wait_ready(&manifests, &|_| {}).await;
    let gateway = meshcheck::manifest::ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("kube-tier-dns-address".into()),
        name: "gw".into(),
    };
    let address = env.gateway_address(&gateway, 80).await;
    let answer = match &address {
        Ok(address) => converged_answer(*address, "echo.kube-tier.test").await,
        Err(err) => err.to_string(),
    };
    let published: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client().await,
        "kube-tier-dns-address",
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway"),
            "gateways",
        ),
    );
    let status = published
        .get("gw")
        .await
        .map(|g| g.data["status"]["addresses"].clone());
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");

    waited.expect("the gateway and route become ready");
    // The Gateway publishes a name, not an IP; the kube target resolved it through the
    // stand-in's DNS server to the gateway's loopback address.
    assert_eq!(
        status.unwrap(),
        serde_json::json!([{"type": "Hostname", "value": "gw.kube-tier-dns-address.kube-tier.test"}])
    );
    let address = address.unwrap();
    assert!(
        address.ip().to_string().starts_with("127.20.0."),
        "{address}"
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello through the gateway\n"), "{answer}");
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn slow_status_updates_still_converge() {
    let mut env = connect(Duration::from_secs(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let delay = "{kube-tier.meshcheck.dev/status-delay: 3s}";
    let manifests = gatewayed_backend(&dir, "kube-tier-slow-status", delay, delay);
    env.apply(&manifests).await.unwrap();
    let seen: Arc<Mutex<Vec<Pending>>> = Arc::default();
    let heard = seen.clone();
    let started = std::time::Instant::now();
    let waited = env
        .wait_ready(&manifests, &move |pending| {
            heard.lock().unwrap().extend_from_slice(pending)
        })
        .await;
    let took = started.elapsed();
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");

    waited.expect("slow status still converges within the timeout");
    // The wait saw the Gateway with only the status its CRD defaults to (Programmed
    // Unknown, "Waiting for controller") for a while, and lasted at least the delay.
    let reasons: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p.object, p.reason))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("kube-tier-slow-status/gw")
                && r.contains("Waiting for controller")),
        "{reasons:#?}"
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
}

/// `pods/log` through the real API server, which proxies it to the kubelet stand-in's
/// port at the node's address: an echo-basic pod's line for each request it answered
/// (what the kube target reads for `expect.mirror`), with the kubelet's timestamps and
/// its `tailLines` and `sinceTime` options.
/// The conformance base's infra-backend-v1 (echo-basic, two replicas) in its
/// namespace, and nothing else of the base.
fn infra_backend_v1() -> Vec<Manifest> {
    let dir = root().join("fixtures/conformance/base");
    ["namespaces.yaml", "infra-backends.yaml"]
        .iter()
        .flat_map(|f| load_file(&dir.join(f)).unwrap())
        .filter(|m| m.kind != "Namespace" || m.name == "gateway-conformance-infra")
        .filter(|m| m.kind == "Namespace" || m.name == "infra-backend-v1")
        .collect()
}

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn pod_logs_are_served_through_the_api_server_with_the_kubelets_options() {
    let mut env = connect(Duration::from_secs(60)).await;
    let manifests = infra_backend_v1();
    env.apply(&manifests).await.unwrap();
    let waited = env.wait_ready(&manifests, &|_| {}).await;
    let pods: Api<Pod> = Api::namespaced(client().await, "gateway-conformance-infra");
    let mut seen = Vec::new();
    if waited.is_ok()
        && let Ok(listed) = pods
            .list(&kube::api::ListParams::default().labels("app=infra-backend-v1"))
            .await
        && let Some(pod) = listed.items.first()
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        for path in ["/first", "/second"] {
            if let Some(ip) = &ip {
                get(&format!("{ip}:3000"), path).await;
            }
        }
        let read = |params: kube::api::LogParams| {
            let pods = pods.clone();
            let name = name.clone();
            async move { pods.logs(&name, &params).await.map_err(|e| e.to_string()) }
        };
        let all = read(kube::api::LogParams {
            timestamps: true,
            ..Default::default()
        })
        .await;
        let last = read(kube::api::LogParams {
            tail_lines: Some(1),
            ..Default::default()
        })
        .await;
        seen.push(all);
        seen.push(last);
        seen.push(
            read(kube::api::LogParams {
                container: Some("no-such-container".into()),
                ..Default::default()
            })
            .await,
        );
    }
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");
    waited.expect("infra-backend-v1 becomes available");

    let [all, last, unknown] = seen.as_slice() else {
        panic!("no infra-backend-v1 pod to read: {seen:?}");
    };
    let all = all.as_ref().expect("the pod's log");
    let requests: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("Echoing back request made to"))
        .collect();
    assert_eq!(requests.len(), 2, "{all}");
    for (line, path) in requests.iter().zip(["/first", "/second"]) {
        let (stamp, text) = line.split_once(' ').unwrap();
        stamp
            .parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{stamp:?} is not an RFC 3339 stamp: {e}"));
        assert!(
            text.starts_with(&format!("Echoing back request made to {path} ")),
            "{line}"
        );
    }
    let last = last.as_ref().expect("the pod's last line");
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(last.contains("/second"), "{last}");
    // The API server refuses a container the pod does not have before asking the node.
    assert!(unknown.is_err(), "{unknown:?}");
}

/// A case that calls a pod (`request.pod`) calls the IP of a running pod of the
/// Deployment, found through its selector: one of the pods the API server lists.
#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn a_call_to_a_pod_goes_to_the_ip_of_one_of_its_running_pods() {
    let mut env = connect(Duration::from_secs(60)).await;
    let manifests = infra_backend_v1();
    env.apply(&manifests).await.unwrap();
    let waited = env.wait_ready(&manifests, &|_| {}).await;
    let deployment = ObjectKey {
        kind: "Deployment".into(),
        namespace: Some("gateway-conformance-infra".into()),
        name: "infra-backend-v1".into(),
    };
    let found = env.deployment_pod_ip(&deployment).await;
    let pods: Api<Pod> = Api::namespaced(client().await, "gateway-conformance-infra");
    let listed = pods
        .list(&kube::api::ListParams::default().labels("app=infra-backend-v1"))
        .await;
    let missing = env
        .deployment_pod_ip(&ObjectKey {
            name: "no-such-deployment".into(),
            ..deployment.clone()
        })
        .await;
    let report = env.cleanup().await;
    assert!(report.failed.is_empty(), "{report:?}");
    waited.expect("infra-backend-v1 becomes available");

    let ips: Vec<String> = listed
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone()))
        .collect();
    let found = found.expect("a pod IP");
    assert!(ips.contains(&found), "{found} is not one of {ips:?}");
    let missing = missing.expect_err("no such Deployment").to_string();
    assert!(missing.contains("no-such-deployment"), "{missing}");
}

/// A run that selects only a case written after an earlier case's `apply` still
/// applies that edit first: the route is at generation 2 when the late case reads its
/// status, through the real API server (server-side apply bumps the generation) and
/// the istiod stand-in (which writes the status for it).
#[test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
fn a_run_of_a_later_case_applies_the_edits_of_the_cases_before_it() {
    use meshcheck::runner::{
        CaseFilter, Event, Interrupt, Outcome, RunOptions, TargetSettings, run,
    };
    let dir = tempfile::tempdir().unwrap();
    let namespace = "kube-tier-edited";
    gatewayed_backend(&dir, namespace, "{}", "{}");
    std::fs::write(
        dir.path().join("edit.yaml"),
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
             metadata: {{name: route, namespace: {namespace}}}\n\
             spec:\n  parentRefs: [{{name: gw}}]\n  hostnames: [edited.kube-tier.test]\n\
             \x20 rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]\n"
        ),
    )
    .unwrap();
    let route_at = |generation: u32| {
        format!(
            "      conditions:\n        - route: {namespace}/route\n          parent: {namespace}/gw\n\
             \x20         generation: {generation}\n          conditions: [{{type: Accepted, status: \"True\"}}]\n"
        )
    };
    let suite_file = dir.path().join("edited.yaml");
    std::fs::write(
        &suite_file,
        format!(
            "name: edited\nfixtures: [gatewayed.yaml]\nconvergence: {{timeout: 30s}}\ncases:\n\
             \x20 - name: edit\n    apply: [edit.yaml]\n    expect:\n{}\
             \x20 - name: late\n    expect:\n{}",
            route_at(2),
            route_at(2)
        ),
    )
    .unwrap();
    let suite = meshcheck::suite::load_suite(&suite_file).unwrap();
    let options = RunOptions {
        target: TargetSettings::Kube(KubeOptions {
            kubeconfig: Some(kubeconfig()),
            timeouts: KubeTimeouts {
                deletion: Duration::from_secs(120),
                ..KubeTimeouts::uniform(Duration::from_secs(60))
            },
            ..KubeOptions::default()
        }),
        filter: CaseFilter {
            patterns: vec!["edited::late".into()],
            exact: true,
        },
        jobs: 1,
    };
    let mut results = Vec::new();
    let mut cleanup_failed = Vec::new();
    tokio::runtime::Runtime::new().unwrap().block_on(run(
        std::slice::from_ref(&suite),
        &options,
        &Interrupt::default(),
        &mut |event| match event {
            Event::CaseFinished { result } => results.push(*result),
            Event::SuiteFinished { cleanup, .. } => cleanup_failed.extend(cleanup.failed),
            _ => {}
        },
    ));
    assert!(cleanup_failed.is_empty(), "{cleanup_failed:?}");
    assert_eq!(results.len(), 1, "only the late case ran: {results:?}");
    assert_eq!(
        results[0].outcome,
        Outcome::Passed,
        "{}",
        meshcheck::report::failure_block(&results[0])
    );
}
