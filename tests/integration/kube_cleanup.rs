//! Cleanup that survives a crash, against the fake API server: every object a run
//! creates carries its run id; a run killed with SIGKILL leaves them, and
//! `meshcheck cleanup` finds and deletes them by run id or age, never an object
//! without meshcheck's labels; `--dry-run` deletes nothing; `--keep-on-failure` leaves
//! a failed suite's objects and prints the command that removes them.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::reliability_kube::{fixture_objects_left, ready_cluster};
use crate::support::fake_api::FakeApi;
use crate::support::process::{Finished, Run, send_signal};
use http::Method;
use meshcheck::manifest::load_file;
use meshcheck::targets::kube::run_id::{APPLIED_AT_ANNOTATION, MANAGED_BY_LABEL, RUN_ID_LABEL};
use meshcheck::targets::kube::{KubeEnvironment, KubeOptions, RunId};
use serde_json::{Value, json};

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

fn cleanup(kubeconfig: &Path, extra: &[&str]) -> Finished {
    let kubeconfig = kubeconfig.display().to_string();
    let mut args = vec!["cleanup", "--kubeconfig", &kubeconfig];
    args.extend_from_slice(extra);
    Run::start(&args, &[]).finish(Duration::from_secs(60))
}

/// The run id from the terminal header (`..., run id ID`).
fn run_id_in(line: &str) -> String {
    line.split("run id ")
        .nth(1)
        .unwrap_or_else(|| panic!("no run id in {line:?}"))
        .split([',', ' '])
        .next()
        .unwrap()
        .to_owned()
}

fn label<'v>(object: &'v Value, key: &str) -> Option<&'v str> {
    object.pointer("/metadata/labels")?.get(key)?.as_str()
}

/// A Deployment someone else made, named like a fixture's, without meshcheck's labels.
fn namesake() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "backend-v1", "labels": {"app": "backend"}},
        "spec": {"replicas": 1}})
}

