//! Whole `meshcheck run --target kube` runs against the fake API server, with the test
//! playing the cluster's controllers (Deployments available, injected pods, the
//! Gateway programmed with a loopback address, the route accepted) and a small HTTP
//! server on that address playing the gateway's data plane. One case passes, one fails:
//! `--keep-on-failure` then leaves the suite's objects, and the printed command,
//! pasted as a shell would split it (the kubeconfig's path has spaces), removes them;
//! the JSON report times each phase (readiness per kind, the address, the data plane's
//! time to take the configuration).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::reliability_kube::{
    backend_pod, deployment_available, fixture_objects_left, ready_cluster,
};
use crate::support::fake_api::{FakeApi, State};
use crate::support::process::{Finished, Run};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The gateway's data plane: 200 on `/ok`, 503 on every other path.
async fn serve_gateway() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: http::Request<_>| async move {
                    let status = if req.uri().path() == "/ok" { 200 } else { 503 };
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from_static(b"hello from the gateway")))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A suite in `dir` on the seed's fixtures, its Gateway listening on `port`: case
/// `served` converges and passes, case `broken` never gets a 200 and fails.
fn write_suite(dir: &Path, port: u16) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingress-canary");
    for file in ["backends.yaml", "httproute.yaml", "destinationrules.yaml"] {
        std::fs::copy(fixtures.join(file), dir.join(file)).unwrap();
    }
    let gateway = std::fs::read_to_string(fixtures.join("gateway.yaml"))
        .unwrap()
        .replace("port: 80", &format!("port: {port}"));
    std::fs::write(dir.join("gateway.yaml"), gateway).unwrap();
    let suite = dir.join("one-fails.yaml");
    let case = |name: &str, path: &str| {
        format!(
            "- name: {name}\n  request: {{gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com:{port}/{path}\"}}\n  traffic: {{requests: 20}}\n  expect: {{status: 200}}\n"
        )
    };
    std::fs::write(
        &suite,
        format!(
            "name: one-fails\n\
             fixtures: [backends.yaml, gateway.yaml, httproute.yaml, destinationrules.yaml]\n\
             convergence: {{consecutive: 2, timeout: 2s}}\n\
             cases:\n{}{}",
            case("served", "ok"),
            case("broken", "broken")
        ),
    )
    .unwrap();
    suite
}

/// Plays the controllers: as each object arrives, writes the status that makes it
/// ready, and gives the Deployments their injected pods.
async fn play_controllers(api: &FakeApi) {
    let applied = |plural: &'static str, name: &'static str| {
        move |st: &State| {
            st.objects.keys().any(|(_, p, ns, n)| {
                p == plural && ns.as_deref() == Some("istio-test") && n == name
            })
        }
    };
    for (name, version, replicas) in [("backend-v1", "v1", 3), ("backend-v2", "v2", 2)] {
        api.until(applied("deployments", name)).await;
        api.set_status(
            "apps",
            "deployments",
            Some("istio-test"),
            name,
            deployment_available(replicas),
        );
        for i in 0..replicas {
            api.insert(
                "",
                "pods",
                Some("istio-test"),
                backend_pod(&format!("{name}-{i}"), version, true),
            );
        }
    }
    api.until(applied("gateways", "istio-gateway")).await;
    api.set_status(
        "gateway.networking.k8s.io",
        "gateways",
        Some("istio-test"),
        "istio-gateway",
        json!({"addresses": [{"type": "IPAddress", "value": "127.0.0.1"}], "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": 1}]}),
    );
    api.until(applied("httproutes", "backend-route")).await;
    api.set_status(
        "gateway.networking.k8s.io",
        "httproutes",
        Some("istio-test"),
        "backend-route",
        json!({"parents": [{"parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "istio-gateway", "namespace": "istio-test"},
            "controllerName": "istio.io/gateway-controller",
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1},
                {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "observedGeneration": 1}]}]}),
    );
}

/// `meshcheck run SUITE --target kube --kubeconfig KUBECONFIG EXTRA...`, started.
fn start_kube_run(suite: &Path, kubeconfig: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "run",
        suite.to_str().unwrap(),
        "--target",
        "kube",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    args.extend(extra);
    Run::start(&args, &[])
}

struct Ran {
    api: FakeApi,
    finished: Finished,
    report: Value,
    _dir: tempfile::TempDir,
}

