//! The response checks of `expect` (`response`, `timeout`, `request`, `servedBy`,
//! `redirect`) judging real responses: through real Envoy on the local target where the
//! local target can already produce them, and against a real `meshcheck echo
//! -echo-basic` process (the conformance backend's JSON) for the checks that read what
//! the backend received. Each passes on what is right and fails, saying what was
//! expected and what was seen, on what is not.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use meshcheck::runner::{
    CaseFilter, CaseResult, Event, Interrupt, LocalSettings, Outcome, RunOptions, TargetSettings,
};
use meshcheck::suite::{Case, Expectation, load_suite};
use meshcheck::traffic::{Flow, LoadSpec, RequestTemplate, run_load};

const MESHCHECK: &str = env!("CARGO_BIN_EXE_meshcheck");

fn fixtures(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Writes a suite into `dir` with `fixtures` (absolute paths) and `cases` (YAML, indented
/// as list items under `cases:`).
fn write_suite(dir: &Path, name: &str, fixtures: &[PathBuf], cases: &str) -> PathBuf {
    let listed: String = fixtures
        .iter()
        .map(|f| format!("  - {}\n", f.display()))
        .collect();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!("name: {name}\nfixtures:\n{listed}cases:\n{cases}"),
    )
    .unwrap();
    path
}

/// Runs every case of a suite file on the local target; results by case name.
fn run_local(suite_file: &Path) -> Vec<CaseResult> {
    let suite = load_suite(suite_file).unwrap();
    let options = RunOptions {
        target: TargetSettings::Local(LocalSettings {
            envoy: std::env::var_os("MESHCHECK_ENVOY").map(Into::into),
            echo_program: MESHCHECK.into(),
        }),
        filter: CaseFilter {
            patterns: Vec::new(),
            exact: false,
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
    assert_eq!(results.len(), suite.cases.len());
    results
}

fn result<'a>(results: &'a [CaseResult], case: &str) -> &'a CaseResult {
    results
        .iter()
        .find(|r| r.name == case)
        .unwrap_or_else(|| panic!("no result for {case}"))
}

fn assert_outcome(results: &[CaseResult], case: &str, outcome: Outcome, message: &str) {
    let result = result(results, case);
    let text = result.message.to_string();
    assert_eq!(result.outcome, outcome, "{case}: {text}");
    assert!(
        text.contains(message),
        "{case}: expected {message:?} in {text:?}"
    );
}

#[test]
fn response_headers_and_body_through_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let canary = fixtures("ingress-canary");
    let suite = write_suite(
        dir.path(),
        "response-checks",
        &[
            canary.join("backends.yaml"),
            canary.join("gateway.yaml"),
            canary.join("httproute.yaml"),
        ],
        "  - name: as-served
    request: {gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com/\"}
    traffic: {requests: 6}
    expect:
      status: 200
      response:
        headers: {X-App-Name: http-echo}
        absentHeaders: [x-envoy-overloaded]
        bodyContains: hello from backend
  - name: wrong-value
    request: {gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com/\"}
    traffic: {requests: 6}
    expect:
      status: 200
      response:
        headers: {x-app-name: nginx}
  - name: not-absent
    request: {gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com/\"}
    traffic: {requests: 6}
    expect:
      status: 200
      response:
        absentHeaders: [X-App-Name]
  - name: wrong-body
    request: {gateway: istio-test/istio-gateway, url: \"http://test.devopscube.com/\"}
    traffic: {requests: 6}
    expect:
      status: 200
      response:
        bodyContains: goodbye
",
    );
    let results = run_local(&suite);
    assert_outcome(
        &results,
        "as-served",
        Outcome::Passed,
        "6 requests, all 200, every response with the expected headers and a body containing \"hello from backend\"",
    );
    assert_outcome(
        &results,
        "wrong-value",
        Outcome::Failed,
        "response header x-app-name: expected \"nginx\", got \"http-echo\" (response 1 of 6)",
    );
    assert_outcome(
        &results,
        "not-absent",
        Outcome::Failed,
        "response header x-app-name: expected absent, got \"http-echo\" (response 1 of 6)",
    );
    assert_outcome(
        &results,
        "wrong-body",
        Outcome::Failed,
        "response body: expected it to contain \"goodbye\", got \"hello from backend v",
    );
}

/// A backend that answers 504 after a delay stands in for a fired route timeout: the
/// check's bound is what is tested here, through Envoy.
#[test]
fn timeout_bounds_the_504s_through_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let canary = fixtures("ingress-canary");
    let slow = dir.path().join("slow.yaml");
    std::fs::write(
        &slow,
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: backend-v1, namespace: istio-test}
spec:
  selector:
    matchLabels: {app: backend, version: v1}
  template:
    metadata:
      labels: {app: backend, version: v1}
    spec:
      containers:
      - name: echo
        image: hashicorp/http-echo
        args: [\"-text=too slow\", \"-status-code=504\", \"-delay=300ms\"]
---
apiVersion: v1
kind: Service
metadata: {name: backend-v1, namespace: istio-test}
spec:
  selector: {app: backend, version: v1}
  ports:
  - {name: http, port: 80, targetPort: 5678}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: slow-route, namespace: istio-test}
spec:
  parentRefs:
  - name: istio-gateway
  hostnames: [slow.devopscube.com]
  rules:
  - backendRefs:
    - {name: backend-v1, port: 80}
",
    )
    .unwrap();
    let suite = write_suite(
        dir.path(),
        "timeout-checks",
        &[canary.join("gateway.yaml"), slow],
        "  - name: in-time
    request: {gateway: istio-test/istio-gateway, url: \"http://slow.devopscube.com/\"}
    traffic: {requests: 4, timeout: 5s}
    expect:
      timeout: {within: 3s}
  - name: too-late
    request: {gateway: istio-test/istio-gateway, url: \"http://slow.devopscube.com/\"}
    traffic: {requests: 4, timeout: 5s}
    expect:
      timeout: {within: 100ms}
  - name: not-a-timeout
    request: {gateway: istio-test/istio-gateway, url: \"http://nothing.devopscube.com/\"}
    traffic: {requests: 2}
    expect:
      timeout: {within: 1s}
",
    );
    let results = run_local(&suite);
    assert_outcome(
        &results,
        "in-time",
        Outcome::Passed,
        "4 requests, all 504 within 3s",
    );
    let too_late = result(&results, "too-late");
    assert_eq!(too_late.outcome, Outcome::Failed);
    let text = too_late.message.to_string();
    assert!(
        text.starts_with("a 504 after ")
            && text.contains(", expected within 100ms (response 1 of 4)"),
        "{text}"
    );
    // Nothing routes this host: Envoy's 404 never converges, since only a 504 is ready.
    let not = result(&results, "not-a-timeout");
    assert_eq!(not.outcome, Outcome::Failed, "{}", not.message);
    assert!(not.message.to_string().contains("404"), "{}", not.message);
}

/// A running `meshcheck echo -echo-basic`, killed when dropped.
struct EchoBasic {
    child: Child,
    address: SocketAddr,
}

impl Drop for EchoBasic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_echo_basic(namespace: &str, pod: &str) -> EchoBasic {
    let mut child = Command::new(MESHCHECK)
        .args(["echo", "-echo-basic", "-listen=127.0.0.1:0"])
        .env_clear()
        .env("NAMESPACE", namespace)
        .env("POD_NAME", pod)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    // echo-basic logs every request on stdout: keep reading, or it writes to a closed
    // pipe. The thread ends when the process does.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    EchoBasic { child, address }
}

const ECHO_BASIC_FIXTURES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route, namespace: infra}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - {name: infra-backend-v1, port: 8080}
    - {name: infra-backend-v2, port: 8080}
";

fn echo_basic_deployment(name: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: infra}}
spec:
  selector: {{app: {name}}}
  ports:
  - {{port: 8080, targetPort: 3000}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: infra}}
spec:
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: {name}
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        - name: NAMESPACE
          valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
"
    )
}

