//! The report files of real runs on the local target: the JSON report against its
//! checked-in schema, JUnit against the Jenkins/Surefire XSD (xmllint), and the HTML
//! report rendered in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_meshcheck");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The reports of one real run, written once per suite file and shared by the tests.
struct Reports {
    _dir: tempfile::TempDir,
    json: PathBuf,
    junit: PathBuf,
    html: PathBuf,
    exit_code: Option<i32>,
    /// The terminal's output (the failure blocks).
    stderr: String,
}

fn run_with_reports(suite: &str) -> Reports {
    let dir = tempfile::tempdir().expect("temp dir");
    let (json, junit, html) = (
        dir.path().join("report.json"),
        dir.path().join("junit.xml"),
        dir.path().join("report.html"),
    );
    let output: Output = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--quiet", suite, "--json"])
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .arg("--html")
        .arg(&html)
        .output()
        .expect("run meshcheck");
    Reports {
        _dir: dir,
        json,
        junit,
        html,
        exit_code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn passing() -> &'static Reports {
    static REPORTS: OnceLock<Reports> = OnceLock::new();
    REPORTS.get_or_init(|| run_with_reports("suites/ingress-canary.yaml"))
}

fn failing() -> &'static Reports {
    static REPORTS: OnceLock<Reports> = OnceLock::new();
    REPORTS.get_or_init(|| run_with_reports("tests/data/reports/failing.yaml"))
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read report");
    serde_json::from_str(&text).expect("report is JSON")
}

fn checked_in_schema() -> serde_json::Value {
    read_json(&repo("schemas/report.schema.json"))
}

/// Regenerate with `meshcheck schema report > schemas/report.schema.json` or
/// `MESHCHECK_BLESS=1 cargo test --test integration reports::checked_in_schema_is_current`.
#[test]
fn checked_in_schema_is_current() {
    let generated = meshcheck::report::report_schema();
    let path = repo("schemas/report.schema.json");
    if std::env::var_os("MESHCHECK_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&generated).expect("schema text") + "\n";
        // Other tests of this process read the schema meanwhile: they see the old file
        // or the new one, never half of it.
        let mut staged = tempfile::NamedTempFile::new_in(repo("schemas")).expect("temp file");
        std::io::Write::write_all(&mut staged, text.as_bytes()).expect("write schema");
        // A temporary file is private (0600); the schema is an ordinary checked-in file.
        let readable = std::os::unix::fs::PermissionsExt::from_mode(0o644);
        staged
            .as_file()
            .set_permissions(readable)
            .expect("schema mode");
        staged.persist(&path).expect("replace schema");
    }
    assert!(
        checked_in_schema() == generated,
        "schemas/report.schema.json is stale: run \
         `MESHCHECK_BLESS=1 cargo test --test integration reports::checked_in_schema_is_current` \
         (or `meshcheck schema report > schemas/report.schema.json`) and commit it"
    );
}