/// Runs the suite once, with `extra` arguments, in a directory whose path has spaces.
async fn run_one_failing_case(extra: &[&str]) -> Ran {
    let dir = tempfile::Builder::new()
        .prefix("kube run with spaces ")
        .tempdir()
        .unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    let gateway = serve_gateway().await;
    let suite = write_suite(dir.path(), gateway.port());
    let json_path = dir.path().join("report.json");
    let mut args = vec!["--json", json_path.to_str().unwrap()];
    args.extend(extra);
    let run = start_kube_run(&suite, &kubeconfig, &args);
    // The controllers play until the run ends, however far it got.
    let controllers = tokio::spawn({
        let api = api.clone();
        async move { play_controllers(&api).await }
    });
    let finished = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(120)))
        .await
        .unwrap();
    controllers.abort();
    let report = serde_json::from_str(
        &std::fs::read_to_string(&json_path)
            .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{}", finished.stderr)),
    )
    .unwrap();
    Ran {
        api,
        finished,
        report,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_on_failure_after_a_failed_case_keeps_the_suite_and_the_printed_command_removes_it() {
    let Ran {
        api,
        finished,
        report,
        _dir,
    } = run_one_failing_case(&["--keep-on-failure"]).await;
    let stderr = &finished.stderr;
    assert_eq!(finished.code, Some(1), "a case failed:\n{stderr}");
    assert!(stderr.contains("PASS"), "{stderr}");
    assert!(stderr.contains("one-fails::broken"), "{stderr}");
    let left = fixture_objects_left(&api);
    assert!(
        left.iter().any(|o| o == "deployments/backend-v1")
            && left.iter().any(|o| o == "gateways/istio-gateway"),
        "{left:?}"
    );
    let command = stderr
        .lines()
        .filter(|line| line.contains("(--keep-on-failure)"))
        .find_map(|line| line.split('`').nth(1))
        .unwrap_or_else(|| panic!("no cleanup command in:\n{stderr}"))
        .to_owned();
    let cleanup = &report["cleanup"]["one-fails"];
    assert_eq!(cleanup["remove_later_with"], json!(command), "{report:#}");
    assert!(
        cleanup["kept"]
            .as_array()
            .unwrap()
            .contains(&json!("Deployment istio-test/backend-v1")),
        "{cleanup}"
    );
    // Pasted into a shell: the words a shell would make of it.
    let words = shlex::split(&command).unwrap_or_else(|| panic!("not shell words: {command}"));
    assert_eq!(words[..2], ["meshcheck", "cleanup"], "{command}");
    let removed = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
        Run::start(&args, &[]).finish(Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(
        removed.code,
        Some(0),
        "{command}\n{}\n{}",
        removed.stdout,
        removed.stderr
    );
    // The pods were the test's (a controller's, which the fake server has not: its
    // garbage collector would remove them with their namespace).
    let left: Vec<String> = fixture_objects_left(&api)
        .into_iter()
        .filter(|o| !o.starts_with("pods/"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "{}", removed.stdout);
}

/// The phases of one suite, as the JSON report has them.
fn phases<'r>(report: &'r Value, suite: &str) -> &'r Vec<Value> {
    report["phase_timings"][suite]
        .as_array()
        .unwrap_or_else(|| panic!("no phase timings for {suite}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_are_timed_per_kind_address_and_data_plane_in_json_and_the_slowest_is_named() {
    let Ran {
        finished, report, ..
    } = run_one_failing_case(&[]).await;
    let stderr = &finished.stderr;
    assert_eq!(finished.code, Some(1), "{stderr}");
    let phases = phases(&report, "one-fails");
    let find = |phase: &str, case: Option<&str>| {
        phases
            .iter()
            .find(|p| p["phase"] == json!(phase) && p["case"].as_str() == case)
            .unwrap_or_else(|| panic!("no {phase} of {case:?} in {phases:#?}"))
    };
    // Readiness, per kind in apply order, each within the whole wait.
    let wait = find("wait", None);
    let kinds: Vec<&str> = wait["ready_by_kind"]
        .as_array()
        .unwrap_or_else(|| panic!("{wait}"))
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "Deployment",
            "Service",
            "Gateway",
            "HTTPRoute",
            "DestinationRule"
        ],
        "{wait}"
    );
    for kind in wait["ready_by_kind"].as_array().unwrap() {
        let seconds = kind["seconds"].as_f64().unwrap();
        assert!(
            (0.0..=wait["seconds"].as_f64().unwrap()).contains(&seconds),
            "{wait}"
        );
    }
    // Each case found its gateway's address in a phase of its own.
    for case in ["served", "broken"] {
        assert!(find("address", Some(case))["seconds"].as_f64().unwrap() >= 0.0);
    }
    // The data plane's time to take the configuration: from the last apply to the
    // first good response, and to two in a row; the broken case never had one.
    let served = &find("converge", Some("served"))["since_config_applied"];
    let first = served["first_good_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{served}"));
    let in_a_row = served["in_a_row_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{served}"));
    assert!(0.0 < first && first <= in_a_row, "{served}");
    assert!(
        in_a_row >= wait["seconds"].as_f64().unwrap(),
        "the readiness wait came between the apply and the first request: {phases:#?}"
    );
    assert_eq!(
        find("converge", Some("broken")).get("since_config_applied"),
        None,
        "{phases:#?}"
    );
    // The terminal names the slowest of them, with what happened inside it.
    let slowest = phases
        .iter()
        .max_by(|a, b| {
            a["seconds"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["seconds"].as_f64().unwrap())
        })
        .unwrap();
    let whose = match slowest["case"].as_str() {
        Some(case) => format!("one-fails::{case}"),
        None => "one-fails".to_owned(),
    };
    let line = format!(
        "Slowest phase: {} of {whose}, {:.3}s",
        slowest["phase"].as_str().unwrap(),
        slowest["seconds"].as_f64().unwrap()
    );
    assert!(stderr.contains(&line), "{line}\nin\n{stderr}");
}