/// Loads echo-basic fixtures with `cases`, then judges each case's responses from a
/// real echo-basic process the way the runner does: the case's load (its identity
/// rule, the headers and body its checks read) fed to its checks' judge.
fn judge_against_echo_basic(cases: &str, pod: &str) -> Vec<(String, bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("infra.yaml");
    std::fs::write(
        &fixtures,
        format!(
            "{ECHO_BASIC_FIXTURES}{}{}",
            echo_basic_deployment("infra-backend-v1"),
            echo_basic_deployment("infra-backend-v2")
        ),
    )
    .unwrap();
    let suite = load_suite(&write_suite(dir.path(), "echo-basic", &[fixtures], cases)).unwrap();
    let echo = start_echo_basic("infra", pod);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    suite
        .cases
        .iter()
        .map(|case| {
            let (passed, message) = runtime.block_on(judge_case(case, echo.address));
            (case.name.clone(), passed, message)
        })
        .collect()
}

async fn judge_case(case: &Case, address: SocketAddr) -> (bool, String) {
    let Expectation::Responses(checks) = &case.expect else {
        panic!("{} checks responses", case.name);
    };
    let mut request = RequestTemplate::get(case.url.clone()).connect_to(address);
    request.headers = case
        .spec
        .request
        .iter()
        .flat_map(|r| r.headers.iter())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    request.method = case.method.clone();
    request.version = case.version;
    request.websocket_messages = case.websocket_messages.clone();
    let requests = case.spec.traffic.requests.unwrap();
    let load = LoadSpec {
        request,
        requests,
        concurrency: 2,
        timeout: case.spec.traffic.timeout,
        keep_alive: true,
        identity: case.identity.clone(),
        response_headers: case.expect.response_headers(),
        response_body: case.expect.response_body(),
    };
    let mut judge = checks.judge().unwrap();
    let mut seen = 0;
    run_load(&load, |sample| {
        seen += 1;
        judge.observe(seen, sample);
        Flow::Continue
    })
    .await
    .unwrap();
    let verdict = judge.conclude();
    (verdict.passed(), verdict.message(seen))
}

