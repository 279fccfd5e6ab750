//! Hostile and malformed input through the real binary: `meshcheck lint` and
//! `meshcheck run` both refuse it with a located error and exit code 2, never a panic,
//! a hang or a runaway allocation. Large and generated inputs are made here, not
//! committed.

use std::path::{Path, PathBuf};
use std::process::Command;

const SEED_FIXTURES: [&str; 4] = [
    "backends.yaml",
    "gateway.yaml",
    "httproute.yaml",
    "destinationrules.yaml",
];

/// A directory with a copy of the seed fixtures, to write bad suites next to.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingress-canary");
    for file in SEED_FIXTURES {
        std::fs::copy(seed.join(file), dir.path().join(file)).unwrap();
    }
    dir
}

fn suite_text(name: &str, fixtures: &[&str]) -> String {
    let list: String = fixtures.iter().map(|f| format!("  - {f}\n")).collect();
    format!(
        "name: {name}\nfixtures:\n{list}cases:\n  - name: one\n    request:\n      gateway: istio-test/istio-gateway\n      url: http://test.devopscube.com/\n    traffic:\n      requests: 10\n    expect:\n      status: 200\n"
    )
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs `lint` and `run` on `path`; both must exit 2 with an error naming
/// `located_in` with a line and column. Returns lint's stderr.
fn refused(path: &Path, located_in: &str) -> String {
    let mut first = None;
    for command in ["lint", "run"] {
        let output = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
            .arg(command)
            .arg(path)
            // A run that got past loading would need Envoy: make that impossible.
            .env("MESHCHECK_ENVOY", "/nonexistent/envoy")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        let located =
            regex::Regex::new(&format!(r"{}:\d+:\d+", regex::escape(located_in))).unwrap();
        assert!(
            located.is_match(&stderr),
            "{command}: no `{located_in}:LINE:COL` in {stderr}"
        );
        first.get_or_insert(stderr);
    }
    first.unwrap()
}

#[test]
fn alias_bomb_in_a_suite_is_refused() {
    let dir = workspace();
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..10 {
        let prev = (b'a' + level - 1) as char;
        let this = (b'a' + level) as char;
        text.push_str(&format!("{this}: &{this} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    let path = write(dir.path(), "bomb.yaml", text);
    let stderr = refused(&path, "bomb.yaml");
    assert!(
        stderr.contains("invalid YAML") || stderr.contains("alias"),
        "{stderr}"
    );
}

#[test]
fn alias_bomb_in_a_fixture_is_refused() {
    let dir = workspace();
    let mut text = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: istio-test\ndata:\n  a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n",
    );
    for level in 1..10 {
        let prev = (b'a' + level - 1) as char;
        let this = (b'a' + level) as char;
        text.push_str(&format!("  {this}: &{this} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    write(dir.path(), "bomb-fixture.yaml", text);
    let suite = write(
        dir.path(),
        "suite.yaml",
        suite_text(
            "bombed",
            &[
                "backends.yaml",
                "gateway.yaml",
                "httproute.yaml",
                "bomb-fixture.yaml",
            ],
        ),
    );
    refused(&suite, "bomb-fixture.yaml");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let dir = workspace();
    let depth = 100_000;
    let text = format!(
        "name: deep\nfixtures: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let path = write(dir.path(), "deep.yaml", text);
    refused(&path, "deep.yaml");
    let map_depth = 20_000;
    let text: String = (0..map_depth)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let path = write(dir.path(), "deep-map.yaml", text);
    refused(&path, "deep-map.yaml");
}

#[test]
fn huge_files_are_refused_before_parsing() {
    let dir = workspace();
    let size = usize::try_from(meshcheck::manifest::MAX_FILE_BYTES).unwrap() + 1;
    let mut text = suite_text("huge", &["backends.yaml"]);
    text.push('#');
    text.push_str(&"x".repeat(size));
    let path = write(dir.path(), "huge.yaml", text);
    let stderr = refused(&path, "huge.yaml");
    assert!(
        stderr.contains("-byte limit for manifests and suites"),
        "{stderr}"
    );
}

#[test]
fn duplicate_suite_names_across_files_are_refused() {
    let dir = workspace();
    let suites = dir.path().join("suites");
    std::fs::create_dir(&suites).unwrap();
    let fixtures: Vec<String> = SEED_FIXTURES.iter().map(|f| format!("../{f}")).collect();
    let fixtures: Vec<&str> = fixtures.iter().map(String::as_str).collect();
    write(&suites, "a.yaml", suite_text("same", &fixtures));
    write(&suites, "b.yaml", suite_text("same", &fixtures));
    let stderr = refused(&suites, "b.yaml");
    assert!(stderr.contains("same"), "{stderr}");
    assert!(stderr.contains("a.yaml"), "{stderr}");
}

#[test]
fn the_same_object_in_two_fixture_files_is_refused() {
    let dir = workspace();
    std::fs::copy(
        dir.path().join("gateway.yaml"),
        dir.path().join("gateway-again.yaml"),
    )
    .unwrap();
    let suite = write(
        dir.path(),
        "suite.yaml",
        suite_text(
            "twice",
            &[
                "backends.yaml",
                "gateway.yaml",
                "httproute.yaml",
                "gateway-again.yaml",
            ],
        ),
    );
    let stderr = refused(&suite, "gateway-again.yaml");
    assert!(stderr.contains("istio-gateway"), "{stderr}");
}

#[test]
fn wrong_types_anywhere_are_located() {
    let dir = workspace();
    let good = suite_text("typed", &SEED_FIXTURES);
    let swaps = [
        ("name: typed", "name: [typed]"),
        ("fixtures:\n", "fixtures: 5\nx:\n"),
        ("cases:\n", "cases: many\nx:\n"),
        ("requests: 10", "requests: ten"),
        ("requests: 10", "requests: -10"),
        ("requests: 10", "requests: 1.5"),
        ("status: 200", "status: {code: 200}"),
        ("url: http://test.devopscube.com/", "url: [http]"),
        ("      requests: 10", "      requests: 10\n      timeout: 5"),
        (
            "      requests: 10",
            "      requests: 10\n      concurrency: true",
        ),
    ];
    for (i, (from, to)) in swaps.iter().enumerate() {
        assert!(good.contains(from), "{from}");
        let name = format!("wrong-{i}.yaml");
        let path = write(dir.path(), &name, good.replacen(from, to, 1));
        refused(&path, &name);
    }
}

#[test]
fn non_utf8_suites_and_fixtures_are_located() {
    let dir = workspace();
    let path = write(dir.path(), "latin1.yaml", b"name: caf\xe9\n");
    let stderr = refused(&path, "latin1.yaml");
    assert!(stderr.contains("latin1.yaml:1:10:"), "{stderr}");
    assert!(stderr.contains("UTF-8"), "{stderr}");
    write(
        dir.path(),
        "latin1-fixture.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf\xe9\n",
    );
    let suite = write(
        dir.path(),
        "suite.yaml",
        suite_text(
            "latin",
            &[
                "backends.yaml",
                "gateway.yaml",
                "httproute.yaml",
                "latin1-fixture.yaml",
            ],
        ),
    );
    let stderr = refused(&suite, "latin1-fixture.yaml");
    assert!(stderr.contains("latin1-fixture.yaml:4:"), "{stderr}");
}

/// A route rule the local target cannot send to Envoy (a regex RE2 refuses) is
/// refused at the fixture's line before Envoy is needed.
#[test]
fn an_invalid_route_regex_is_refused() {
    let dir = workspace();
    write(
        dir.path(),
        "regex-route.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: regex\n  namespace: istio-test\nspec:\n  parentRefs: [{name: istio-gateway}]\n  rules:\n  - matches:\n    - path: {type: RegularExpression, value: \"/(unclosed\"}\n    backendRefs: [{name: backend-v1, port: 80}]\n",
    );
    let mut fixtures = SEED_FIXTURES.to_vec();
    fixtures.push("regex-route.yaml");
    let path = write(
        dir.path(),
        "regex-suite.yaml",
        suite_text("regex", &fixtures),
    );
    // `lint --target local` refuses it as bad input; `run` stops at bring-up, as for
    // every fixture the local target refuses, with the same located error.
    for (args, code) in [(vec!["lint", "--target", "local"], 2), (vec!["run"], 3)] {
        let output = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
            .args(&args)
            .arg(&path)
            .env("MESHCHECK_ENVOY", "/nonexistent/envoy")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains("regex-route.yaml:10:46:"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("not a valid regular expression"),
            "{args:?}: {stderr}"
        );
    }
}
