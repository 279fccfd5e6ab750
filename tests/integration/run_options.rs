//! `meshcheck run` options that shape a whole run: `--jobs` (suites at once) and
//! `--conformance-report`, through the real binary on the local target.

use std::path::Path;
use std::process::{Command, Output};

fn meshcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run meshcheck")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The event lines (timestamped) of the terminal output that name `suite`, by index;
/// the closing summary may name any suite.
fn lines_naming(output: &str, suite: &str) -> Vec<usize> {
    output
        .lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with('['))
        .filter(|(_, line)| {
            line.contains(&format!(" {suite}::")) || line.contains(&format!(" {suite}: "))
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn suites_run_at_once_report_in_suite_order() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = meshcheck(&[
        "run",
        "suites/circuit-breaking.yaml",
        "suites/ingress-canary.yaml",
        "suites/outlier-detection.yaml",
        "--jobs",
        "3",
        "--json",
        json.to_str().unwrap(),
    ]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    // Each suite's lines come together, in the order the suites were given, as in a
    // sequential run: a reader never sees two suites interleaved.
    let blocks: Vec<Vec<usize>> = ["circuit-breaking", "ingress-canary", "outlier-detection"]
        .iter()
        .map(|suite| lines_naming(&all, suite))
        .collect();
    for (suite, lines) in blocks.iter().enumerate() {
        assert!(!lines.is_empty(), "suite {suite} printed nothing:\n{all}");
    }
    for pair in blocks.windows(2) {
        assert!(
            pair[0].last() < pair[1].first(),
            "suites interleaved:\n{all}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let suites: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["suite"].as_str().unwrap())
        .collect();
    let mut in_order = suites.clone();
    in_order.dedup();
    assert_eq!(
        in_order,
        ["circuit-breaking", "ingress-canary", "outlier-detection"],
        "{suites:?}"
    );
    // Each suite's phases were timed where it ran, and the slowest is named.
    for suite in ["circuit-breaking", "ingress-canary", "outlier-detection"] {
        let phases: Vec<&str> = report["phase_timings"][suite]
            .as_array()
            .unwrap_or_else(|| panic!("no phase timings for {suite}: {report:#}"))
            .iter()
            .map(|p| p["phase"].as_str().unwrap())
            .collect();
        assert_eq!(phases.first(), Some(&"bring-up"), "{phases:?}");
        assert_eq!(phases.last(), Some(&"cleanup"), "{phases:?}");
        assert!(phases.contains(&"traffic"), "{phases:?}");
        // Every case that sends traffic found its address in a phase of its own, and
        // each convergence says when, after Envoy took the configuration, the first
        // good response came and when enough came in a row (a status-only case has
        // neither).
        let timings = report["phase_timings"][suite].as_array().unwrap();
        for case in report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["suite"] == suite && c["requests"].as_u64() > Some(0))
        {
            let of_case = |phase: &str| {
                timings
                    .iter()
                    .find(|t| t["phase"] == phase && t["case"] == case["name"])
                    .unwrap_or_else(|| panic!("no {phase} for {case:#} in {timings:#?}"))
            };
            assert!(of_case("address")["seconds"].as_f64().unwrap() >= 0.0);
            let data_plane = &of_case("converge")["since_config_applied"];
            let first = data_plane["first_good_seconds"].as_f64();
            let in_a_row = data_plane["in_a_row_seconds"].as_f64();
            assert!(
                matches!((first, in_a_row), (Some(f), Some(r)) if 0.0 < f && f <= r),
                "{data_plane}"
            );
        }
    }
    assert!(all.contains("Slowest phase: "), "{all}");
    let summary = &report["summary"];
    assert_eq!(
        (summary["passed"].as_u64(), summary["failed"].as_u64()),
        (Some(suites.len() as u64), Some(0)),
        "{summary}"
    );
}

#[test]
fn jobs_are_refused_on_the_kube_target() {
    let out = meshcheck(&["run", "--target", "kube", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--jobs applies to the local target only"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_conformance_report_counts_suites_as_upstream_tests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conformance.yaml");
    let out = meshcheck(&[
        "run",
        "tests/data/conformance",
        "--jobs",
        "2",
        "--conformance-report",
        path.to_str().unwrap(),
    ]);
    // One case is written to fail, so the run fails.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(&path)).expect("the report is written"),
    )
    .unwrap();
    assert_eq!(report["kind"], "ConformanceReport");
    assert_eq!(report["mode"], "meshcheck-local");
    let profiles = report["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 1, "{report:#}");
    let gateway_http = &profiles[0];
    assert_eq!(gateway_http["name"], "GATEWAY-HTTP");
    assert_eq!(gateway_http["core"]["result"], "success");
    assert_eq!(gateway_http["core"]["statistics"]["Passed"], 1);
    let extended = &gateway_http["extended"];
    assert_eq!(extended["result"], "failure", "{report:#}");
    assert_eq!(extended["statistics"]["Failed"], 1);
    assert_eq!(extended["failedTests"][0], "HTTPRouteMethodMatching");
    assert_eq!(extended["supportedFeatures"][0], "HTTPRouteMethodMatching");
}

#[test]
fn a_suite_whose_every_case_is_skipped_is_not_brought_up() {
    // Its fixtures have a kind the local target refuses: bringing it up would fail the
    // run with exit 3.
    let out = meshcheck(&["run", "tests/data/all-skipped/all-skipped.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("0 passed, 0 failed, 1 skipped"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("bring-up"), "{}", text(&out));
}