fn validate(report: &serde_json::Value) -> Vec<String> {
    let schema = checked_in_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn json_report_of_a_passing_run_matches_the_schema() {
    let reports = passing();
    assert_eq!(reports.exit_code, Some(0));
    let report = read_json(&reports.json);
    assert_eq!(validate(&report), Vec::<String>::new());
    assert_eq!(report["environment"]["target"], "local");
    assert_eq!(
        report["environment"]["meshcheck"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(report["environment"]["envoy"].is_string(), "{report:#}");
    assert_eq!(report["exit_code"], 0);
    let case = &report["cases"][0];
    assert_eq!(case["suite"], "ingress-canary");
    assert_eq!(case["name"], "weighted-split");
    assert_eq!(case["outcome"], "passed");
    let requests = case["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    let by_backend: u64 = case["backends"]
        .as_object()
        .expect("backends")
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert_eq!(by_backend, requests, "{case:#}");
    assert_eq!(case["status_codes"]["200"].as_u64(), Some(requests));
    assert!(!case["message"].as_str().unwrap_or_default().is_empty());
}

#[test]
fn json_report_of_a_failing_run_matches_the_schema_and_keeps_the_diagnosis() {
    let reports = failing();
    assert_eq!(reports.exit_code, Some(1));
    let report = read_json(&reports.json);
    assert_eq!(validate(&report), Vec::<String>::new());
    assert_eq!(report["exit_code"], 1);
    let case = &report["cases"][0];
    assert_eq!(case["outcome"], "failed");
    assert_eq!(case["split"]["decision"], "fail");
    assert!(
        case["message"]
            .as_str()
            .is_some_and(|m| m.contains("none of the expected backends")),
        "{case:#}"
    );
    assert!(
        case["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{case:#}"
    );
}

#[test]
fn schema_rejects_a_report_missing_a_documented_field() {
    let mut report = read_json(&passing().json);
    let case = report["cases"][0].as_object_mut().expect("a case");
    case.remove("outcome");
    case.insert("requests".into(), "many".into());
    let errors = validate(&report);
    assert!(errors.iter().any(|e| e.contains("outcome")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("requests")), "{errors:?}");
}

/// Validates a JUnit file with xmllint. Without xmllint the test fails in CI (`CI` set;
/// `.ci/run` installs Debian's `libxml2-utils`) and elsewhere is skipped with a printed
/// reason, so `cargo test` on a fresh machine says what it did not check.
fn xmllint(xml: &Path) -> Option<Output> {
    let found = Command::new("xmllint").arg("--version").output().is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!(
                "xmllint is not installed: install libxml2-utils (`.ci/run` does) to validate JUnit reports"
            );
        }
        eprintln!(
            "skipped: xmllint is not installed (install libxml2-utils; CI does) so the JUnit schema is not checked"
        );
        return None;
    }
    Some(
        Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(repo("schemas/junit-10.xsd"))
            .arg(xml)
            .output()
            .expect("xmllint runs"),
    )
}

#[test]
fn junit_report_validates_and_keeps_the_failure() {
    let reports = failing();
    if let Some(output) = xmllint(&reports.junit) {
        assert!(
            output.status.success(),
            "xmllint rejected the JUnit report:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let xml = std::fs::read_to_string(&reports.junit).expect("read junit");
    assert!(
        xml.contains("<testcase name=\"split-misread\" classname=\"reports-failing\""),
        "{xml}"
    );
    assert!(
        xml.contains("message=\"1 of "),
        "the failure message is kept: {xml}"
    );
    assert!(xml.contains("expected vs observed per backend"), "{xml}");
    assert!(
        xml.contains("Envoy stats of the clusters the case"),
        "diagnostics are kept: {xml}"
    );
    assert!(xml.contains("<property name=\"envoy.version\""), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"reports-failing\"") && xml.contains(" timestamp=\"20"),
        "each testsuite says when it started: {xml}"
    );
    assert!(
        xml.contains("<property name=\"target\" value=\"local\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<system-out>"),
        "passed cases carry their statistics: {xml}"
    );
    assert!(xml.contains(" time=\""), "{xml}");
}

#[test]
fn junit_report_of_a_passing_run_validates() {
    let Some(output) = xmllint(&passing().junit) else {
        return;
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn xsd_validation_can_fail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<testsuites><testsuite name=\"s\" tests=\"1\" failures=\"0\" errors=\"0\"><testcase classname=\"s\"/></testsuite></testsuites>",
    )
    .expect("write");
    let Some(output) = xmllint(&bad) else {
        return;
    };
    assert!(
        !output.status.success(),
        "a testcase without a name must be rejected"
    );
}

/// The Chromium binary; `None` (the test is skipped with a reason) where it is not
/// installed, except in CI (`CI` set), where that fails the test.
fn chromium() -> Option<&'static str> {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if chromium.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium is not installed: `.ci/run` installs it with apt-get");
        }
        eprintln!("skipped: chromium is not installed (CI installs it with apt-get)");
    }
    chromium
}

/// Chromium renders the page; a screenshot must show the chart's colours. Without
/// Chromium the test fails in CI (`CI` set) and is skipped with a reason elsewhere.
fn screenshot(html: &Path) -> Option<Vec<(u8, u8, u8)>> {
    let chromium = chromium()?;
    let dir = tempfile::tempdir().expect("temp dir");
    let png_path = dir.path().join("shot.png");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1000,1400",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(
        png_path.exists(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).expect("open screenshot"),
    ));
    let mut reader = decoder.read_info().expect("png header");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).expect("png frame");
    let channels = info.color_type.samples();
    Some(
        buffer[..info.buffer_size()]
            .chunks(channels)
            .map(|p| (p[0], p[1], p[2]))
            .collect(),
    )
}

