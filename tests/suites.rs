//! Every case of every suite in `suites/` and `suites/conformance/` as its own test, named `suite::case`, run on
//! the embedded local target (a real Envoy and real echo processes). When a cluster is
//! configured (`MESHCHECK_E2E=1` and a kubeconfig), the same cases also run on it as
//! `kube::suite::case`; otherwise those trials are listed as ignored, with the reason
//! printed once. `MESHCHECK_CLUSTER_CANNOT=exec` says the cluster cannot exec into a
//! pod (the kube tier's stand-ins: no kubelet serves `pods/exec`): the cases that need
//! it (east-west requests from the in-mesh client pod, and the policy probes that read
//! the proxy's stats through `pilot-agent`) are ignored on it, with that reason.
//! `MESHCHECK_CLUSTER_TIMEOUT=60s` bounds each of the cluster tier's waits.
//!
//! On a cluster a suite is brought up once for all of its selected cases, as
//! `meshcheck run --target kube` does: bring-up there (namespaces, pods, the gateway's
//! Deployment and address) and tear-down (namespace finalization) take seconds, which
//! per case would cost hours over the conformance suites. The suite's first trial to
//! run does the run; each trial reports its own case's result. Locally bring-up is one
//! Envoy start, so each case keeps its own run (and the harness's parallelism).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use meshcheck::manifest::Manifest;
use meshcheck::report::failure_block;
use meshcheck::runner::{
    CaseFilter, CaseResult, Event, Interrupt, LocalSettings, Outcome, RunOptions, TargetSettings,
};
use meshcheck::suite::{Case, Entry, Expectation, Suite, load_all};
use meshcheck::targets::kube::{KubeEnvironment, KubeOptions};

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

    let shared_base = kube.as_ref().ok().map(|options| {
        Arc::new(SharedBase::new(
            options.clone(),
            &suites,
            &root.join(BASE_DIR),
        ))
    });
    let mut trials = Vec::new();
    for suite in &suites {
        let batch = kube.as_ref().ok().map(|options| {
            Arc::new(SuiteBatch {
                suite: suite.clone(),
                target: TargetSettings::Kube(options.clone()),
                base: shared_base.clone().filter(|base| base.is_shared_by(suite)),
                cases: Vec::new(),
                outcome: OnceLock::new(),
            })
        });
        let mut batch_cases = Vec::new();
        let mut kube_trials = Vec::new();
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
                (Ok(_), None) => {
                    let name = format!("kube::{id}");
                    let ignored = case.spec.skip.is_some();
                    if selected(&args, &name, ignored) {
                        batch_cases.push(case.name.clone());
                    }
                    kube_trials.push((name, case.name.clone(), ignored));
                    continue;
                }
                (Err(_), _) => {
                    Trial::test(format!("kube::{id}"), || Ok(())).with_ignored_flag(true)
                }
            };
            trials.push(kube_trial);
        }
        // The batch is complete only once every case is seen: its trials share it.
        if let Some(mut batch) = batch {
            Arc::get_mut(&mut batch)
                .expect("no trial holds the batch yet")
                .cases = batch_cases;
            for (name, case, ignored) in kube_trials {
                let batch = Arc::clone(&batch);
                trials.push(
                    Trial::test(name, move || batch.result_of(&case)).with_ignored_flag(ignored),
                );
            }
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(base) = shared_base
        && let Some(failed) = base.remove()
    {
        eprintln!("the conformance base manifests were not all removed: {failed}");
        std::process::exit(101);
    }
    conclusion.exit();
}

/// Where the conformance suites' shared manifests are, from the repository root.
const BASE_DIR: &str = "fixtures/conformance/base";

/// The conformance base manifests on a cluster: applied by the first suite batch that
/// needs them, removed after every trial (see the module text).
struct SharedBase {
    options: KubeOptions,
    /// The base directory, canonical, to tell a suite's base manifests from its own.
    dir: Option<PathBuf>,
    /// The base manifests every suite that has them lists, once each.
    manifests: Vec<Manifest>,
    /// The client's runtime: the environment's connections live on it between trials.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    /// The environment that applied them (it removes them), once they are applied.
    env: Mutex<Option<KubeEnvironment>>,
    applied: OnceLock<Result<(), String>>,
}

impl SharedBase {
    fn new(options: KubeOptions, suites: &[Suite], dir: &Path) -> SharedBase {
        let dir = std::fs::canonicalize(dir).ok();
        let mut base = SharedBase {
            options,
            dir,
            manifests: Vec::new(),
            runtime: Mutex::new(None),
            env: Mutex::new(None),
            applied: OnceLock::new(),
        };
        let mut manifests: Vec<Manifest> = Vec::new();
        for suite in suites {
            for m in suite.manifests.iter().filter(|m| base.is_base(m)) {
                if !manifests.iter().any(|known| known.key() == m.key()) {
                    manifests.push(m.clone());
                }
            }
        }
        base.manifests = manifests;
        base
    }

    fn is_base(&self, m: &Manifest) -> bool {
        let file = std::fs::canonicalize(&*m.location().file).ok();
        matches!((&self.dir, file), (Some(dir), Some(file)) if file.starts_with(dir))
    }

    fn is_shared_by(&self, suite: &Suite) -> bool {
        suite.manifests.iter().any(|m| self.is_base(m))
    }

