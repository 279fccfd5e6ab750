//! How to reach a cluster and how long to wait for it.

use std::path::PathBuf;
use std::time::Duration;

use super::run_id::RunId;
use crate::manifest::SourceLocation;
use crate::suite::Suite;

/// What `meshcheck run --target kube [--kubeconfig F] [--context C] [--keep]` passes.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// A kubeconfig file; `None` reads `KUBECONFIG` or `~/.kube/config` as kubectl does.
    pub kubeconfig: Option<PathBuf>,
    /// A context of that kubeconfig; `None` uses its current context.
    pub context: Option<String>,
    /// Leave what the run applied in the cluster.
    pub keep: bool,
    /// Leave a suite's objects in place when a case of it failed, or its bring-up did.
    pub keep_on_failure: bool,
    /// The id every object this run creates is labelled with (see [`super::run_id`]);
    /// `None` for infrastructure meant to stay (`meshcheck cluster up`), which
    /// `meshcheck cleanup` must never find.
    pub run_id: Option<RunId>,
    pub timeouts: KubeTimeouts,
}

impl Default for KubeOptions {
    /// The current kubeconfig and context, a fresh run id, default timeouts.
    fn default() -> Self {
        KubeOptions {
            kubeconfig: None,
            context: None,
            keep: false,
            keep_on_failure: false,
            run_id: Some(RunId::generate()),
            timeouts: KubeTimeouts::default(),
        }
    }
}

/// One timeout per kind of wait, so a slow image pull does not stretch the route wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KubeTimeouts {
    pub crd_established: Duration,
    pub deployment: Duration,
    pub pods: Duration,
    pub gateway: Duration,
    pub route: Duration,
    pub present: Duration,
    /// From Gateway Programmed to a resolvable address: cloud load balancer DNS names can
    /// take minutes to appear.
    pub address: Duration,
    pub deletion: Duration,
    /// Whether these bounds were chosen for the run ([`KubeTimeouts::uniform`]: the
    /// cluster tier's `MESHCHECK_CLUSTER_TIMEOUT`, `cluster up --timeout`) rather than
    /// the built-in defaults. Chosen bounds hold even where a suite's
    /// `readiness.timeout` is longer; the defaults give way to it
    /// ([`KubeTimeouts::for_suite`]).
    pub chosen: bool,
}

impl Default for KubeTimeouts {
    fn default() -> Self {
        KubeTimeouts {
            crd_established: Duration::from_secs(60),
            deployment: Duration::from_secs(300),
            pods: Duration::from_secs(300),
            gateway: Duration::from_secs(300),
            route: Duration::from_secs(120),
            present: Duration::from_secs(30),
            address: Duration::from_secs(300),
            deletion: Duration::from_secs(180),
            chosen: false,
        }
    }
}

impl KubeTimeouts {
    /// Every wait bounded by the same duration (tests, quick smoke runs).
    pub fn uniform(timeout: Duration) -> Self {
        KubeTimeouts {
            crd_established: timeout,
            deployment: timeout,
            pods: timeout,
            gateway: timeout,
            route: timeout,
            present: timeout,
            address: timeout,
            deletion: timeout,
            chosen: true,
        }
    }

    /// The bounds for a suite's readiness wait: where the suite writes a
    /// `readiness.timeout`, no built-in kind bound of readiness ends the wait sooner (a
    /// suite for a cloud load balancer or a slow image pull says how long it may take).
    /// Bounds chosen for the run, and the suite's default timeout, leave them as they
    /// are.
    pub fn for_suite(self, deadline: &ReadinessDeadline) -> KubeTimeouts {
        if self.chosen || deadline.written_at.is_none() {
            return self;
        }
        let at_least = |limit: Duration| limit.max(deadline.timeout);
        KubeTimeouts {
            crd_established: at_least(self.crd_established),
            deployment: at_least(self.deployment),
            pods: at_least(self.pods),
            gateway: at_least(self.gateway),
            route: at_least(self.route),
            present: at_least(self.present),
            ..self
        }
    }
}