fn count(pixels: &[(u8, u8, u8)], hex: &str) -> usize {
    let rgb = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("colour");
    let want = ((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8);
    pixels.iter().filter(|p| **p == want).count()
}

const OBSERVED: &str = "#2b6cb0";
const EXPECTED: &str = "#dd6b20";

#[test]
fn html_report_shows_the_split_chart() {
    let html = std::fs::read_to_string(&passing().html).expect("read html");
    assert!(!html.contains("<script"), "no script in the report");
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "nothing fetched"
    );
    let Some(pixels) = screenshot(&passing().html) else {
        return;
    };
    // Two bars of ~50% of a 520-pixel plot, 22 pixels high: thousands of pixels.
    let bars = count(&pixels, OBSERVED);
    let markers = count(&pixels, EXPECTED);
    assert!(
        bars > 4000,
        "observed-share bars not visible: {bars} pixels"
    );
    assert!(
        markers > 50,
        "expected-weight markers not visible: {markers} pixels"
    );
}

#[test]
fn html_chart_check_can_fail() {
    // A page without split cases has no bars: the pixel check must see none.
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("empty.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>no chart</p></body></html>",
    )
    .expect("write");
    let Some(pixels) = screenshot(&page) else {
        return;
    };
    assert_eq!(count(&pixels, OBSERVED), 0);
}

/// A common laptop screen: the page must read well at this width.
const LAPTOP_WINDOW: &str = "--window-size=1366,768";

/// Where Chromium lays out one text of a split chart, in the chart's own units, and
/// where the chart and its case's section end on the page, in CSS pixels.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChartText {
    text: String,
    left: f64,
    right: f64,
    view_box_width: f64,
    chart_right: f64,
    section_right: f64,
}

