//! SIGINT/SIGTERM sent to a real `meshcheck run` in each phase: the run stops
//! promptly, cleans up what it created, says so, exits 130, and leaves no process and
//! no temporary file behind.

use std::path::Path;
use std::time::Duration;

use crate::support::process::{
    Run, assert_nothing_remains, envoy, send_signal, wait_for_descendants,
};

/// Generous for a loaded CI machine, far below the suites' own timeouts (10 min), so
/// a run that ignores the signal fails the test instead of finishing on its own.
const PROMPTLY: Duration = Duration::from_secs(30);

/// Interrupts `suite` once stderr shows `phase_line`, then checks the aftermath.
fn interrupt_at(suite: &str, phase_line: &str, signal: libc::c_int, envoy_path: &Path) -> String {
    let suite_path = format!("tests/reliability/{suite}");
    // The report is written on the way out, after cleanup: it must not land in the repo.
    let reports = tempfile::tempdir().expect("temp dir for the report");
    let report = reports.path().join("report.json");
    let mut run = Run::start(
        &["run", &suite_path, "--json", &report.display().to_string()],
        &[("MESHCHECK_ENVOY", envoy_path)],
    );
    run.wait_for_line(phase_line, Duration::from_secs(120));
    // Envoy and five echo replicas (the seed's backends).
    let children = wait_for_descendants(run.pid(), 6, Duration::from_secs(60));
    let tmp = run.tmp.path().display().to_string();
    send_signal(run.pid(), signal);
    let finished = run.finish(PROMPTLY);
    assert_eq!(finished.code, Some(130), "stderr:\n{}", finished.stderr);
    let name = if signal == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    assert!(
        finished.stderr.contains(&format!("INTERRUPTED by {name}")),
        "{}",
        finished.stderr
    );
    assert_nothing_remains(&children, &tmp, &finished);
    finished.stderr
}

#[test]
fn sigint_during_traffic_stops_cleans_up_and_exits_130() {
    let stderr = interrupt_at(
        "long-traffic.yaml",
        "traffic long-traffic",
        libc::SIGINT,
        &envoy(),
    );
    // The graceful path: every process stopped by name, the temp dir removed.
    assert!(
        stderr.contains("cleanup long-traffic: removed stopped Envoy (pid"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stopped echo istio-test/backend-v1-0"),
        "{stderr}"
    );
    assert!(stderr.contains("removed /"), "{stderr}");
    assert!(stderr.contains("(interrupted)"), "{stderr}");
}

#[test]
fn sigterm_during_convergence_stops_cleans_up_and_exits_130() {
    let stderr = interrupt_at(
        "never-converges.yaml",
        "converge never-converges",
        libc::SIGTERM,
        &envoy(),
    );
    assert!(
        stderr.contains("cleanup never-converges: removed stopped Envoy (pid"),
        "{stderr}"
    );
}

#[test]
fn sigint_during_bring_up_stops_what_started_and_exits_130() {
    let stand_in = crate::support::process::repo().join("tests/reliability/envoy-never-ready.sh");
    let stderr = interrupt_at(
        "long-traffic.yaml",
        "bring-up long-traffic",
        libc::SIGINT,
        &stand_in,
    );
    assert!(
        stderr.contains(
            "cleanup long-traffic: removed killed the Envoy and echo processes started so far"
        ),
        "{stderr}"
    );
}