/// A suite's `readiness.timeout` as the kube target applies it: a bound on the whole
/// readiness wait (every object is awaited at once, so it runs from the last apply
/// until everything is ready). A kind's own bound in [`KubeTimeouts`] fails its object
/// sooner when it is shorter and was chosen for the run; the built-in ones give way to
/// a timeout the suite writes ([`KubeTimeouts::for_suite`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadinessDeadline {
    pub timeout: Duration,
    /// Where the suite writes `readiness.timeout`; `None` when it keeps the default.
    pub written_at: Option<SourceLocation>,
    /// The suite file, pointed at when the timeout is the default.
    pub suite_file: SourceLocation,
}

impl ReadinessDeadline {
    /// The suite's readiness bound and where it comes from.
    pub fn of_suite(suite: &Suite) -> Self {
        ReadinessDeadline {
            timeout: suite.spec.readiness.timeout,
            written_at: suite.readiness_timeout_at.clone(),
            suite_file: SourceLocation::file_start(&suite.file),
        }
    }
}

impl std::fmt::Display for ReadinessDeadline {
    /// `suite.yaml:9:12: readiness.timeout 2s`, or for the default
    /// `suite.yaml:1:1: readiness.timeout 5m (the default)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let timeout = humantime::format_duration(self.timeout);
        match &self.written_at {
            Some(at) => write!(f, "{at}: readiness.timeout {timeout}"),
            None => write!(
                f,
                "{}: readiness.timeout {timeout} (the default)",
                self.suite_file
            ),
        }
    }
}

/// The environment variable that turns the cluster test tier on.
pub const E2E_ENV: &str = "MESHCHECK_E2E";