/// Renders a copy of `html` at laptop width with a script that measures every text of
/// every split chart (the report itself has no script), and reads the measurements back
/// from the DOM Chromium dumps.
fn chart_texts(html: &Path) -> Option<Vec<ChartText>> {
    const MEASURE: &str = r#"<script>
const out = [];
for (const svg of document.querySelectorAll('svg.split-chart')) {
  const chart = svg.getBoundingClientRect();
  const section = svg.closest('section').getBoundingClientRect();
  for (const t of svg.querySelectorAll('text')) {
    const b = t.getBBox();
    out.push({text: t.textContent, left: b.x, right: b.x + b.width,
      viewBoxWidth: svg.viewBox.baseVal.width, chartRight: chart.right,
      sectionRight: section.right});
  }
}
const pre = document.createElement('pre');
pre.id = 'chart-texts';
pre.textContent = JSON.stringify(out);
document.body.append(pre);
</script>"#;
    let chromium = chromium()?;
    let dir = tempfile::tempdir().expect("temp dir");
    let page = std::fs::read_to_string(html).expect("read html");
    let measured = dir.path().join("measured.html");
    std::fs::write(
        &measured,
        page.replace("</body>", &format!("{MEASURE}</body>")),
    )
    .expect("write measured page");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            LAPTOP_WINDOW,
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("file://{}", measured.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&output.stdout);
    let json = dom
        .split_once("<pre id=\"chart-texts\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(json, _)| {
            json.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .unwrap_or_else(|| {
            panic!(
                "chromium dumped no measurements: {}\n{dom}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    Some(serde_json::from_str(&json).expect("measurements"))
}

/// Every text of the chart lies inside the chart's viewBox (nothing is cut at its
/// edges), and the chart ends inside its case's section at laptop width.
fn chart_problems(texts: &[ChartText]) -> Vec<String> {
    let mut problems = Vec::new();
    for t in texts {
        if t.left < 0.0 || t.right > t.view_box_width {
            problems.push(format!(
                "{:?} spans {:.1}..{:.1}, outside the viewBox 0..{}",
                t.text, t.left, t.right, t.view_box_width
            ));
        }
        if t.chart_right > t.section_right {
            problems.push(format!(
                "the chart ends at {:.1}px, past its section's edge at {:.1}px",
                t.chart_right, t.section_right
            ));
        }
    }
    problems.dedup();
    problems
}

#[test]
fn html_split_chart_labels_fit_at_laptop_width() {
    let Some(texts) = chart_texts(&passing().html) else {
        return;
    };
    // Tick labels, two names, two notes, three legend entries.
    assert!(texts.len() >= 10, "{texts:?}");
    let note = texts
        .iter()
        .find(|t| t.text.ends_with(" resp.)"))
        .unwrap_or_else(|| panic!("no per-backend note: {texts:?}"));
    assert!(note.text.contains(" vs 50.0% ("), "{note:?}");
    let problems = chart_problems(&texts);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn html_split_chart_fit_check_can_fail() {
    // The chart as it was: a note column too narrow for its text.
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("cut.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><section><svg class=\"split-chart\" width=\"920\" height=\"60\" \
         viewBox=\"0 0 920 60\"><text x=\"700\" y=\"30\" font-size=\"12\">\
         51.2% [42.6, 59.7] vs 50.0% (266 resp.)</text></svg></section></body></html>",
    )
    .expect("write");
    let Some(texts) = chart_texts(&page) else {
        return;
    };
    let problems = chart_problems(&texts);
    assert!(
        problems.iter().any(|p| p.contains("outside the viewBox")),
        "{problems:#?}"
    );
}

/// The report's text for `text`, escaped as the HTML report escapes it.
fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[test]
fn html_report_says_each_case_reason_once() {
    let html = std::fs::read_to_string(&passing().html).expect("read html");
    let report = read_json(&passing().json);
    let cases = report["cases"].as_array().expect("cases");
    let split = cases
        .iter()
        .find(|c| c["split"].is_object())
        .expect("a split case");
    let reason = split["split"]["reason"].as_str().expect("split reason");
    assert!(
        split["message"]
            .as_str()
            .unwrap_or_default()
            .contains(reason),
        "the message carries the split's reason: {split}"
    );
    for case in cases {
        let message = html_escaped(case["message"].as_str().expect("message"));
        assert_eq!(html.matches(&message).count(), 1, "{message}");
    }
    assert_eq!(html.matches(&html_escaped(reason)).count(), 1, "{reason}");
}

/// A stat of a limit no DestinationRule of the failing suite sets: Envoy's
/// `remaining_cx_pools` gauge counts down from 2^64-1.
const UNTOUCHED_LIMIT: &str = "remaining_cx_pools";

#[test]
fn failed_case_shows_its_route_clusters_changes_first_and_keeps_the_full_dump_in_json_only() {
    let failing = failing();
    let report = read_json(&failing.json);
    let case = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == "split-misread")
        .expect("the failed split case");
    let first = &case["diagnostics"][0];
    assert_eq!(
        first["title"],
        "Envoy stats of the clusters the case's route uses (change while the case measured)",
        "{case}"
    );
    let body = first["body"].as_str().expect("body");
    for line in body.lines() {
        assert!(
            line.starts_with("cluster.outbound|80||backend-v1.istio-test.svc.cluster.local.")
                || line
                    .starts_with("cluster.outbound|80||backend-v2.istio-test.svc.cluster.local."),
            "not a stat of the route's clusters: {line}"
        );
    }
    // The change is counted from when measuring started: convergence sent requests
    // to the route's clusters before, so their totals are larger than their changes.
    let (mut now, mut change) = (0, 0);
    for total in body.lines().filter(|l| l.contains(".upstream_rq_total: ")) {
        let (value, moved) = total
            .rsplit_once(": ")
            .map(|(_, v)| v.split_once(" (+").unwrap_or((v, "0)")))
            .map(|(value, moved)| {
                (
                    value.parse::<u64>().expect("value"),
                    moved.trim_end_matches(')').parse::<u64>().expect("change"),
                )
            })
            .unwrap_or_else(|| panic!("unreadable: {total}"));
        now += value;
        change += moved;
    }
    assert!(0 < change && change < now, "{change} of {now}:\n{body}");
    // Changes first, then the state they left.
    let lines: Vec<&str> = body.lines().collect();
    let first_unchanged = lines.iter().position(|l| !l.ends_with(')'));
    let last_changed = lines.iter().rposition(|l| l.ends_with(')'));
    if let (Some(unchanged), Some(changed)) = (first_unchanged, last_changed) {
        assert!(changed < unchanged, "{body}");
    }
    let shown = serde_json::to_string(&case["diagnostics"]).expect("json");
    assert!(!shown.contains(UNTOUCHED_LIMIT), "{shown}");
    // The full dump: in the JSON report, nowhere else.
    let dumps = case["diagnostic_dumps"]
        .as_array()
        .expect("diagnostic_dumps");
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert_eq!(dumps[0]["title"], "Envoy stats (every non-zero value)");
    assert!(
        dumps[0]["body"]
            .as_str()
            .expect("dump")
            .contains(UNTOUCHED_LIMIT),
        "{}",
        dumps[0]["body"]
    );
    assert!(
        failing.stderr.contains("change while the case measured"),
        "{}",
        failing.stderr
    );
    let junit = std::fs::read_to_string(&failing.junit).expect("junit");
    let html = std::fs::read_to_string(&failing.html).expect("html");
    for (name, text) in [
        ("terminal", &failing.stderr),
        ("JUnit", &junit),
        ("HTML", &html),
    ] {
        assert!(
            !text.contains(UNTOUCHED_LIMIT),
            "{name} shows {UNTOUCHED_LIMIT}:\n{text}"
        );
        assert!(
            !text.contains("every non-zero value"),
            "{name} shows the dump"
        );
    }
}
