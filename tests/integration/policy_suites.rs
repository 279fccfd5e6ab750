//! The policy suites catch a broken policy. Each test copies a suite and its fixtures
//! into a temporary directory, breaks the policy there (limits lifted, outlier
//! detection removed, maxEjectionPercent raised, route weights changed), runs the case
//! through the real runner on the local target (real Envoy, real echo processes), and
//! checks that it fails with a message that says what differed. That the unmodified
//! suites pass is the suites harness's job (`tests/suites.rs`).

use std::path::{Path, PathBuf};

use meshcheck::runner::{
    CaseFilter, CaseResult, Event, Interrupt, LocalSettings, Outcome, RunOptions, TargetSettings,
};
use meshcheck::suite::load_suite;
use tempfile::TempDir;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces `from` by `to` in a file, insisting that `from` is there: an edit that
/// silently does nothing would let the test pass for the wrong reason.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(from),
        "{} does not contain {from:?}",
        path.display()
    );
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// A copy of `suites/NAME.yaml` and `fixtures/NAME/` with the same layout.
fn copy_suite(name: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("meshcheck-policy-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("suites")).unwrap();
    let fixtures = dir.path().join("fixtures").join(name);
    std::fs::create_dir_all(&fixtures).unwrap();
    for entry in std::fs::read_dir(root().join("fixtures").join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), fixtures.join(entry.file_name())).unwrap();
    }
    let suite = dir.path().join("suites").join(format!("{name}.yaml"));
    std::fs::copy(root().join("suites").join(format!("{name}.yaml")), &suite).unwrap();
    (dir, suite)
}

