//! The kube target through the real binary, against a fake API server on loopback:
//! an interrupt while waiting deletes what the run applied; a second interrupt while
//! that deletion hangs exits at once and says what may remain; credentials from
//! the kubeconfig never reach stdout, stderr or the reports; and the cluster's
//! versions reach the terminal header and every report, or say why they are unknown.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::fake_api::FakeApi;
use crate::support::process::{Run, send_signal};
use http::Method;
use meshcheck::manifest::{Manifest, load_file};
use meshcheck::targets::kube::{KubeEnvironment, KubeOptions};
use serde_json::{Value, json};

const TOKEN_SENTINEL: &str = "sentinel-bearer-7d3e91c0aa";
const KEY_SENTINEL: &str = "sentinel-client-key-5b8f02d4e6";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn crds() -> Vec<Manifest> {
    let mut all = load_file(&root().join("crds/gateway-api-v1.3.0-standard-install.yaml")).unwrap();
    all.extend(load_file(&root().join("crds/istio-crd-all.gen.yaml")).unwrap());
    all
}

/// The image of the fake cluster's istiod.
const ISTIOD_IMAGE: &str = "docker.io/istio/pilot:1.26.2-distroless";

/// A fake cluster that passes preflight: CRDs established (with the Gateway API
/// bundle's annotations), istiod available, the `istio` GatewayClass accepted.
/// Nothing else ever becomes ready.
pub(crate) async fn ready_cluster(dir: &Path) -> (FakeApi, PathBuf) {
    ready_cluster_with_istiod(dir, ISTIOD_IMAGE).await
}

async fn ready_cluster_with_istiod(dir: &Path, istiod_image: &str) -> (FakeApi, PathBuf) {
    let api = FakeApi::start().await;
    let kubeconfig = api.write_kubeconfig(dir, "setup-token");
    let mut env = KubeEnvironment::connect(KubeOptions {
        kubeconfig: Some(kubeconfig.clone()),
        keep: true,
        // The cluster's infrastructure, not a run's objects: no run-id label.
        run_id: None,
        ..KubeOptions::default()
    })
    .await
    .unwrap();
    env.apply(&crds()).await.unwrap();
    api.insert(
        "",
        "namespaces",
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    );
    api.insert(
        "apps",
        "deployments",
        Some("istio-system"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "istiod"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "discovery", "image": istiod_image}]}}}, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}),
    );
    api.insert("gateway.networking.k8s.io", "gatewayclasses", None, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "istio"}, "spec": {"controllerName": "istio.io/gateway-controller"},
        "status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1}]}}));
    assert!(env.preflight().await.unwrap().is_ready());
    (api, kubeconfig)
}

/// Objects of the seed fixtures still on the fake server (not counting held ones).
pub(crate) fn fixture_objects_left(api: &FakeApi) -> Vec<String> {
    api.state
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|((_, _, ns, _), o)| {
            ns.as_deref() == Some("istio-test")
                && o.pointer("/metadata/deletionTimestamp").is_none()
        })
        .map(|((_, plural, _, name), _)| format!("{plural}/{name}"))
        .collect()
}

