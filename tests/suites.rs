//! Every case of every suite in `suites/` and `suites/conformance/` as its own test, named `suite::case`, run on
//! the embedded local target (a real Envoy and real echo processes). When a cluster is
//! configured (`MESHCHECK_E2E=1` and a kubeconfig), the same cases also run on it as
//! `kube::suite::case`; otherwise those trials are listed as ignored, with the reason
//! printed once. `MESHCHECK_CLUSTER_CANNOT=exec` says the cluster cannot exec into a
//! pod (the kube tier's stand-ins: no kubelet serves `pods/exec`): the cases that need
//! it (east-west requests from the in-mesh client pod, and the policy probes that read
//! the proxy's stats through `pilot-agent`) are ignored on it, with that reason.
//! `MESHCHECK_CLUSTER_TIMEOUT=60s` bounds each of the cluster tier's waits.

use std::path::Path;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use meshcheck::report::failure_block;
use meshcheck::runner::{
    CaseFilter, CaseResult, Event, Interrupt, LocalSettings, Outcome, RunOptions, TargetSettings,
};
use meshcheck::suite::{Case, Entry, Expectation, Suite, load_all};

/// What the cluster under test cannot do, comma-separated: `exec` (no `pods/exec`).
const CANNOT_ENV: &str = "MESHCHECK_CLUSTER_CANNOT";
/// Bounds every wait of the cluster tier (`60s`): a cluster on loopback is ready in
/// seconds, so a case that cannot pass there fails in a minute, not in the default
/// minutes a cloud load balancer may need.
const TIMEOUT_ENV: &str = "MESHCHECK_CLUSTER_TIMEOUT";

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The seed's suites and the Gateway API conformance scenarios.
    let dirs: Vec<_> = [root.join("suites"), root.join("suites/conformance")]
        .into_iter()
        .filter(|dir| dir.is_dir())
        .collect();
    let suites = match load_all(&dirs) {
        Ok(suites) => suites,
        Err(err) => panic!("suites/ does not load: {err}"),
    };
    let cases: usize = suites.iter().map(|s| s.cases.len()).sum();
    assert!(
        cases > 0,
        "no suite case found under suites/: a typo must not pass silently"
    );

    let kube = meshcheck::targets::kube::cluster_tier_configured().map(|mut options| {
        if let Some(timeout) = cluster_timeout() {
            options.timeouts = meshcheck::targets::kube::KubeTimeouts::uniform(timeout);
        }
        options
    });
    let cannot_exec = cluster_cannot_exec();
    if let Err(reason) = &kube
        && !args.list
    {
        eprintln!("cluster tier skipped: {reason}");
    }

    let mut trials = Vec::new();
    for suite in &suites {
        for case in &suite.cases {
            let id = format!("{}::{}", suite.name, case.name);
            let local = TargetSettings::Local(LocalSettings {
                envoy: std::env::var_os("MESHCHECK_ENVOY").map(Into::into),
                echo_program: env!("CARGO_BIN_EXE_meshcheck").into(),
            });
            trials.push(trial(
                id.clone(),
                suite.clone(),
                local,
                case.spec.skip.is_some(),
            ));
            let cannot = cannot_exec.then(|| needs_exec(case)).flatten();
            let kube_trial = match (&kube, cannot) {
                (Ok(_), Some(reason)) => Trial::ignorable_test(format!("kube::{id}"), move || {
                    Ok(Completion::ignored_with(format!(
                        "{reason}, and this cluster cannot ({CANNOT_ENV}=exec)"
                    )))
                }),
                (Ok(options), None) => trial(
                    format!("kube::{id}"),
                    suite.clone(),
                    TargetSettings::Kube(options.clone()),
                    case.spec.skip.is_some(),
                ),
                (Err(_), _) => {
                    Trial::test(format!("kube::{id}"), || Ok(())).with_ignored_flag(true)
                }
            };
            trials.push(kube_trial);
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit();
}

/// Whether `MESHCHECK_CLUSTER_CANNOT` says the cluster cannot exec into pods; any
/// other word in it is a typo that must not pass silently.
fn cluster_cannot_exec() -> bool {
    let value = std::env::var(CANNOT_ENV).unwrap_or_default();
    let mut exec = false;
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "exec" => exec = true,
            other => panic!("{CANNOT_ENV}: unknown capability `{other}` (known: exec)"),
        }
    }
    exec
}

/// [`TIMEOUT_ENV`] as a duration; a value that is not one must not pass silently.
fn cluster_timeout() -> Option<std::time::Duration> {
    let value = std::env::var(TIMEOUT_ENV).ok()?;
    match humantime::parse_duration(&value) {
        Ok(timeout) => Some(timeout),
        Err(err) => panic!("{TIMEOUT_ENV}={value:?}: not a duration ({err})"),
    }
}

/// Why the kube target needs `pods/exec` for `case`, if it does: its east-west
/// requests come from curl in the in-mesh client pod, and the policy probes read the
/// proxy's `/stats` and `/clusters` through `pilot-agent request` in the proxy's pod.
fn needs_exec(case: &Case) -> Option<&'static str> {
    if matches!(case.entry, Entry::Service(_)) {
        return Some("east-west requests are sent by exec into the in-mesh client pod");
    }
    match case.expect {
        Expectation::CircuitBreaking(_) | Expectation::OutlierDetection(_) => {
            Some("the proxy's stats are read by exec into its pod (pilot-agent request)")
        }
        // Status-only cases (exp-conditions) send no traffic: nothing to exec.
        Expectation::Responses(_) | Expectation::StatusOnly => None,
    }
}

fn trial(id: String, suite: Suite, target: TargetSettings, skipped: bool) -> Trial {
    let case_id = id.trim_start_matches("kube::").to_string();
    Trial::test(id, move || run_one(&suite, &case_id, target)).with_ignored_flag(skipped)
}

/// Runs one case through the real runner and turns its result into a test outcome.
fn run_one(suite: &Suite, case_id: &str, target: TargetSettings) -> Result<(), Failed> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failed::from(e.to_string()))?;
    let options = RunOptions {
        target,
        filter: CaseFilter {
            patterns: vec![case_id.to_string()],
            exact: true,
        },
        jobs: 1,
    };
    let mut results: Vec<CaseResult> = Vec::new();
    let mut setup_error = None;
    runtime.block_on(meshcheck::runner::run(
        std::slice::from_ref(suite),
        &options,
        &Interrupt::default(),
        &mut |event| match event {
            Event::CaseFinished { result } => results.push(*result),
            Event::SetupFailed { error, .. } => {
                setup_error = Some(meshcheck::report::one_line(&*error))
            }
            Event::SuiteFinished { cleanup, .. } if !cleanup.failed.is_empty() => {
                setup_error = Some(format!("cleanup failed: {}", cleanup.failed.join("; ")));
            }
            _ => {}
        },
    ));
    if let Some(error) = setup_error {
        return Err(error.into());
    }
    match results.as_slice() {
        [result] if result.outcome == Outcome::Failed => Err(failure_block(result).into()),
        [_] => Ok(()),
        other => Err(format!("expected one result for {case_id}, got {}", other.len()).into()),
    }
}