/// Whether the cluster tier may run here: `MESHCHECK_E2E=1` and a kubeconfig (from
/// `MESHCHECK_KUBECONFIG`, `KUBECONFIG` or `~/.kube/config`), with an optional
/// `MESHCHECK_CONTEXT`. `Err` carries the reason to print when the tier is skipped.
pub fn cluster_tier_configured() -> Result<KubeOptions, String> {
    cluster_tier_from(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
}

/// [`cluster_tier_configured`] with the environment passed in, for tests.
pub fn cluster_tier_from(env: impl Fn(&str) -> Option<String>) -> Result<KubeOptions, String> {
    match env(E2E_ENV).as_deref() {
        Some("1" | "true") => {}
        Some(other) => {
            return Err(format!(
                "{E2E_ENV}={other:?}; set {E2E_ENV}=1 to run the cluster tier"
            ));
        }
        None => {
            return Err(format!(
                "{E2E_ENV} is not set; set {E2E_ENV}=1 with a kubeconfig to run the cluster tier"
            ));
        }
    }
    let explicit = env("MESHCHECK_KUBECONFIG").map(PathBuf::from);
    let candidates: Vec<PathBuf> = match (&explicit, env("KUBECONFIG")) {
        (Some(path), _) => vec![path.clone()],
        (None, Some(list)) => std::env::split_paths(&list).collect(),
        (None, None) => env("HOME")
            .map(|home| PathBuf::from(home).join(".kube").join("config"))
            .into_iter()
            .collect(),
    };
    if !candidates.iter().any(|p| p.is_file()) {
        let shown: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "{E2E_ENV}=1 but no kubeconfig found (looked at: {})",
            if shown.is_empty() {
                "nothing: HOME is unset".to_owned()
            } else {
                shown.join(", ")
            }
        ));
    }
    Ok(KubeOptions {
        kubeconfig: explicit,
        context: env("MESHCHECK_CONTEXT"),
        keep: env("MESHCHECK_KEEP").as_deref() == Some("1"),
        keep_on_failure: false,
        run_id: Some(RunId::generate()),
        timeouts: KubeTimeouts::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn suite(path: &str) -> Suite {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::suite::load_suite(&root.join(path)).unwrap()
    }

    #[test]
    fn a_written_readiness_timeout_lengthens_the_built_in_kind_bounds_only() {
        let deadline = |timeout: u64, written: bool| ReadinessDeadline {
            timeout: Duration::from_secs(timeout),
            written_at: written.then(|| SourceLocation::file_start(std::path::Path::new("s.yaml"))),
            suite_file: SourceLocation::file_start(std::path::Path::new("s.yaml")),
        };
        let built_in = KubeTimeouts::default();
        let long = built_in.for_suite(&deadline(900, true));
        for limit in [
            long.crd_established,
            long.deployment,
            long.pods,
            long.gateway,
            long.route,
            long.present,
        ] {
            assert_eq!(limit, Duration::from_secs(900));
        }
        // Not readiness: the address and deletion bounds keep theirs.
        assert_eq!(long.address, built_in.address);
        assert_eq!(long.deletion, built_in.deletion);
        // The suite's default timeout, and bounds chosen for the run, stay as they are.
        assert_eq!(built_in.for_suite(&deadline(900, false)), built_in);
        let chosen = KubeTimeouts::uniform(Duration::from_secs(60));
        assert_eq!(chosen.for_suite(&deadline(900, true)), chosen);
    }

    #[test]
    fn the_readiness_deadline_points_at_where_the_suite_sets_it_or_says_default() {
        let set = ReadinessDeadline::of_suite(&suite("tests/reliability/short-readiness.yaml"));
        // A written 3s is shorter than every built-in bound: nothing changes.
        assert_eq!(
            KubeTimeouts::default().for_suite(&set),
            KubeTimeouts::default()
        );
        assert_eq!(set.timeout, Duration::from_secs(3));
        let said = set.to_string();
        assert!(
            said.ends_with("tests/reliability/short-readiness.yaml:11:12: readiness.timeout 3s"),
            "{said}"
        );
        // The same suite without its `readiness:` key.
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("tests/reliability/short-readiness.yaml"))
            .unwrap()
            .replace("readiness:\n  timeout: 3s\n", "")
            .replace(
                "../../fixtures",
                &root.join("fixtures").display().to_string(),
            );
        let file = dir.path().join("unbounded.yaml");
        std::fs::write(&file, text).unwrap();
        let default = ReadinessDeadline::of_suite(&crate::suite::load_suite(&file).unwrap());
        assert_eq!(default.timeout, Duration::from_secs(300));
        let said = default.to_string();
        assert!(
            said.ends_with("unbounded.yaml:1:1: readiness.timeout 5m (the default)"),
            "{said}"
        );
    }

    #[test]
    fn skipped_without_the_switch() {
        let reason = cluster_tier_from(env(&[])).unwrap_err();
        assert!(reason.contains("MESHCHECK_E2E is not set"), "{reason}");
        let reason = cluster_tier_from(env(&[("MESHCHECK_E2E", "0".into())])).unwrap_err();
        assert!(reason.contains("set MESHCHECK_E2E=1"), "{reason}");
    }

    #[test]
    fn skipped_without_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let reason = cluster_tier_from(env(&[
            ("MESHCHECK_E2E", "1".into()),
            ("KUBECONFIG", missing.display().to_string()),
        ]))
        .unwrap_err();
        assert!(
            reason.contains("no kubeconfig found") && reason.contains("nope"),
            "{reason}"
        );
    }

    #[test]
    fn configured_with_a_kubeconfig_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, "apiVersion: v1\nkind: Config\n").unwrap();
        let options = cluster_tier_from(env(&[
            ("MESHCHECK_E2E", "1".into()),
            ("MESHCHECK_KUBECONFIG", file.display().to_string()),
            ("MESHCHECK_CONTEXT", "kind-meshcheck".into()),
        ]))
        .unwrap();
        assert_eq!(options.kubeconfig.as_deref(), Some(file.as_path()));
        assert_eq!(options.context.as_deref(), Some("kind-meshcheck"));
        assert!(!options.keep);
    }
}
