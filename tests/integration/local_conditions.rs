//! `expect.conditions` on the local target: the status Istio would write, judged
//! before any traffic; a status-only case sends nothing, a combined case sends its
//! traffic after the status holds, and a wrong expectation fails the case (exit 1)
//! saying what was seen.

use std::path::Path;
use std::process::{Command, Output};

fn run(suite: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet"])
        .arg(suite)
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

/// A suite on the ingress-canary fixtures plus a route whose sectionName no listener
/// has; `cases` is the cases block.
fn suite(dir: &Path, cases: &str) -> std::path::PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingress-canary");
    std::fs::write(
        dir.join("stray.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: stray, namespace: istio-test}
spec:
  parentRefs: [{name: istio-gateway, sectionName: nope}]
  rules:
  - backendRefs: [{name: backend-v1, port: 80}]
",
    )
    .unwrap();
    let path = dir.join("conditions.yaml");
    std::fs::write(
        &path,
        format!(
            "name: conditions
fixtures:
  - {0}/backends.yaml
  - {0}/gateway.yaml
  - {0}/httproute.yaml
  - stray.yaml
cases:
{cases}",
            fixtures.display()
        ),
    )
    .unwrap();
    path
}

const STRAY_NOT_ACCEPTED: &str = "        - route: istio-test/stray
          parent: istio-test/istio-gateway
          sectionName: nope
          conditions:
            - {type: Accepted, status: \"False\", reason: NoMatchingParent}
            - {type: ResolvedRefs, status: \"True\"}
        - gateway: istio-test/istio-gateway
          listener: http
          attachedRoutes: 1
";

#[test]
fn status_only_and_combined_cases_pass_on_istios_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite(
        dir.path(),
        &format!(
            "  - name: status-only
    expect:
      conditions:
{STRAY_NOT_ACCEPTED}  - name: with-traffic
    request: {{gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com/\"}}
    traffic: {{requests: 5}}
    expect:
      status: 200
      conditions:
        - route: istio-test/backend-route
          parent: istio-test/istio-gateway
          conditions:
            - {{type: Accepted, status: \"True\", reason: Accepted}}
"
        ),
    );
    let out = run(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_wrong_condition_fails_the_case_and_says_what_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite(
        dir.path(),
        "  - name: wrong
    expect:
      conditions:
        - route: istio-test/stray
          parent: istio-test/istio-gateway
          sectionName: nope
          conditions:
            - {type: Accepted, status: \"True\"}
        - gateway: istio-test/istio-gateway
          listener: http
          attachedRoutes: 2
          supportedKinds: [TCPRoute]
",
    );
    let out = run(&path);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("istio-test/stray parent Gateway istio-test/istio-gateway section nope: expected Accepted=True, saw Accepted=False (NoMatchingParent)"),
        "{shown}"
    );
    assert!(
        shown.contains("listener http: expected attachedRoutes 2, saw 1; expected supportedKinds with TCPRoute, saw [HTTPRoute, GRPCRoute]"),
        "{shown}"
    );
}

#[test]
fn lint_warns_where_istio_would_not_accept_a_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = suite(
        dir.path(),
        &format!("  - name: status-only\n    expect:\n      conditions:\n{STRAY_NOT_ACCEPTED}"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .args(["lint", "--target", "local"])
        .arg(&path)
        .output()
        .expect("run meshcheck");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let stray = dir.path().join("stray.yaml");
    assert!(
        shown.contains(&format!(
            "warning: {}:5:",
            stray.display()
        )) && shown.contains(
            "HTTPRoute istio-test/stray is not accepted by Gateway istio-test/istio-gateway: Istio sets Accepted=False (NoMatchingParent)"
        ),
        "{shown}"
    );
    assert!(shown.contains("; 0 errors, 1 warning"), "{shown}");
}

/// The stray route with its parentRef's sectionName corrected to the listener `http`.
const STRAY_FIXED: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: stray, namespace: istio-test}
spec:
  parentRefs: [{name: istio-gateway, sectionName: http}]
  rules:
  - backendRefs: [{name: backend-v1, port: 80}]
";

/// A case's `apply` edits the fixtures for it and every later case: the status the
/// local target computes follows the edit and the edited object's generation, and a
/// case that sends traffic after the edit is skipped with the reason (the local Envoy
/// still serves the fixtures as brought up).
#[test]
fn an_apply_edits_the_status_of_later_cases_and_skips_their_traffic_locally() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stray-fixed.yaml"), STRAY_FIXED).unwrap();
    let path = suite(
        dir.path(),
        "  - name: before
    expect:
      conditions:
        - route: istio-test/stray
          parent: istio-test/istio-gateway
          sectionName: nope
          generation: 1
          conditions: [{type: Accepted, status: \"False\", reason: NoMatchingParent}]
        - gateway: istio-test/istio-gateway
          listener: http
          attachedRoutes: 1
  - name: fixed
    apply: [stray-fixed.yaml]
    expect:
      conditions:
        - route: istio-test/stray
          parent: istio-test/istio-gateway
          sectionName: http
          generation: 2
          conditions: [{type: Accepted, status: \"True\"}]
        - gateway: istio-test/istio-gateway
          generation: 1
          listener: http
          attachedRoutes: 2
  - name: traffic-after-the-edit
    request: {gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com/\"}
    traffic: {requests: 5}
    expect: {status: 200}
",
    );
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", "--json"])
        .arg(&json)
        .arg(&path)
        .output()
        .expect("run meshcheck");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cases = report["cases"].as_array().unwrap();
    let outcome = |name: &str| {
        let case = cases.iter().find(|c| c["name"] == name).unwrap();
        (case["outcome"].clone(), case["message"].clone())
    };
    assert_eq!(outcome("before").0, "passed");
    assert_eq!(outcome("fixed").0, "passed");
    let (skipped, why) = outcome("traffic-after-the-edit");
    assert_eq!(skipped, "skipped", "{why}");
    assert!(
        why.as_str()
            .unwrap()
            .contains("does not reprogram its Envoy after an `apply`"),
        "{why}"
    );
}

/// An edit is judged: a case that expects the generation before the edit, or a
/// condition the edit changed, fails and says what it saw.
#[test]
fn a_stale_generation_after_an_apply_fails_the_case() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stray-fixed.yaml"), STRAY_FIXED).unwrap();
    let path = suite(
        dir.path(),
        "  - name: fixed
    apply: [stray-fixed.yaml]
    expect:
      conditions:
        - route: istio-test/stray
          parent: istio-test/istio-gateway
          sectionName: http
          generation: 1
          conditions: [{type: Accepted, status: \"True\"}]
",
    );
    let out = run(&path);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("expected the object at generation 1, it is at 2"),
        "{shown}"
    );
}

/// An edit is refused where the fixtures would be: a field the local target does not
/// serve fails the case with the edit file's location.
#[test]
fn an_edit_the_local_target_would_refuse_fails_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pinned.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: istio-gateway, namespace: istio-test}
spec:
  gatewayClassName: istio
  addresses:
  - value: 10.0.0.7
  listeners:
  - {name: http, protocol: HTTP, port: 80}
",
    )
    .unwrap();
    let path = suite(
        dir.path(),
        "  - name: pinned
    apply: [pinned.yaml]
    expect:
      conditions:
        - gateway: istio-test/istio-gateway
          address: assigned
",
    );
    let refusal = "pinned.yaml:7:5: Gateway istio-gateway: field `spec.addresses[0].value` is not supported by the local target";
    let out = run(&path);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains(refusal), "{shown}");
    // `lint --target local` sees the same refusal without running anything.
    let lint = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .args(["lint", "--target", "local"])
        .arg(&path)
        .output()
        .expect("run meshcheck lint");
    let shown = text(&lint);
    assert_eq!(lint.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("case `conditions::pinned`") && shown.contains(refusal),
        "{shown}"
    );
}

/// A case with traffic after an edit, which the local target cannot send, still has
/// its status judged first: a wrong status fails it instead of hiding in the skip.
#[test]
fn a_wrong_status_after_an_apply_fails_even_when_the_traffic_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stray-fixed.yaml"), STRAY_FIXED).unwrap();
    let path = suite(
        dir.path(),
        "  - name: fixed-with-traffic
    apply: [stray-fixed.yaml]
    request: {gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com/\"}
    traffic: {requests: 5}
    expect:
      status: 200
      conditions:
        - route: istio-test/stray
          parent: istio-test/istio-gateway
          sectionName: http
          conditions: [{type: Accepted, status: \"False\"}]
",
    );
    let out = run(&path);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("expected Accepted=False, saw Accepted=True"),
        "{shown}"
    );
}

/// `generated` is checked where it is written: each mistake is refused at load time
/// with its location (the entry's keys start on line 12 of the suite).
#[test]
fn generated_mistakes_are_located() {
    let entry = |keys: &str| {
        format!(
            "  - name: deployed
    expect:
      conditions:
        - gateway: istio-test/istio-gateway
{keys}"
        )
    };
    let refused = [
        (
            "          generated: {labels: {team: shop}, owners: {x: y}}\n",
            12,
            "unknown field `owners`",
        ),
        (
            "          generated: {}\n",
            12,
            "nothing to check: give `labels` or `annotations`",
        ),
        (
            "          generated: {labels: {'Bad/key': x}}\n",
            12,
            "`Bad/key` is not a valid labels key: the prefix before `/` must be a DNS subdomain",
        ),
        (
            "          generated: {labels: {team: 'no spaces'}}\n",
            12,
            "the value of label `team` is not a label value",
        ),
        (
            "          listener: http\n          generated: {labels: {team: shop}}\n",
            13,
            "objects are deployed for a Gateway, not for a listener",
        ),
        (
            "          generated: {labels: [team]}\n",
            12,
            "invalid type",
        ),
    ];
    for (keys, line, message) in refused {
        let dir = tempfile::tempdir().unwrap();
        let path = suite(dir.path(), &entry(keys));
        let out = run(&path);
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{keys}: {shown}");
        assert!(
            shown.contains(&format!("conditions.yaml:{line}:")) && shown.contains(message),
            "{keys}: expected line {line} and {message:?} in: {shown}"
        );
    }
    // On a route's entry the key does not apply.
    let dir = tempfile::tempdir().unwrap();
    let path = suite(
        dir.path(),
        "  - name: deployed
    expect:
      conditions:
        - route: istio-test/stray
          parent: istio-test/istio-gateway
          sectionName: nope
          generated: {labels: {team: shop}}
",
    );
    let shown = text(&run(&path));
    assert!(
        shown.contains("conditions.yaml:14:")
            && shown.contains("`generated` goes with `gateway` only"),
        "{shown}"
    );
}