#[test]
fn request_and_served_by_read_echo_basic_json() {
    let results = judge_against_echo_basic(
        "  - name: as-received
    request:
      gateway: infra/same-namespace
      url: http://example.com/prefix/foo?query=1
      headers: {X-Header-Set: set-value, X-Echo-Set-Header: \"X-Answer: yes\"}
    traffic: {requests: 5}
    expect:
      servedBy: infra/infra-backend-v1
      request:
        path: /prefix/foo
        host: example.com
        method: GET
        headers: {x-header-set: set-value}
        absentHeaders: [X-Header-Remove]
      response:
        headers: {X-Answer: \"yes\"}
        bodyContains: infra-backend-v1
  - name: other-backend
    request: {gateway: infra/same-namespace, url: \"http://example.com/\"}
    traffic: {requests: 5}
    expect:
      servedBy: infra/infra-backend-v2
  - name: other-header-value
    request:
      gateway: infra/same-namespace
      url: http://example.com/
      headers: {X-Header-Set: other}
    traffic: {requests: 5}
    expect:
      request:
        headers: {X-Header-Set: set-value}
  - name: header-not-removed
    request:
      gateway: infra/same-namespace
      url: http://example.com/
      headers: {X-Header-Remove: still-here}
    traffic: {requests: 5}
    expect:
      request:
        absentHeaders: [X-Header-Remove]
  - name: other-path
    request: {gateway: infra/same-namespace, url: \"http://example.com/prefix/foo/\"}
    traffic: {requests: 5}
    expect:
      request: {path: /prefix/foo}
",
        "infra-backend-v1-7d9b8f5c6-x2x4z",
    );
    let find = |name: &str| {
        results
            .iter()
            .find(|(case, _, _)| case == name)
            .map(|(_, passed, message)| (*passed, message.as_str()))
            .unwrap()
    };
    assert_eq!(
        find("as-received"),
        (
            true,
            "5 requests, all served by Service infra/infra-backend-v1, each request reached the backend as expected, every response with the expected headers and a body containing \"infra-backend-v1\""
        )
    );
    assert_eq!(
        find("other-backend"),
        (
            false,
            "served by infra/infra-backend-v1, expected a pod of Service infra/infra-backend-v2 (Deployment infra/infra-backend-v2) (response 1 of 5)"
        )
    );
    assert_eq!(
        find("other-header-value"),
        (
            false,
            "request header x-header-set: expected \"set-value\", backend saw \"other\" (response 1 of 5)"
        )
    );
    assert_eq!(
        find("header-not-removed"),
        (
            false,
            "request header x-header-remove: expected absent, backend saw \"still-here\" (response 1 of 5)"
        )
    );
    assert_eq!(
        find("other-path"),
        (
            false,
            "request path: expected \"/prefix/foo\", backend saw \"/prefix/foo/\" (response 1 of 5)"
        )
    );
}

/// echo-basic answers `/status` with a 301 to the relative `/status/`, as Go's
/// `ServeMux` does: the check resolves it against the request URL.
#[test]
fn a_relative_redirect_from_a_real_server_is_resolved_against_the_request() {
    let results = judge_against_echo_basic(
        "  - name: to-the-subtree
    request: {gateway: infra/same-namespace, url: \"http://example.com/status\"}
    traffic: {requests: 3}
    expect:
      status: 301
      redirect: {scheme: http, host: example.com, path: /status/}
  - name: elsewhere
    request: {gateway: infra/same-namespace, url: \"http://example.com/status\"}
    traffic: {requests: 3}
    expect:
      redirect: {host: example.org, path: /status/}
  - name: not-a-redirect
    request: {gateway: infra/same-namespace, url: \"http://example.com/\"}
    traffic: {requests: 3}
    expect:
      redirect: {path: /}
",
        "infra-backend-v1-7d9b8f5c6-x2x4z",
    );
    assert_eq!(
        results[0],
        (
            "to-the-subtree".into(),
            true,
            "3 requests, all 301, every response redirects as expected".into()
        )
    );
    assert_eq!(
        results[1],
        (
            "elsewhere".into(),
            false,
            "redirect host: expected \"example.org\", got \"example.com\" (Location \"/status/\") (response 1 of 3)".into()
        )
    );
    assert!(!results[2].1);
    assert!(
        results[2]
            .2
            .starts_with("expected a redirect (3xx), got 200"),
        "{}",
        results[2].2
    );
}

/// The engine hands a sample the body only when the load asks: a load that judges no
/// body (an echo-basic split, say) reads the identity and copies nothing more.
#[test]
fn the_engine_keeps_bodies_only_for_loads_that_ask() {
    use meshcheck::traffic::IdentityRule;
    let echo = start_echo_basic("infra", "infra-backend-v2-7d9b8f5c6-x2x4z");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for response_body in [false, true] {
        let load = LoadSpec {
            request: RequestTemplate::get("http://example.com/x".parse().unwrap())
                .connect_to(echo.address),
            requests: 4,
            concurrency: 2,
            timeout: std::time::Duration::from_secs(5),
            keep_alive: true,
            identity: IdentityRule::EchoBasic,
            response_headers: Vec::new(),
            response_body,
        };
        let mut bodies = Vec::new();
        let tally = runtime
            .block_on(run_load(&load, |sample| {
                bodies.push(sample.body.map(|b| {
                    serde_json::from_slice::<meshcheck::echo::EchoedRequest>(b)
                        .unwrap()
                        .path
                }));
                Flow::Continue
            }))
            .unwrap();
        assert_eq!(tally.identities["infra/infra-backend-v2"], 4);
        let expected = response_body.then(|| "/x".to_string());
        assert_eq!(bodies, vec![expected; 4]);
    }
}

/// echo-basic Deployments on the local target, through real Envoy: `servedBy`,
/// `request` and `response` read what the backend answered, and a split between
/// echo-basic Services needs no identities.
#[test]
fn echo_basic_checks_through_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("infra.yaml");
    let route = |name: &str, host: &str, backends: &[&str]| {
        let refs: String = backends
            .iter()
            .map(|b| format!("    - {{name: {b}, port: 8080}}\n"))
            .collect();
        format!(
            "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: infra}}
spec:
  parentRefs:
  - name: same-namespace
  hostnames: [{host}]
  rules:
  - backendRefs:
{refs}"
        )
    };
    std::fs::write(
        &fixtures,
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: same-namespace, namespace: infra}}
spec:
  gatewayClassName: istio
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
{}{}{}{}{}",
            route("v1", "v1.example.com", &["infra-backend-v1"]),
            route(
                "split",
                "split.example.com",
                &["infra-backend-v1", "infra-backend-v2"]
            ),
            echo_basic_deployment("infra-backend-v1"),
            echo_basic_deployment("infra-backend-v2"),
            ""
        ),
    )
    .unwrap();
    let suite = write_suite(
        dir.path(),
        "echo-basic-envoy",
        &[fixtures],
        "  - name: as-received
    request:
      gateway: infra/same-namespace
      url: http://v1.example.com/prefix/foo?query=1
      headers: {X-Header-Set: set-value, X-Echo-Set-Header: \"X-Answer: yes\"}
    traffic: {requests: 5}
    expect:
      status: 200
      servedBy: infra/infra-backend-v1
      request:
        path: /prefix/foo
        host: v1.example.com
        headers: {x-header-set: set-value}
        absentHeaders: [X-Header-Remove]
      response:
        headers: {X-Answer: \"yes\"}
  - name: wrong-backend
    request: {gateway: infra/same-namespace, url: \"http://v1.example.com/\"}
    traffic: {requests: 5}
    expect:
      status: 200
      servedBy: infra/infra-backend-v2
  - name: header-not-set
    request: {gateway: infra/same-namespace, url: \"http://v1.example.com/\"}
    traffic: {requests: 5}
    expect:
      status: 200
      request:
        headers: {X-Header-Set: set-value}
  - name: default-identities
    request: {gateway: infra/same-namespace, url: \"http://split.example.com/\"}
    expect:
      status: 200
      split: {route: infra/split}
",
    );
    let results = run_local(&suite);
    assert_outcome(
        &results,
        "as-received",
        Outcome::Passed,
        "5 requests, all 200, all served by Service infra/infra-backend-v1, each request reached the backend as expected, every response with the expected headers",
    );
    assert_outcome(
        &results,
        "wrong-backend",
        Outcome::Failed,
        "served by infra/infra-backend-v1, expected a pod of Service infra/infra-backend-v2 (Deployment infra/infra-backend-v2) (response 1 of 5)",
    );
    assert_outcome(
        &results,
        "header-not-set",
        Outcome::Failed,
        "request header x-header-set: expected \"set-value\", backend saw none (response 1 of 5)",
    );
    assert_outcome(
        &results,
        "default-identities",
        Outcome::Passed,
        "no backend's share is off",
    );
}

/// An HTTPRoute on `host` to infra-backend-v1 with `filters` (YAML flow list items).
fn mirror_route(name: &str, host: &str, filters: &str) -> String {
    format!(
        "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: infra}}
spec:
  parentRefs:
  - name: same-namespace
  hostnames: [{host}]
  rules:
  - filters: [{filters}]
    backendRefs:
    - {{name: infra-backend-v1, port: 8080}}
"
    )
}

#[test]
fn mirror_reads_what_the_mirror_backends_received_through_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("infra.yaml");
    let to_v2 = |percent: &str| {
        format!(
            "{{type: RequestMirror, requestMirror: {{backendRef: {{name: infra-backend-v2, port: 8080}}{percent}}}}}"
        )
    };
    std::fs::write(
        &fixtures,
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: same-namespace, namespace: infra}}
spec:
  gatewayClassName: istio
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
{}{}{}{}{}",
            mirror_route("mirrored", "mirror.example.com", &to_v2("")),
            mirror_route("percent", "percent.example.com", &to_v2(", percent: 42")),
            mirror_route("plain", "plain.example.com", ""),
            echo_basic_deployment("infra-backend-v1"),
            echo_basic_deployment("infra-backend-v2"),
        ),
    )
    .unwrap();
    let case = |name: &str, host: &str, traffic: &str, mirror: &str| {
        format!(
            "  - name: {name}
    request: {{gateway: infra/same-namespace, url: \"http://{host}.example.com/mirror?q=1\"}}
    traffic: {traffic}
    expect:
      status: 200
      servedBy: infra/infra-backend-v1
      mirror:
        - {{service: infra/infra-backend-v2{mirror}}}
"
        )
    };
    let every = "{requests: 5}";
    let shared = "{concurrency: 2}";
    let cases = [
        case("mirrored", "mirror", every, ""),
        case("not-mirrored", "plain", every, ""),
        case("other-path", "mirror", every, ", path: /other"),
        case("share", "percent", shared, ", percent: 42"),
        case("share-of-none", "plain", shared, ", percent: 42"),
        case("share-of-all", "mirror", shared, ", percent: 42"),
    ]
    .concat();
    let suite = write_suite(dir.path(), "mirror-envoy", &[fixtures], &cases);
    let results = run_local(&suite);
    assert_outcome(
        &results,
        "mirrored",
        Outcome::Passed,
        "5 requests, all 200, all served by Service infra/infra-backend-v1, each mirrored to Service infra/infra-backend-v2",
    );
    // A route without the mirror filter: the primary answers, the mirror gets nothing.
    assert_outcome(
        &results,
        "not-mirrored",
        Outcome::Failed,
        "mirror Service infra/infra-backend-v2 received 0 of 5 requests to /mirror?q=1, expected every one",
    );
    assert_outcome(
        &results,
        "other-path",
        Outcome::Failed,
        "mirror Service infra/infra-backend-v2 received 0 of 5 requests to /other, expected every one; it logged other requests: /mirror?q=1",
    );
    assert_outcome(
        &results,
        "share",
        Outcome::Passed,
        "expected 42%: no share is off",
    );
    for case in ["share-of-none", "share-of-all"] {
        assert_outcome(
            &results,
            case,
            Outcome::Failed,
            "expected 42%: mirrored got",
        );
    }
    let none = result(&results, "share-of-none").message.to_string();
    assert!(none.contains("received 0 of"), "{none}");
    let all = result(&results, "share-of-all").message.to_string();
    assert!(all.contains("(100.0%)"), "{all}");
}

#[test]
fn websocket_sessions_are_judged_by_their_upgrade_and_replies() {
    let results = judge_against_echo_basic(
        "  - name: echoed
    request:
      gateway: infra/same-namespace
      url: ws://example.com/ws
      websocket:
        messages: [{text: Websocket Support!}, {binary: [1, 2, 3, 4, 5, 6, 7]}]
    traffic: {requests: 3}
    expect:
      websocket:
        replies: [{text: Websocket Support!}, {binary: [1, 2, 3, 4, 5, 6, 7]}]
  - name: another-reply-expected
    request:
      gateway: infra/same-namespace
      url: ws://example.com/ws
      websocket:
        messages: [{text: one}, {binary: [1, 2]}]
    traffic: {requests: 3}
    expect:
      websocket:
        replies: [{text: one}, {binary: [2, 1]}]
  - name: not-a-websocket-path
    request:
      gateway: infra/same-namespace
      url: ws://example.com/elsewhere
    traffic: {requests: 2}
    expect:
      websocket: {replies: []}
",
        "infra-backend-v1-abc",
    );
    assert_eq!(results[0].0, "echoed");
    assert!(results[0].1, "{}", results[0].2);
    assert!(
        results[0]
            .2
            .contains("every WebSocket session upgraded and got its 2 replies"),
        "{}",
        results[0].2
    );
    assert!(!results[1].1, "{}", results[1].2);
    assert!(
        results[1]
            .2
            .contains("reply 2 was binary [1, 2], expected binary [2, 1]"),
        "{}",
        results[1].2
    );
    // echo-basic answers a path other than /ws with its JSON echo, a 200.
    assert!(!results[2].1, "{}", results[2].2);
    assert!(
        results[2].2.contains("the upgrade was answered 200"),
        "{}",
        results[2].2
    );
}