/// A `conditions` case on a cluster reads the status again until it says what the case
/// expects: the Gateway is Programmed (readiness ends) while its listener's status
/// still says ResolvedRefs=False, as when a controller has not yet seen an object
/// applied after the Gateway; it says True only after the case's first read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditions_case_reads_a_clusters_status_again_until_it_converges() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    let gateway = serve_gateway().await;
    let suite = write_suite(dir.path(), gateway.port());
    let text = std::fs::read_to_string(&suite).unwrap();
    let cases_at = text.find("cases:\n").unwrap() + "cases:\n".len();
    let conditions_case = "- name: listener-resolved\n  expect:\n    conditions:\n    - gateway: istio-test/istio-gateway\n      listener: http\n      conditions:\n      - {type: ResolvedRefs, status: \"True\"}\n";
    std::fs::write(&suite, format!("{}{conditions_case}", &text[..cases_at])).unwrap();
    let listener = |resolved: &str| {
        json!({"addresses": [{"type": "IPAddress", "value": "127.0.0.1"}],
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1},
                {"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": 1}],
            "listeners": [{"name": "http", "attachedRoutes": 1,
                "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                "conditions": [{"type": "ResolvedRefs", "status": resolved, "reason": "ResolvedRefs", "observedGeneration": 1}]}]})
    };
    let run = start_kube_run(&suite, &kubeconfig, &[]);
    let controllers = tokio::spawn({
        let api = api.clone();
        async move {
            play_controllers(&api).await;
            api.set_status(
                "gateway.networking.k8s.io",
                "gateways",
                Some("istio-test"),
                "istio-gateway",
                listener("False"),
            );
            // The readiness wait read the Gateway once (a list by its name, which the
            // watch starts with); the case's first status read is the second.
            api.until(|st: &State| {
                st.requests
                    .iter()
                    .filter(|r| {
                        r.path.ends_with("/namespaces/istio-test/gateways")
                            && r.query
                                .contains("fieldSelector=metadata.name%3Distio-gateway")
                    })
                    .count()
                    >= 2
            })
            .await;
            api.set_status(
                "gateway.networking.k8s.io",
                "gateways",
                Some("istio-test"),
                "istio-gateway",
                listener("True"),
            );
        }
    });
    let finished = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(120)))
        .await
        .unwrap();
    controllers.abort();
    assert_eq!(
        finished.code,
        Some(0),
        "{}\n{}",
        finished.stdout,
        finished.stderr
    );
    let said = format!("{}{}", finished.stdout, finished.stderr);
    assert!(said.contains("1 passed, 0 failed"), "{said}");
}
