//! Exit codes through the real binary: 0 passed, 1 failed, 2 bad input, 3 setup error.

use std::path::Path;
use std::process::{Command, Output};

fn meshcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run meshcheck")
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn list_shows_suites_and_cases() {
    let out = meshcheck(&["list"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(text(&out).contains("ingress-canary::weighted-split"));
    assert!(text(&out).contains("ingress-canary::unknown-host-not-routed"));
}

#[test]
fn list_filters_like_the_test_harness() {
    let out = meshcheck(&[
        "list",
        "--filter",
        "ingress-canary::weighted-split",
        "--exact",
    ]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    assert!(text(&out).contains("weighted-split"));
    assert!(!text(&out).contains("unknown-host"));
    let none = meshcheck(&["list", "--filter", "weighted", "--exact"]);
    assert_eq!(code(&none), Some(2), "{}", text(&none));
}

#[test]
fn lint_accepts_the_shipped_suites() {
    let out = meshcheck(&["lint", "--target", "local"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.starts_with("ok: ") && all.contains("; 0 errors, 0 warnings"),
        "{all}"
    );
}

#[test]
fn lint_reports_every_bad_file_with_its_location() {
    let out = meshcheck(&["lint", "tests/bad-input"]);
    assert_eq!(code(&out), Some(2), "{}", text(&out));
    let all = text(&out);
    let files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input"))
        .expect("corpus")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".yaml"))
        .count();
    // One error per file, not just the first one found.
    assert!(all.contains(&format!("{files} errors")), "{all}");
    let located = all
        .lines()
        .filter(|l| l.starts_with("error: tests/bad-input/"))
        .filter(|l| {
            l.split(':')
                .nth(2)
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count();
    assert_eq!(located, files, "every error names file:line:col: {all}");
}

#[test]
fn lint_treats_local_refusals_per_target() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).expect("mkdir");
    for name in ["backends.yaml", "gateway.yaml", "httproute.yaml"] {
        std::fs::copy(
            root.join("fixtures/ingress-canary").join(name),
            fixtures.join(name),
        )
        .expect("copy");
    }
    // A second listener with a protocol the local target does not translate (TLS
    // passthrough); the case's own HTTP listener stays.
    let gateway = std::fs::read_to_string(fixtures.join("gateway.yaml")).expect("read");
    assert!(gateway.contains("  listeners:\n"), "{gateway}");
    std::fs::write(
        fixtures.join("gateway.yaml"),
        gateway.replace(
            "  listeners:\n",
            "  listeners:\n  - name: passthrough\n    protocol: TLS\n    port: 8443\n    tls: {mode: Passthrough}\n",
        ),
    )
    .expect("write");
    let suite = dir.path().join("s.yaml");
    std::fs::write(
        &suite,
        "fixtures: [fixtures/backends.yaml, fixtures/gateway.yaml, fixtures/httproute.yaml]\n\
         cases:\n  - name: c\n    request: {gateway: istio-test/istio-gateway, url: 'http://test.devopscube.com/'}\n    \
         traffic: {requests: 1}\n    expect: {status: 200}\n",
    )
    .expect("write suite");
    let suite = suite.to_string_lossy().into_owned();
    let any = meshcheck(&["lint", &suite]);
    assert_eq!(code(&any), Some(0), "{}", text(&any));
    assert!(
        text(&any).contains("warning: suite `s` cannot run on the local target"),
        "{}",
        text(&any)
    );
    let local = meshcheck(&["lint", "--target", "local", &suite]);
    assert_eq!(code(&local), Some(2), "{}", text(&local));
    assert!(
        text(&local).contains("error: suite `s` cannot run on the local target"),
        "{}",
        text(&local)
    );
}

/// What Istio silently ignores (a DestinationRule host that names no Service, a rule
/// in a namespace no client looks in) is a located warning, not an error: the suite is
/// valid, it just has no policy.
#[test]
fn lint_warns_about_destination_rules_istio_ignores() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).expect("mkdir");
    for name in ["backends.yaml", "gateway.yaml", "httproute.yaml"] {
        std::fs::copy(
            root.join("fixtures/ingress-canary").join(name),
            fixtures.join(name),
        )
        .expect("copy");
    }
    std::fs::write(
        fixtures.join("dr.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dotted, namespace: istio-test}\nspec:\n  host: backend-v1.istio-test\n\
         ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: far, namespace: other}\nspec:\n  host: backend-v2.istio-test.svc.cluster.local\n",
    )
    .expect("write");
    let suite = dir.path().join("s.yaml");
    std::fs::write(
        &suite,
        "fixtures: [fixtures/backends.yaml, fixtures/gateway.yaml, fixtures/httproute.yaml, fixtures/dr.yaml]\n\
         cases:\n  - name: c\n    request: {gateway: istio-test/istio-gateway, url: 'http://test.devopscube.com/'}\n    \
         traffic: {requests: 1}\n    expect: {status: 200}\n",
    )
    .expect("write suite");
    let out = meshcheck(&["lint", "--target", "local", &suite.to_string_lossy()]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    let all = text(&out);
    let file = fixtures.join("dr.yaml").to_string_lossy().into_owned();
    for expected in [
        format!(
            "warning: {file}:5:9: DestinationRule istio-test/dotted is ignored: host `backend-v1.istio-test` names no Service of the fixtures (Istio reads a host with a dot as a full name: write `backend-v1.istio-test.svc.cluster.local`)"
        ),
        format!(
            "warning: {file}:11:9: DestinationRule other/far is ignored: namespace `other` is not the Service's, not `istio-system` and not a client's (istio-test)"
        ),
    ] {
        assert!(all.contains(&expected), "expected {expected:?} in {all}");
    }
    assert!(all.contains("; 0 errors, 2 warnings"), "{all}");
}

#[test]
fn run_exit_codes() {
    let passed = meshcheck(&["run", "--quiet"]);
    assert_eq!(code(&passed), Some(0), "{}", text(&passed));

    let failed = meshcheck(&["run", "--quiet", "tests/data/reports/failing.yaml"]);
    assert_eq!(code(&failed), Some(1), "{}", text(&failed));
    assert!(
        text(&failed).contains("--- FAILED reports-failing::split-misread ---"),
        "{}",
        text(&failed)
    );

    let bad = meshcheck(&["run", "tests/bad-input/unknown-key.yaml"]);
    assert_eq!(code(&bad), Some(2), "{}", text(&bad));
    let no_match = meshcheck(&["run", "--filter", "no-such-case"]);
    assert_eq!(code(&no_match), Some(2), "{}", text(&no_match));

    let setup = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MESHCHECK_ENVOY", "/nonexistent")
        .args(["run", "--quiet"])
        .output()
        .expect("run meshcheck");
    assert_eq!(code(&setup), Some(3), "{}", text(&setup));
    assert!(text(&setup).contains("SETUP FAILED"), "{}", text(&setup));
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let out = meshcheck(&["schema", "report"]);
    assert_eq!(code(&out), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let file = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/report.schema.json"),
    )
    .expect("schema");
    let checked_in: serde_json::Value = serde_json::from_str(&file).expect("json");
    assert_eq!(printed, checked_in);
}
