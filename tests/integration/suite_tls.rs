//! `https://` in suites: what the loader accepts and refuses (`request.tls`, the
//! gateway listener a URL needs), each refusal located at the field to fix.

use std::path::{Path, PathBuf};

use meshcheck::suite::load_suite;
use tempfile::TempDir;

/// A Gateway with a plain listener on 80 and an HTTPS one on 443, and a Service, enough
/// for the loader (it does not translate; the targets do).
const FIXTURES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: test}
spec:
  selector: {app: backend}
  ports: [{port: 80, targetPort: 5678}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: test}
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    protocol: HTTP
    port: 80
  - name: https
    protocol: HTTPS
    port: 443
    tls:
      mode: Terminate
      certificateRefs: [{name: cert}]
";

struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("meshcheck-suite-tls-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("fixtures.yaml"), FIXTURES).unwrap();
        std::fs::write(dir.path().join("ca.pem"), self_signed_pem()).unwrap();
        Scratch { dir }
    }

    /// Writes a suite whose only case has this `request:` block (indented by 6).
    fn suite(&self, request: &str) -> PathBuf {
        let text = format!(
            "name: tls\nfixtures: [fixtures.yaml]\ncases:\n  - name: c\n    request:\n{request}    traffic: {{requests: 1}}\n    expect: {{status: 200}}\n"
        );
        let path = self.dir.path().join("suite.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Any certificate will do: the loader only checks that the file holds one.
fn self_signed_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(vec!["meshcheck test CA".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem()
}

fn refused(path: &Path) -> String {
    load_suite(path)
        .expect_err("the suite must be refused")
        .to_string()
}

fn assert_at(text: &str, line: usize) {
    assert!(
        text.contains(&format!("suite.yaml:{line}:")),
        "expected suite.yaml:{line}: in: {text}"
    );
}

#[test]
fn https_with_a_ca_file_resolves_against_the_suite_directory() {
    let scratch = Scratch::new();
    let path = scratch.suite(
        "      gateway: test/gw\n      url: https://test.example.com/\n      tls: {caFile: ca.pem}\n",
    );
    let suite = load_suite(&path).unwrap();
    let case = &suite.cases[0];
    assert_eq!(case.port, 443);
    assert_eq!(case.tls.extra_ca_file, Some(scratch.path("ca.pem")));
    assert!(!case.tls.insecure_skip_verify);
}

#[test]
fn https_without_tls_verifies_against_the_platform_store() {
    let scratch = Scratch::new();
    let path = scratch.suite("      gateway: test/gw\n      url: https://test.example.com/\n");
    let case = &load_suite(&path).unwrap().cases[0];
    assert_eq!(case.tls, meshcheck::traffic::TlsOptions::default());
}

/// Loads a suite whose case has this `request:` block, and checks it is refused at
/// `line` of the suite with every one of `expected` in the message.
fn assert_refused(request: &str, line: usize, expected: &[&str]) {
    let scratch = Scratch::new();
    // A private key given where a CA belongs: PEM, but no certificate in it.
    std::fs::write(
        scratch.path("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIDm5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let text = refused(&scratch.suite(request));
    assert_at(&text, line);
    for part in expected {
        assert!(text.contains(part), "expected {part:?} in: {text}");
    }
}

#[test]
fn https_needs_an_https_listener_on_the_port() {
    assert_refused(
        "      gateway: test/gw\n      url: https://test.example.com:8443/\n",
        7,
        &[
            "test/gw has no HTTPS listener on port 8443; its listeners: http (HTTP 80), https (HTTPS 443)",
        ],
    );
    // Plain http to the TLS port is the same mistake the other way round.
    assert_refused(
        "      gateway: test/gw\n      url: http://test.example.com:443/\n",
        7,
        &["has no HTTP listener on port 443"],
    );
}

#[test]
fn tls_on_an_http_url_is_refused_at_tls() {
    assert_refused(
        "      gateway: test/gw\n      url: http://test.example.com/\n      tls: {caFile: ca.pem}\n",
        8,
        &["`tls` only applies to https URLs"],
    );
}

#[test]
fn a_missing_ca_file_is_located() {
    assert_refused(
        "      gateway: test/gw\n      url: https://test.example.com/\n      tls:\n        caFile: nope.pem\n",
        9,
        &["cannot read CA file", "nope.pem"],
    );
}

#[test]
fn a_ca_file_without_certificates_is_located() {
    assert_refused(
        "      gateway: test/gw\n      url: https://test.example.com/\n      tls:\n        caFile: key.pem\n",
        9,
        &["holds no PEM certificate"],
    );
}

#[test]
fn ca_file_and_insecure_together_are_refused() {
    assert_refused(
        "      gateway: test/gw\n      url: https://test.example.com/\n      tls:\n        caFile: ca.pem\n        insecureSkipVerify: true\n",
        10,
        &["give either `caFile` or `insecureSkipVerify`"],
    );
}

#[test]
fn an_unknown_tls_key_is_located() {
    assert_refused(
        "      gateway: test/gw\n      url: https://test.example.com/\n      tls:\n        insecure: true\n",
        9,
        &["unknown field `insecure`"],
    );
}

#[test]
fn https_east_west_is_refused() {
    assert_refused(
        "      service: test/backend\n      url: https://backend.test/\n",
        7,
        &["east-west requests are plain http"],
    );
}

#[test]
fn other_schemes_are_refused() {
    assert_refused(
        "      gateway: test/gw\n      url: ftp://test.example.com/\n",
        7,
        &["only http, https, ws and wss URLs are supported, not `ftp`"],
    );
}

// End to end on the local target: the shipped `ingress-tls` suite, changed in a copy,
// run by the real binary (real Envoy terminating TLS with the fixtures' certificate).

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `suites/ingress-tls.yaml` and the fixtures it names, same layout, with
/// `from` replaced by `to` in the suite (which must contain `from`).
fn tls_suite_with(from: &str, to: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("meshcheck-suite-tls-")
        .tempdir()
        .unwrap();
    for fixtures in ["ingress-canary", "ingress-tls"] {
        let target = dir.path().join("fixtures").join(fixtures);
        std::fs::create_dir_all(&target).unwrap();
        for entry in std::fs::read_dir(repo().join("fixtures").join(fixtures)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(dir.path().join("suites")).unwrap();
    let text = std::fs::read_to_string(repo().join("suites/ingress-tls.yaml")).unwrap();
    assert!(
        text.contains(from),
        "suites/ingress-tls.yaml lacks {from:?}"
    );
    let suite = dir.path().join("suites/ingress-tls.yaml");
    std::fs::write(&suite, text.replace(from, to)).unwrap();
    (dir, suite)
}

const CA_LINES: &str = "      tls:\n        caFile: ../fixtures/ingress-tls/ca.pem\n";

/// What a run of the https case left: its exit code, the terminal report and the JSON
/// report; the JUnit and HTML reports are next to it in the directory.
struct HttpsRun {
    code: Option<i32>,
    terminal: String,
    report: serde_json::Value,
}

fn run_https_case(suite: &Path, reports: &Path) -> HttpsRun {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .arg("run")
        .args(["--filter", "ingress-tls::https-weighted-split", "--exact"])
        .arg("--json")
        .arg(reports.join("report.json"))
        .arg("--junit")
        .arg(reports.join("report.xml"))
        .arg("--html")
        .arg(reports.join("report.html"))
        .arg(suite)
        .output()
        .unwrap();
    // The terminal report goes to stderr when stdout is not a terminal.
    let terminal = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = std::fs::read(reports.join("report.json"))
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .unwrap_or_else(|err| panic!("no JSON report ({err}): {terminal}"));
    HttpsRun {
        code: output.status.code(),
        terminal,
        report,
    }
}

#[test]
fn without_the_ca_the_case_fails_at_once_naming_the_certificate() {
    let (dir, suite) = tls_suite_with(CA_LINES, "");
    let HttpsRun { code, terminal, .. } = run_https_case(&suite, dir.path());
    assert_eq!(code, Some(1), "{terminal}");
    // Only the fail-fast path says "rejected"; waiting out convergence would say
    // "did not converge".
    assert!(
        terminal.contains("the gateway's certificate for test.devopscube.com was rejected"),
        "{terminal}"
    );
    assert!(terminal.contains("UnknownIssuer"), "{terminal}");
    assert!(!terminal.contains("WARNING"), "{terminal}");
}

#[test]
fn insecure_skip_verify_passes_and_every_report_warns() {
    let (dir, suite) = tls_suite_with(CA_LINES, "      tls:\n        insecureSkipVerify: true\n");
    let HttpsRun {
        code,
        terminal,
        report,
    } = run_https_case(&suite, dir.path());
    assert_eq!(code, Some(0), "{terminal}");
    assert!(
        terminal.contains(
            "WARNING ingress-tls::https-weighted-split: TLS certificate verification is OFF"
        ),
        "{terminal}"
    );
    let case = &report["cases"][0];
    assert_eq!(case["outcome"], "passed", "{case}");
    let warnings = case["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{case}");
    assert!(
        warnings[0].as_str().unwrap().contains("insecureSkipVerify"),
        "{case}"
    );

    let junit = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    assert!(
        junit.contains("<system-err>warning: TLS certificate verification is OFF"),
        "{junit}"
    );
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<p class=\"warning\">"), "{html}");
}

#[test]
fn verified_https_passes_without_warnings() {
    let (dir, suite) = tls_suite_with(CA_LINES, CA_LINES);
    let HttpsRun {
        code,
        terminal,
        report,
    } = run_https_case(&suite, dir.path());
    assert_eq!(code, Some(0), "{terminal}");
    assert!(!terminal.contains("WARNING"), "{terminal}");
    assert_eq!(report["cases"][0]["warnings"], serde_json::json!([]));
    assert_eq!(report["cases"][0]["split"]["decision"], "pass");
}

#[test]
fn lint_warns_about_insecure_cases() {
    let (_dir, suite) = tls_suite_with(CA_LINES, "      tls:\n        insecureSkipVerify: true\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .arg("lint")
        .arg(&suite)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "case `ingress-tls::https-weighted-split` turns TLS certificate verification off"
        ),
        "{stderr}"
    );
    assert!(stdout.contains("0 errors, 1 warning"), "{stdout}");
}