#[tokio::test]
async fn every_object_a_run_creates_carries_its_run_id_and_preexisting_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    // Someone else's Deployment, in the fixtures' namespace under a fixture's name.
    api.insert("apps", "deployments", Some("istio-test"), namesake());
    let run = RunId::from_label_value("run-under-test").unwrap();
    let mut env = KubeEnvironment::connect(KubeOptions {
        kubeconfig: Some(kubeconfig),
        run_id: Some(run.clone()),
        ..KubeOptions::default()
    })
    .await
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingress-canary");
    let fixtures: Vec<_> = ["backends.yaml", "gateway.yaml", "httproute.yaml"]
        .iter()
        .flat_map(|f| load_file(&root.join(f)).unwrap())
        .collect();
    env.apply(&fixtures).await.unwrap();
    let state = api.state.lock().unwrap();
    let mut labelled = 0;
    for ((_, plural, ns, name), object) in &state.objects {
        let ours = fixtures.iter().any(|m| m.name == *name)
            && (ns.as_deref() == Some("istio-test") || plural == "namespaces");
        if !ours {
            continue;
        }
        if plural == "deployments" && name == "backend-v1" {
            assert_eq!(label(object, RUN_ID_LABEL), None, "{object}");
            continue;
        }
        assert_eq!(
            label(object, RUN_ID_LABEL),
            Some("run-under-test"),
            "{plural}/{name}"
        );
        assert_eq!(
            label(object, MANAGED_BY_LABEL),
            Some("meshcheck"),
            "{plural}/{name}"
        );
        assert!(
            object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(APPLIED_AT_ANNOTATION))
                .is_some(),
            "{plural}/{name}: {object}"
        );
        labelled += 1;
    }
    assert_eq!(
        labelled,
        fixtures.len() - 1,
        "every fixture but the namesake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_sigkill_leaves_what_cleanup_by_run_id_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    api.insert("apps", "deployments", Some("elsewhere"), namesake());
    let mut run = run_kube(&kubeconfig, &[]);
    let header = run.wait_for_line("run id ", Duration::from_secs(60));
    let run_id = run_id_in(&header);
    run.wait_for_line("waiting for readiness", Duration::from_secs(60));
    send_signal(run.pid(), libc::SIGKILL);
    let killed = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(killed.code, None, "killed by a signal: {}", killed.stderr);
    let left = fixture_objects_left(&api);
    assert!(!left.is_empty(), "SIGKILL leaves what was applied");

    let listed = {
        let kubeconfig = kubeconfig.clone();
        let run_id = run_id.clone();
        tokio::task::spawn_blocking(move || {
            cleanup(&kubeconfig, &["--run-id", &run_id, "--dry-run"])
        })
        .await
        .unwrap()
    };
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(
        listed.stdout.contains("Deployment istio-test/backend-v1"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("dry run: nothing deleted"),
        "{}",
        listed.stdout
    );
    assert_eq!(
        fixture_objects_left(&api),
        left,
        "--dry-run deletes nothing"
    );

    let removed = {
        let kubeconfig = kubeconfig.clone();
        tokio::task::spawn_blocking(move || cleanup(&kubeconfig, &["--run-id", &run_id]))
            .await
            .unwrap()
    };
    assert_eq!(
        removed.code,
        Some(0),
        "{}\n{}",
        removed.stdout,
        removed.stderr
    );
    assert!(
        removed
            .stdout
            .contains("deleted Deployment istio-test/backend-v1"),
        "{}",
        removed.stdout
    );
    assert!(removed.stdout.contains("failed 0"), "{}", removed.stdout);
    assert_eq!(
        fixture_objects_left(&api),
        Vec::<String>::new(),
        "{}",
        removed.stdout
    );
    assert!(api.get("", "namespaces", None, "istio-test").is_none());
    // Neither the unlabelled namesake nor the cluster's infrastructure is touched.
    assert!(
        api.get("apps", "deployments", Some("elsewhere"), "backend-v1")
            .is_some()
    );
    assert!(
        api.get("apps", "deployments", Some("istio-system"), "istiod")
            .is_some()
    );
    assert!(
        api.get(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            "httproutes.gateway.networking.k8s.io"
        )
        .is_some()
    );
}

/// An object as an earlier run would have left it, applied `ago`.
fn leftover(api: &FakeApi, name: &str, run: &str, ago: Duration) {
    let at = humantime::format_rfc3339_seconds(SystemTime::now() - ago).to_string();
    api.insert(
        "",
        "configmaps",
        Some("default"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name,
            "labels": {RUN_ID_LABEL: run, MANAGED_BY_LABEL: "meshcheck"},
            "annotations": {APPLIED_AT_ANNOTATION: at}}}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_than_selects_by_age_and_never_an_unlabelled_object() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    let kubeconfig = api.write_kubeconfig(dir.path(), "cleanup-token");
    leftover(&api, "old", "run-a", Duration::from_secs(3 * 3600));
    leftover(&api, "fresh", "run-b", Duration::from_secs(60));
    api.insert(
        "",
        "configmaps",
        Some("default"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unlabelled",
            "annotations": {APPLIED_AT_ANNOTATION: "2020-01-01T00:00:00Z"}}}),
    );
    let removed =
        tokio::task::spawn_blocking(move || cleanup(&kubeconfig, &["--older-than", "1h"]))
            .await
            .unwrap();
    assert_eq!(
        removed.code,
        Some(0),
        "{}\n{}",
        removed.stdout,
        removed.stderr
    );
    assert!(
        removed
            .stdout
            .contains("found 1 meshcheck object older than 1h"),
        "{}",
        removed.stdout
    );
    assert!(api.get("", "configmaps", Some("default"), "old").is_none());
    assert!(
        api.get("", "configmaps", Some("default"), "fresh")
            .is_some()
    );
    assert!(
        api.get("", "configmaps", Some("default"), "unlabelled")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_needs_a_selection_and_reports_failed_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    let kubeconfig = api.write_kubeconfig(dir.path(), "cleanup-token");
    leftover(&api, "stuck", "run-c", Duration::from_secs(60));
    api.fault(Method::DELETE, "configmaps/stuck", 500, 1);
    let (unselected, failed) = tokio::task::spawn_blocking(move || {
        (
            cleanup(&kubeconfig, &[]),
            cleanup(&kubeconfig, &["--run-id", "run-c"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(unselected.code, Some(2), "{}", unselected.stderr);
    assert_eq!(failed.code, Some(3), "{}\n{}", failed.stdout, failed.stderr);
    assert!(
        failed
            .stderr
            .contains("failed to delete ConfigMap default/stuck"),
        "{}",
        failed.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_on_failure_leaves_a_failed_suites_objects_and_prints_the_command() {
    // A kubeconfig whose path has spaces: the printed command must survive a shell.
    let dir = tempfile::Builder::new()
        .prefix("keep on failure ")
        .tempdir()
        .unwrap();
    let (api, kubeconfig) = ready_cluster(dir.path()).await;
    // The bring-up fails part-way: the HTTPRoute is refused, the rest was applied.
    api.fault(Method::PATCH, "httproutes", 500, usize::MAX);
    let json_path = dir.path().join("kept.json");
    let run = run_kube(
        &kubeconfig,
        &["--keep-on-failure", "--json", json_path.to_str().unwrap()],
    );
    let finished = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(finished.code, Some(3), "{}", finished.stderr);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let left = fixture_objects_left(&api);
    assert!(
        left.iter().any(|o| o == "deployments/backend-v1"),
        "{left:?}"
    );
    let command = finished
        .stderr
        .lines()
        .filter(|line| line.contains("(--keep-on-failure)"))
        .find_map(|line| {
            line.split('`')
                .nth(1)
                .filter(|c| c.starts_with("meshcheck cleanup --run-id "))
        })
        .unwrap_or_else(|| panic!("no cleanup command in:\n{}", finished.stderr))
        .to_owned();
    assert!(command.contains("--kubeconfig"), "{command}");
    // The JSON report keeps what the failed bring-up left, and the same command.
    let cleanup = &report["cleanup"]["long-traffic"];
    assert_eq!(cleanup["remove_later_with"], json!(command), "{report:#}");
    assert!(
        cleanup["kept"]
            .as_array()
            .is_some_and(|kept| kept.contains(&json!("Deployment istio-test/backend-v1"))),
        "{report:#}"
    );
    // The words a shell makes of it.
    let args: Vec<String> = shlex::split(&command)
        .unwrap_or_else(|| panic!("not shell words: {command}"))
        .into_iter()
        .skip(1)
        .collect();
    let removed = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Run::start(&args, &[]).finish(Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(
        removed.code,
        Some(0),
        "{}\n{}",
        removed.stdout,
        removed.stderr
    );
    assert_eq!(
        fixture_objects_left(&api),
        Vec::<String>::new(),
        "{}",
        removed.stdout
    );

    // Without the flag, the same failure removes what was applied, and says so.
    let run = run_kube(&kubeconfig, &["--json", json_path.to_str().unwrap()]);
    let finished = tokio::task::spawn_blocking(move || run.finish(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(finished.code, Some(3), "{}", finished.stderr);
    assert!(
        !finished.stderr.contains("--keep-on-failure"),
        "{}",
        finished.stderr
    );
    assert_eq!(fixture_objects_left(&api), Vec::<String>::new());
    assert!(
        finished
            .stderr
            .lines()
            .any(|line| line.contains("cleanup long-traffic: removed ")
                && line.contains("Deployment istio-test/backend-v1")),
        "{}",
        finished.stderr
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert!(
        report["cleanup"]["long-traffic"]["removed"]
            .as_array()
            .is_some_and(|removed| removed.contains(&json!("Deployment istio-test/backend-v1"))),
        "{report:#}"
    );
}