fn run_kube(kubeconfig: &Path, extra: &[&str]) -> Run {
    let kubeconfig = kubeconfig.display().to_string();
    let mut args = vec![
        "run",
        "tests/reliability/long-traffic.yaml",
        "--target",
        "kube",
        "--kubeconfig",
        &kubeconfig,
    ];
    args.extend_from_slice(extra);
    Run::start(&args, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_while_waiting_deletes_what_was_applied_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    let mut run = run_kube(&kubeconfig, &[]);
    run.wait_for_line("waiting for readiness", Duration::from_secs(60));
    assert!(
        !fixture_objects_left(&api).is_empty(),
        "nothing was applied"
    );
    send_signal(run.pid(), libc::SIGINT);
    let finished = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(finished.code, Some(130), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("INTERRUPTED by SIGINT"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains(
            "cleanup long-traffic: removed DestinationRule istio-test/backend-v2-destination-rule"
        ),
        "{}",
        finished.stderr
    );
    assert_eq!(fixture_objects_left(&api), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_interrupt_during_a_hanging_cleanup_exits_at_once_and_says_what_may_remain() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    // Deletions hang (as with a stuck finalizer): cleanup waits on the first one.
    api.state.lock().unwrap().hold_deletions = true;
    let mut run = run_kube(&kubeconfig, &[]);
    run.wait_for_line("waiting for readiness", Duration::from_secs(60));
    send_signal(run.pid(), libc::SIGINT);
    run.wait_for_line("INTERRUPTED by SIGINT", Duration::from_secs(30));
    api.until(|st| {
        st.objects
            .values()
            .any(|o| o.pointer("/metadata/deletionTimestamp").is_some())
    })
    .await;
    send_signal(run.pid(), libc::SIGINT);
    // Far below the deletion timeout the cleanup is waiting on.
    let finished = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(finished.code, Some(130), "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("second SIGINT: exiting now without finishing cleanup"),
        "{}",
        finished.stderr
    );
    assert!(
        finished
            .stderr
            .contains("objects this run applied to the cluster"),
        "{}",
        finished.stderr
    );
}

/// A kubeconfig whose user has a sentinel bearer token and a sentinel client key.
fn kubeconfig_with_sentinels(dir: &Path, server: &str) -> PathBuf {
    use base64_sentinel::encode;
    let key = format!("-----BEGIN PRIVATE KEY-----\n{KEY_SENTINEL}\n-----END PRIVATE KEY-----\n");
    let cert = "-----BEGIN CERTIFICATE-----\nnot-a-certificate\n-----END CERTIFICATE-----\n";
    let path = dir.join("kubeconfig-sentinels");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: {server}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n    token: {TOKEN_SENTINEL}\n    client-key-data: {}\n    client-certificate-data: {}\n",
            encode(key.as_bytes()),
            encode(cert.as_bytes())
        ),
    )
    .unwrap();
    path
}

/// Standard base64, enough for a kubeconfig's `*-data` fields.
mod base64_sentinel {
    pub fn encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

fn assert_no_sentinel(what: &str, text: &str) {
    for sentinel in [TOKEN_SENTINEL, KEY_SENTINEL] {
        assert!(!text.contains(sentinel), "{what} leaks {sentinel}:\n{text}");
    }
}

/// Runs with the sentinel kubeconfig and checks every output, reports included.
fn assert_run_leaks_nothing(kubeconfig: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("report.json");
    let junit = out.path().join("junit.xml");
    let run = run_kube(
        kubeconfig,
        &[
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let finished = run.finish(Duration::from_secs(120));
    assert_ne!(finished.code, Some(0), "{}", finished.stderr);
    assert_no_sentinel("stderr", &finished.stderr);
    assert_no_sentinel("stdout", &finished.stdout);
    for report in [&json, &junit] {
        let text = std::fs::read_to_string(report)
            .unwrap_or_else(|err| panic!("{} was not written: {err}", report.display()));
        assert_no_sentinel(&report.display().to_string(), &text);
    }
    finished.stderr
}

#[test]
fn credentials_never_reach_output_or_reports_with_an_unreachable_server() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_with_sentinels(dir.path(), &format!("https://127.0.0.1:{port}"));
    let stderr = assert_run_leaks_nothing(&kubeconfig);
    assert!(stderr.contains("SETUP FAILED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_output_or_reports_when_the_server_echoes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (api, _) = ready_cluster(dir.path()).await;
    // A careless proxy: every apply fails with the Authorization header in the message.
    api.fault_echoing_authorization(Method::PATCH, "/", 500);
    let kubeconfig = kubeconfig_with_sentinels(dir.path(), &format!("http://{}", api.addr));
    let stderr = tokio::task::spawn_blocking(move || assert_run_leaks_nothing(&kubeconfig))
        .await
        .unwrap();
    assert!(stderr.contains("SETUP FAILED"), "{stderr}");
}

/// A run whose apply fails at once (so it ends quickly, after the versions are read),
/// with its JSON and JUnit reports; returns the stderr and both reports' text.
fn run_until_apply_fails(api: &FakeApi, kubeconfig: &Path) -> (String, Value, String) {
    api.fault(Method::PATCH, "httproutes", 500, usize::MAX);
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("report.json");
    let junit = out.path().join("junit.xml");
    let run = run_kube(
        kubeconfig,
        &[
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let finished = run.finish(Duration::from_secs(120));
    assert_eq!(
        finished.code,
        Some(meshcheck::exit_codes::SETUP_FAILED),
        "{}",
        finished.stderr
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let junit = std::fs::read_to_string(&junit).unwrap();
    (finished.stderr, report, junit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_versions_reach_the_terminal_header_and_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    let (stderr, report, junit) =
        tokio::task::spawn_blocking(move || run_until_apply_fails(&api, &kubeconfig))
            .await
            .unwrap();
    let meshcheck = env!("CARGO_PKG_VERSION");
    assert!(
        stderr.contains(&format!(
            "versions meshcheck {meshcheck}, Istio 1.26.2, Gateway API v1.3.0 (standard), Kubernetes v1.33.1"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("version unknown"), "{stderr}");
    let environment = &report["environment"];
    assert_eq!(environment["target"], "kube", "{environment}");
    assert_eq!(environment["kubernetes"], "v1.33.1", "{environment}");
    assert_eq!(environment["gateway_api"], "v1.3.0", "{environment}");
    assert_eq!(
        environment["gateway_api_channel"], "standard",
        "{environment}"
    );
    assert_eq!(environment["istio"], "1.26.2", "{environment}");
    for property in [
        r#"<property name="kubernetes.version" value="v1.33.1"/>"#,
        r#"<property name="gateway-api.version" value="v1.3.0"/>"#,
        r#"<property name="gateway-api.channel" value="standard"/>"#,
        r#"<property name="istio.version" value="1.26.2"/>"#,
    ] {
        assert!(junit.contains(property), "{property} missing:\n{junit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_cluster_versions_stay_null_and_the_terminal_says_why_once() {
    let dir = tempfile::tempdir().unwrap();
    // istiod pinned by digest: no tag to read.
    let (api, kubeconfig) =
        ready_cluster_with_istiod(dir.path(), "docker.io/istio/pilot@sha256:0123abcd").await;
    // `/version` answers the connection check, then is forbidden.
    api.fault_after(1, Method::GET, "/version", 403);
    // CRDs installed without the Gateway API bundle's annotations.
    {
        let mut state = api.state.lock().unwrap();
        let crd = state
            .objects
            .get_mut(&(
                "apiextensions.k8s.io".to_owned(),
                "customresourcedefinitions".to_owned(),
                None,
                "httproutes.gateway.networking.k8s.io".to_owned(),
            ))
            .unwrap();
        crd["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
    }
    let (stderr, report, junit) =
        tokio::task::spawn_blocking(move || run_until_apply_fails(&api, &kubeconfig))
            .await
            .unwrap();
    let environment = &report["environment"];
    for field in ["kubernetes", "gateway_api", "gateway_api_channel", "istio"] {
        assert_eq!(environment[field], Value::Null, "{field}: {environment}");
    }
    assert_eq!(environment["target"], "kube", "{environment}");
    for property in ["kubernetes.version", "gateway-api.", "istio.version"] {
        assert!(!junit.contains(property), "{property} present:\n{junit}");
    }
    assert!(
        stderr.contains(&format!(
            "versions meshcheck {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{stderr}"
    );
    for reason in [
        "Kubernetes version unknown: GET /version: HTTP 403 Forbidden",
        "Gateway API version unknown: CRD httproutes.gateway.networking.k8s.io has no gateway.networking.k8s.io/bundle-version annotation",
        "Istio version unknown: istiod's image \"docker.io/istio/pilot@sha256:0123abcd\" has no tag",
    ] {
        assert_eq!(stderr.matches(reason).count(), 1, "{reason}:\n{stderr}");
    }
}

/// A pod of `app=backend,version={version}`, Ready, with or without Istio's sidecar.
pub(crate) fn backend_pod(name: &str, version: &str, sidecar: bool) -> Value {
    let mut containers = vec![json!({"name": "echo", "image": "hashicorp/http-echo"})];
    if sidecar {
        containers.push(json!({"name": "istio-proxy", "image": "istio/proxyv2"}));
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "backend", "version": version}},
        "spec": {"containers": containers},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
}

pub(crate) fn deployment_available(replicas: i64) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
        "availableReplicas": replicas, "readyReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]})
}

/// Issue 14, "waiting out loud": a readiness wait that lasts names everything it waits
/// for and why, in one line: first a Deployment whose pods lack the injected sidecar
/// beside the Gateway and the route, then (once those pods are fixed) a Gateway not
/// programmed for want of an address, then a programmed Gateway whose address never
/// appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_readiness_wait_names_each_pending_object_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    let mut run = run_kube(&kubeconfig, &[]);
    let applied = |name: &'static str| {
        move |st: &crate::support::fake_api::State| {
            st.objects.keys().any(|(_, plural, ns, n)| {
                plural == "deployments" && ns.as_deref() == Some("istio-test") && n == name
            })
        }
    };
    api.until(applied("backend-v1")).await;
    api.until(applied("backend-v2")).await;
    for (name, replicas) in [("backend-v1", 3), ("backend-v2", 2)] {
        api.set_status(
            "apps",
            "deployments",
            Some("istio-test"),
            name,
            deployment_available(replicas),
        );
    }
    // backend-v1: one injected pod, two that the webhook missed.
    for (pod, sidecar) in [
        ("backend-v1-a", true),
        ("backend-v1-b", false),
        ("backend-v1-c", false),
    ] {
        api.insert(
            "",
            "pods",
            Some("istio-test"),
            backend_pod(pod, "v1", sidecar),
        );
    }
    for pod in ["backend-v2-a", "backend-v2-b"] {
        api.insert("", "pods", Some("istio-test"), backend_pod(pod, "v2", true));
    }
    let line = run.wait_for_line(
        "Deployment istio-test/backend-v1: 1/3 pods ready (2 without the istio-proxy sidecar)",
        Duration::from_secs(60),
    );
    assert!(line.contains("wait long-traffic: waiting "), "{line}");
    // The objects still pending beside it are named in the same line, each with why.
    for also in [
        "; Gateway istio-test/istio-gateway: ",
        "; HTTPRoute istio-test/backend-route: ",
    ] {
        assert!(line.contains(also), "{also} in {line}");
    }

    // The rollout fixes the pods; now the Gateway waits for an address.
    for pod in ["backend-v1-b", "backend-v1-c"] {
        api.insert("", "pods", Some("istio-test"), backend_pod(pod, "v1", true));
    }
    api.until(|st| {
        st.requests
            .iter()
            .any(|r| r.query.contains("watch=true") && r.path.ends_with("/gateways"))
    })
    .await;
    api.set_status(
        "gateway.networking.k8s.io",
        "gateways",
        Some("istio-test"),
        "istio-gateway",
        json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1},
            {"type": "Programmed", "status": "False", "reason": "AddressNotAssigned",
             "message": "no address assigned yet", "observedGeneration": 1}]}),
    );
    run.wait_for_line(
        "Gateway istio-test/istio-gateway: Programmed=False (AddressNotAssigned): no address assigned yet",
        Duration::from_secs(60),
    );

    // Programmed, the route accepted, but still no address published: the case waits
    // for one, and says so.
    api.set_status("gateway.networking.k8s.io", "gateways", Some("istio-test"), "istio-gateway",
        json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": 1}]}));
    api.set_status("gateway.networking.k8s.io", "httproutes", Some("istio-test"), "backend-route",
        json!({"parents": [{"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "istio-gateway", "namespace": "istio-test"},
            "controllerName": "istio.io/gateway-controller",
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1},
                {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "observedGeneration": 1}]}]}));
    run.wait_for_line(
        "Gateway istio-test/istio-gateway: no address yet",
        Duration::from_secs(60),
    );
    send_signal(run.pid(), libc::SIGINT);
    let finished = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(finished.code, Some(130), "{}", finished.stderr);
}
