//! `meshcheck run`: load suites, bring the target up, run cases, report.

use std::path::PathBuf;

use crate::exit_codes;
use crate::report::{ConformanceRecord, DisplayConfig, RunRecord, TerminalReporter};
use crate::runner::{Interrupt, LocalSettings, RunOptions, TargetSettings};
use crate::targets::kube::KubeOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    /// A real Envoy and echo processes on this machine; no cluster needed.
    Local,
    /// A Kubernetes cluster with Istio and the Gateway API CRDs.
    Kube,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Suite files or directories of them.
    #[arg(default_value = "suites")]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = TargetArg::Local)]
    pub target: TargetArg,
    /// Kubeconfig for the kube target (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for the kube target.
    #[arg(long)]
    pub context: Option<String>,
    /// Leave what the run created in place for inspection (kube target).
    #[arg(long)]
    pub keep: bool,
    /// Leave a failed suite's objects in place and print the `meshcheck cleanup`
    /// command that removes them later (kube target).
    #[arg(long)]
    pub keep_on_failure: bool,
    #[command(flatten)]
    pub filter: super::inspect::FilterArgs,
    /// Write a JSON report (schema: `meshcheck schema report`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a self-contained HTML report with a chart per split case.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write a Gateway API ConformanceReport (YAML, upstream's shape) counting the
    /// suites that carry a `conformance:` key.
    #[arg(long, value_name = "FILE")]
    pub conformance_report: Option<PathBuf>,
    /// How many suites run at once on the local target (each with its own Envoy,
    /// processes and ports). Output stays in suite order.
    #[arg(long, short, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Only failures and the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Envoy binary for the local target (default: installed into the cache on first use).
    #[arg(long, env = "MESHCHECK_ENVOY")]
    pub envoy: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> i32 {
    let suites = match crate::suite::load_all(&args.paths) {
        Ok(suites) => suites,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::BAD_INPUT;
        }
    };
    let target = match args.target {
        TargetArg::Local => {
            if args.keep || args.keep_on_failure {
                // Local processes are children of this run: nothing can outlive it.
                eprintln!(
                    "note: --keep and --keep-on-failure apply to the kube target; the local target stops its processes when the run ends"
                );
            }
            let echo_program = match std::env::current_exe() {
                Ok(path) => path,
                Err(err) => {
                    super::print_error(&err);
                    return exit_codes::SETUP_FAILED;
                }
            };
            TargetSettings::Local(LocalSettings {
                envoy: args.envoy.clone(),
                echo_program,
            })
        }
        TargetArg::Kube if args.jobs > 1 => {
            eprintln!(
                "error: --jobs applies to the local target only: suites on one cluster share namespaces"
            );
            return exit_codes::BAD_INPUT;
        }
        TargetArg::Kube => TargetSettings::Kube(KubeOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            keep: args.keep,
            keep_on_failure: args.keep_on_failure,
            ..KubeOptions::default()
        }),
    };
    let options = RunOptions {
        target,
        filter: args.filter.to_filter(),
        jobs: usize::from(args.jobs),
    };
    let selected = suites
        .iter()
        .flat_map(|s| s.case_ids())
        .filter(|id| options.filter.matches(id))
        .count();
    if selected == 0 {
        eprintln!("error: no case matches the filter");
        return exit_codes::BAD_INPUT;
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::SETUP_FAILED;
        }
    };
    let mut terminal = TerminalReporter::new(
        DisplayConfig::from_env(args.quiet),
        Box::new(std::io::stderr()),
    );
    let mut record = RunRecord::new();
    let mut conformance = ConformanceRecord::new();
    let interrupt = Interrupt::default();
    let summary = runtime.block_on(async {
        watch_signals(interrupt.clone());
        crate::runner::run(&suites, &options, &interrupt, &mut |event| {
            terminal.report(&event);
            record.record(&event);
            conformance.record(&event);
        })
        .await
    });
    let mut code = summary.exit_code();
    if let Some(path) = &args.json
        && let Err(err) = record.write_json(path)
    {
        super::print_error(&err);
        code = code.max(exit_codes::SETUP_FAILED);
    }
    if let Some(path) = &args.junit
        && let Err(err) = record.write_junit(path)
    {
        super::print_error(&err);
        code = code.max(exit_codes::SETUP_FAILED);
    }
    if let Some(path) = &args.conformance_report
        && let Err(err) = conformance.write(path)
    {
        super::print_error(&err);
        code = code.max(exit_codes::SETUP_FAILED);
    }
    if let Some(path) = &args.html
        && let Err(err) = record.write_html(path)
    {
        super::print_error(&err);
        code = code.max(exit_codes::SETUP_FAILED);
    }
    code
}

/// SIGINT and SIGTERM trigger the interrupt; the runner then cleans up and returns.
///
/// A second signal while that cleanup runs exits at once, as most CLIs do: a user who
/// presses Ctrl-C twice wants out (a cluster that stopped answering can make cleanup
/// slow). Local processes still die with us (parent-death signal); a temporary
/// directory or applied cluster objects may remain, and the message says so.
fn watch_signals(interrupt: Interrupt) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut next = async || {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            }
        };
        interrupt.trigger(next().await);
        let second = next().await;
        eprintln!(
            "second {second}: exiting now without finishing cleanup; what was not yet \
             removed may remain (a meshcheck-local-* temporary directory, or objects this \
             run applied to the cluster)"
        );
        std::process::exit(exit_codes::INTERRUPTED);
    });
}