    /// Applies the base manifests and waits for them, the first time; the outcome
    /// (a failure is every conformance suite's) after that.
    fn ensure(&self) -> Result<(), String> {
        self.applied
            .get_or_init(|| {
                let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
                let applied = runtime.block_on(async {
                    let mut env = KubeEnvironment::connect(self.options.clone())
                        .await
                        .map_err(|e| meshcheck::report::one_line(&e))?;
                    let ready = match env.apply(&self.manifests).await {
                        Ok(()) => env.wait_ready(&self.manifests, &|_| {}).await.map(|_| ()),
                        Err(err) => Err(err),
                    };
                    // Applied in part or whole, it is removed after the trials.
                    *self.env.lock().unwrap_or_else(|e| e.into_inner()) = Some(env);
                    ready.map_err(|e| {
                        format!(
                            "the conformance base manifests ({BASE_DIR}) did not come up: {}",
                            meshcheck::report::one_line(&e)
                        )
                    })
                });
                *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = Some(runtime);
                applied
            })
            .clone()
    }

    /// Removes what [`SharedBase::ensure`] applied; what could not be removed, if any.
    fn remove(&self) -> Option<String> {
        let env = self.env.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let report = runtime.block_on(env.cleanup());
        (!report.failed.is_empty()).then(|| report.failed.join("; "))
    }
}

/// Whether libtest runs the trial `name` with these arguments (its filter, `--skip`,
/// `--exact`, `--ignored`, `--include-ignored`): a suite's batch runs only those cases.
fn selected(args: &Arguments, name: &str, ignored: bool) -> bool {
    let probe = Trial::test(name, || Ok(()));
    let wanted = if ignored {
        args.ignored || args.include_ignored
    } else {
        !args.ignored
    };
    wanted && !args.is_filtered_out(&probe)
}

/// The cases of one suite that run on a cluster, with one bring-up for all of them.
struct SuiteBatch {
    suite: Suite,
    target: TargetSettings,
    /// The conformance base manifests, when the suite lists them.
    base: Option<Arc<SharedBase>>,
    /// The suite's cases that libtest selected, by name.
    cases: Vec<String>,
    outcome: OnceLock<BatchOutcome>,
}

/// What one run of a suite's batch gave: a bring-up or cleanup failure is every
/// case's failure; otherwise each case has its result.
struct BatchOutcome {
    suite_error: Option<String>,
    results: HashMap<String, CaseResult>,
}

impl SuiteBatch {
    /// `case`'s result, running the batch if no trial of the suite has yet (a
    /// concurrent trial of the same suite waits for that run).
    fn result_of(&self, case: &str) -> Result<(), Failed> {
        let outcome = self.outcome.get_or_init(|| self.run());
        if let Some(error) = &outcome.suite_error {
            return Err(error.clone().into());
        }
        match outcome.results.get(case) {
            Some(result) if result.outcome == Outcome::Failed => Err(failure_block(result).into()),
            Some(_) => Ok(()),
            None => Err(format!(
                "{}::{case}: the suite's run gave no result for this case",
                self.suite.name
            )
            .into()),
        }
    }

    fn run(&self) -> BatchOutcome {
        if let Some(Err(error)) = self.base.as_ref().map(|base| base.ensure()) {
            return BatchOutcome {
                suite_error: Some(error),
                results: HashMap::new(),
            };
        }
        let patterns = self
            .cases
            .iter()
            .map(|case| format!("{}::{case}", self.suite.name))
            .collect();
        let (results, suite_error) = run_suite(&self.suite, patterns, self.target.clone());
        BatchOutcome {
            suite_error,
            results: results
                .into_iter()
                .map(|result| (result.name.clone(), result))
                .collect(),
        }
    }
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
    if matches!(case.entry, Entry::Service { .. } | Entry::Pod { .. }) {
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

/// A case on the local target, run on its own (cluster cases run in their suite's
/// batch, [`SuiteBatch`]).
fn trial(id: String, suite: Suite, target: TargetSettings, skipped: bool) -> Trial {
    let case_id = id.clone();
    Trial::test(id, move || run_one(&suite, &case_id, target)).with_ignored_flag(skipped)
}

/// Runs one case through the real runner and turns its result into a test outcome.
fn run_one(suite: &Suite, case_id: &str, target: TargetSettings) -> Result<(), Failed> {
    let (results, setup_error) = run_suite(suite, vec![case_id.to_string()], target);
    if let Some(error) = setup_error {
        return Err(error.into());
    }
    match results.as_slice() {
        [result] if result.outcome == Outcome::Failed => Err(failure_block(result).into()),
        [_] => Ok(()),
        other => Err(format!("expected one result for {case_id}, got {}", other.len()).into()),
    }
}

/// Runs the cases `suite::case` of `patterns` (exact ids) through the real runner: their
/// results, and the bring-up or cleanup failure, in words, if there was one.
fn run_suite(
    suite: &Suite,
    patterns: Vec<String>,
    target: TargetSettings,
) -> (Vec<CaseResult>, Option<String>) {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return (Vec::new(), Some(format!("no tokio runtime: {err}"))),
    };
    let options = RunOptions {
        target,
        filter: CaseFilter {
            patterns,
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
    (results, setup_error)
}