/// Runs one case of a suite file on the local target and returns its result.
fn run_case(suite_file: &Path, case: &str) -> CaseResult {
    let suite = load_suite(suite_file).unwrap();
    let options = RunOptions {
        target: TargetSettings::Local(LocalSettings {
            envoy: std::env::var_os("MESHCHECK_ENVOY").map(Into::into),
            echo_program: env!("CARGO_BIN_EXE_meshcheck").into(),
        }),
        filter: CaseFilter {
            patterns: vec![format!("{}::{case}", suite.name)],
            exact: true,
        },
        jobs: 1,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut results = Vec::new();
    let mut setup = None;
    runtime.block_on(meshcheck::runner::run(
        std::slice::from_ref(&suite),
        &options,
        &Interrupt::default(),
        &mut |event| match event {
            Event::CaseFinished { result } => results.push(*result),
            Event::SetupFailed { error, .. } => setup = Some(meshcheck::report::one_line(&*error)),
            _ => {}
        },
    ));
    assert_eq!(setup, None, "the suite did not come up");
    assert_eq!(results.len(), 1, "expected one result for {case}");
    results.remove(0)
}

fn assert_failed_with(result: &CaseResult, expected: &[&str]) {
    assert_eq!(
        result.outcome,
        Outcome::Failed,
        "the broken policy passed: {}",
        result.message
    );
    let message = result.message.to_string();
    for text in expected {
        assert!(
            message.contains(text),
            "expected {text:?} in the failure message: {message}"
        );
    }
}

#[test]
fn circuit_breaking_catches_lifted_limits() {
    let (dir, suite) = copy_suite("circuit-breaking");
    let rule = dir
        .path()
        .join("fixtures/circuit-breaking/destinationrule.yaml");
    edit(&rule, "maxConnections: 1\n", "maxConnections: 1000\n");
    edit(
        &rule,
        "http1MaxPendingRequests: 1\n",
        "http1MaxPendingRequests: 1000\n",
    );
    let result = run_case(&suite, "burst-overflows");
    assert_failed_with(
        &result,
        &[
            "expected overflow against outbound|80||slow-backend.istio-test.svc.cluster.local (maxConnections 1000, http1MaxPendingRequests 1000)",
            "none of 20 requests (20 at once) overflowed: 20 were served",
        ],
    );
    assert_eq!(
        result.proxy_counters["outbound|80||slow-backend.istio-test.svc.cluster.local.upstream_rq_pending_overflow"],
        0
    );
}

#[test]
fn circuit_breaking_within_limits_catches_a_tighter_burst() {
    // The converse case must fail too when its load exceeds the limits.
    let (_dir, suite) = copy_suite("circuit-breaking");
    edit(
        &suite,
        "      requests: 4\n      concurrency: 1\n",
        "      requests: 6\n      concurrency: 6\n",
    );
    let result = run_case(&suite, "within-limits-no-overflow");
    assert_failed_with(
        &result,
        &[
            "of 6 requests overflowed (maxConnections 1, http1MaxPendingRequests 1) at concurrency 6",
        ],
    );
}

#[test]
fn outlier_detection_catches_a_missing_policy() {
    let (dir, suite) = copy_suite("outlier-detection");
    edit(
        &dir.path()
            .join("fixtures/outlier-detection/destinationrules.yaml"),
        "    outlierDetection:\n      consecutive5xxErrors: 3\n      interval: 1s\n      baseEjectionTime: 60s\n      maxEjectionPercent: 50\n---",
        "---",
    );
    // Without ejections the case waits for its ejection timeout; keep that short.
    edit(
        &suite,
        "        service: istio-test/backend\n        ejectedHosts: 1\n",
        "        service: istio-test/backend\n        ejectedHosts: 1\n        ejectionTimeout: 1s\n",
    );
    let result = run_case(&suite, "failing-host-ejected");
    assert_failed_with(
        &result,
        &[
            "0 of outbound|80||backend.istio-test.svc.cluster.local's hosts were ejected after",
            "expected 1",
            "consecutive5xxErrors not set",
        ],
    );
}

/// Raises the flaky Service's `maxEjectionPercent` from 50 to 100 in a copied suite, so
/// both of its failing hosts may be ejected.
fn allow_every_flaky_host_ejected(copy: &Path) {
    let rules = copy.join("fixtures/outlier-detection/destinationrules.yaml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let (head, flaky) = text.split_once("name: flaky-outlier").unwrap();
    assert!(flaky.contains("maxEjectionPercent: 50"));
    std::fs::write(
        &rules,
        format!(
            "{head}name: flaky-outlier{}",
            flaky.replace("maxEjectionPercent: 50", "maxEjectionPercent: 100")
        ),
    )
    .unwrap();
}

#[test]
fn outlier_detection_catches_a_raised_max_ejection_percent() {
    let (dir, suite) = copy_suite("outlier-detection");
    allow_every_flaky_host_ejected(dir.path());
    let result = run_case(&suite, "max-ejection-percent-respected");
    assert_failed_with(
        &result,
        &["2 hosts are flagged failed_outlier_check and ejections_active is 2, expected 1 ejected"],
    );
}

/// Two ejections in one cluster: the second reaches Envoy's load balancers only after
/// its update merge window, which the runner waits out before measuring. Without that
/// wait the second-ejected host answered about half of the measured requests.
#[test]
fn two_ejected_hosts_both_get_nothing() {
    let (dir, suite) = copy_suite("outlier-detection");
    allow_every_flaky_host_ejected(dir.path());
    edit(
        &suite,
        "        service: istio-test/flaky\n        ejectedHosts: 1\n",
        "        service: istio-test/flaky\n        ejectedHosts: 2\n",
    );
    let result = run_case(&suite, "max-ejection-percent-respected");
    assert_eq!(result.outcome, Outcome::Passed, "{}", result.message);
    assert_eq!(
        result.status_codes.get(&200),
        Some(&result.requests),
        "{result:?}"
    );
}

#[test]
fn gamma_split_catches_changed_weights() {
    let (dir, suite) = copy_suite("gamma-mesh");
    // The suite pins the intended 80/20; the route in the cluster says 50/50.
    edit(
        &suite,
        "        route: istio-test/backend-mesh-split\n",
        "        route: istio-test/backend-mesh-split\n        weights: {backend-v1: 80, backend-v2: 20}\n",
    );
    let route = dir.path().join("fixtures/gamma-mesh/httproute.yaml");
    edit(&route, "weight: 80", "weight: 50");
    edit(&route, "weight: 20", "weight: 50");
    let result = run_case(&suite, "mesh-weighted-split");
    assert_failed_with(&result, &["expected 80.0%"]);
}

#[test]
fn gamma_route_detached_from_the_service_is_caught() {
    // The route attaches to backend-v1 instead of backend: calls to backend take
    // Istio's default route, to every pod the Service selects, as on a cluster, and
    // the split test catches that the 80/20 route is not in effect.
    let (dir, suite) = copy_suite("gamma-mesh");
    edit(
        &dir.path().join("fixtures/gamma-mesh/httproute.yaml"),
        "    name: backend\n    port: 80\n",
        "    name: backend-v1\n    port: 80\n",
    );
    let result = run_case(&suite, "mesh-weighted-split");
    assert_failed_with(&result, &["expected 80.0%"]);
}
