//! The kube target against a real kube-apiserver with etcd and kube-controller-manager's
//! controllers (the kube tier's control plane, `kube-tier/`), where the fake API server
//! of `kube_api.rs` cannot answer for Kubernetes: server-side apply as the API server
//! does it, CEL validation in the Gateway API CRDs, the Deployment and ReplicaSet
//! controllers making pods, namespace finalization.
//!
//! No kubelet runs in this tier yet, so pods never start: what needs running pods
//! (traffic, the `kube::` suite cases) is not here. The tests are ignored in a plain
//! `cargo test`; `scripts/kube-tier.sh` starts the control plane, sets
//! `KUBE_TIER_KUBECONFIG` and runs them with `--ignored`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use meshcheck::manifest::{Manifest, load_file};
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
    assert!(
        versions.istio.is_err(),
        "no istiod runs in this tier: {:?}",
        versions.istio
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

#[tokio::test]
#[ignore = "needs the kube tier's control plane: scripts/kube-tier.sh"]
async fn a_deployment_the_real_controllers_roll_out_but_no_kubelet_runs_is_named_while_waiting() {
    let mut env = connect(Duration::from_secs(4)).await;
    let manifests: Vec<Manifest> = load_file(&root().join("fixtures/ingress-canary/backends.yaml"))
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == "Namespace" || m.kind == "Deployment")
        .collect();
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

    let err = waited.expect_err("no kubelet runs the pods, so they never get Ready");
    let text = err.to_string();
    assert!(text.contains("Deployment istio-test/backend-v1"), "{text}");
    // The real Deployment controller rolled out every replica (its ReplicaSet made the
    // pods), and the wait said so from the status it wrote; none became available, as
    // on a cluster whose nodes cannot run them.
    let reasons: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p.object, p.reason))
        .collect();
    let said = |text: &str| {
        reasons
            .iter()
            .any(|r| r.contains("backend-v1") && r.contains(text))
    };
    assert!(said("0/3 replicas available, 3 updated"), "{reasons:#?}");
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
