//! Faults on the local target while a real `meshcheck run` sends traffic: the case
//! fails naming the cause, well within the timeouts, and the run still removes
//! every process and temporary file it created.

use std::time::Duration;

use crate::support::process::{
    Finished, Run, assert_nothing_remains, envoy, send_signal, wait_for_descendants,
};

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

/// Runs the finite suite, kills the processes `select` picks once traffic flows, and
/// returns the finished run after checking that nothing of it remains.
fn kill_during_traffic(select: impl Fn(&str) -> bool) -> Finished {
    let mut run = Run::start(
        &["run", "tests/reliability/finite-traffic.yaml"],
        &[("MESHCHECK_ENVOY", &envoy())],
    );
    run.wait_for_line("traffic finite-traffic", Duration::from_secs(120));
    let children = wait_for_descendants(run.pid(), 6, Duration::from_secs(10));
    let victims: Vec<u32> = children
        .iter()
        .copied()
        .filter(|pid| select(&cmdline(*pid)))
        .collect();
    assert!(!victims.is_empty(), "nothing to kill among {children:?}");
    for pid in &victims {
        send_signal(*pid, libc::SIGKILL);
    }
    let tmp = run.tmp.path().display().to_string();
    // The suite's request timeout is 5 s; a stuck run would take far longer.
    let finished = run.finish(Duration::from_secs(60));
    assert_nothing_remains(&children, &tmp, &finished);
    finished
}

#[test]
fn every_replica_of_a_backend_killed_mid_run_fails_the_case_with_envoys_reason() {
    let finished = kill_during_traffic(|cmd| cmd.contains("-text=hello from backend v2"));
    let stderr = &finished.stderr;
    assert_eq!(finished.code, Some(1), "{stderr}");
    assert!(stderr.contains("FAIL"), "{stderr}");
    // Envoy's own words for a dead upstream reach the case message.
    assert!(
        stderr.contains("got 503 `upstream connect error"),
        "{stderr}"
    );
    // Diagnostics show which processes were gone, and cleanup says so too.
    assert!(stderr.contains("-1 (pid"), "{stderr}");
    assert!(stderr.contains("had already exited"), "{stderr}");
}

#[test]
fn envoy_killed_mid_run_fails_the_case_with_connect_errors() {
    let finished = kill_during_traffic(|cmd| cmd.contains("envoy.json"));
    let stderr = &finished.stderr;
    assert_eq!(finished.code, Some(1), "{stderr}");
    assert!(stderr.contains("failed: connect"), "{stderr}");
    assert!(stderr.contains("Envoy (pid"), "{stderr}");
    assert!(stderr.contains("had already exited: signal: 9"), "{stderr}");
}

#[test]
fn echo_on_a_port_already_in_use_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .args(["echo", "-text=x", &format!("-listen={address}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("failed to listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
}

#[test]
fn a_backend_that_never_answers_fails_on_the_request_timeout() {
    let run = Run::start(
        &["run", "tests/reliability/silent-backend.yaml"],
        &[("MESHCHECK_ENVOY", &envoy())],
    );
    // Convergence gives up after 3 s of 500 ms timeouts; far from an hour.
    let finished = run.finish(Duration::from_secs(60));
    let stderr = &finished.stderr;
    assert_eq!(finished.code, Some(1), "{stderr}");
    assert!(
        stderr.contains("did not converge within 3s: last response was a failed request (timeout)"),
        "{stderr}"
    );
    assert_eq!(finished.leftovers(), Vec::<String>::new(), "left in TMPDIR");
}

#[test]
fn a_backend_that_hangs_up_fails_with_the_gateways_reason() {
    let run = Run::start(
        &["run", "tests/reliability/hangup-backend.yaml"],
        &[("MESHCHECK_ENVOY", &envoy())],
    );
    let finished = run.finish(Duration::from_secs(60));
    let stderr = &finished.stderr;
    assert_eq!(finished.code, Some(1), "{stderr}");
    // Envoy's own words for an upstream that closed before answering: the cause, not
    // just "503".
    assert!(
        stderr.contains(
            "last response was 503 `upstream connect error or disconnect/reset before headers. reset reason: connection termination`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("upstream_cx_destroy_remote"),
        "the diagnostics show the upstream closing: {stderr}"
    );
    assert_eq!(finished.leftovers(), Vec::<String>::new(), "left in TMPDIR");
}
