//! Reports written when the run finishes: JSON (schema in `schemas/report.schema.json`,
//! generated from these types by `meshcheck schema report`), JUnit XML and HTML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use schemars::JsonSchema;
use serde::Serialize;

use super::terminal::{failure_block, statistics_block};
use crate::runner::{
    CaseResult, Event, Outcome, Pending, Phase, PhaseTiming, RunEnvironment, RunSummary,
};
use crate::targets::CleanupReport;

/// Bump when a field changes meaning or goes away; adding fields keeps the version.
pub const JSON_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to write report {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to serialize JSON report {}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to serialize YAML report {}: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("failed to serialize JUnit report {}", path.display())]
    Junit {
        path: PathBuf,
        #[source]
        source: quick_junit::SerializeError,
    },
}

/// A suite whose environment could not be brought up; its cases are reported failed.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SetupFailure {
    pub suite: String,
    pub error: String,
}

/// A wait that lasted long enough to say what it was waiting for: the last thing it
/// said.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LongWait {
    pub phase: Phase,
    /// How long it had waited when it last said so.
    pub waited_seconds: f64,
    /// What it was still waiting for, and why.
    pub pending: Vec<Pending>,
}

/// Everything a meshcheck run produced: the JSON report (`--json FILE`).
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[schemars(title = "meshcheck run report")]
pub struct RunRecord {
    /// Bumped when a field changes meaning or goes away; new fields keep the version.
    pub schema_version: u32,
    /// When the run started, RFC 3339 in UTC.
    pub started_at: String,
    /// Where the run happened and the versions of what it tested.
    pub environment: RunEnvironment,
    pub summary: RunSummary,
    /// The process exit code the run maps to (see docs/reports.md).
    pub exit_code: i32,
    pub duration_seconds: f64,
    /// One entry per selected case, in execution order.
    pub cases: Vec<CaseResult>,
    pub setup_failures: Vec<SetupFailure>,
    /// Suite name -> what its shutdown removed, and what it could not.
    pub cleanup: BTreeMap<String, CleanupReport>,
    /// Suite name -> its waits that ran long (readiness, convergence), one per phase:
    /// the last word of the latest such wait. Absent when no wait ran long.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub long_waits: BTreeMap<String, Vec<LongWait>>,
    /// Suite name -> how long each of its phases took (bring-up, apply, wait, and per
    /// case convergence and traffic, cleanup), in order, measured as the suite ran.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phase_timings: BTreeMap<String, Vec<PhaseTiming>>,
    /// Suite name -> when this record saw it start, for JUnit's `timestamp`.
    #[serde(skip)]
    #[schemars(skip)]
    pub suite_started: BTreeMap<String, chrono::DateTime<chrono::FixedOffset>>,
}

/// The JSON Schema of [`RunRecord`], as checked in at `schemas/report.schema.json`.
pub fn report_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunRecord)).unwrap_or(serde_json::Value::Null)
}

impl RunRecord {
    pub fn new() -> Self {
        RunRecord {
            schema_version: JSON_SCHEMA_VERSION,
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            environment: RunEnvironment {
                meshcheck: env!("CARGO_PKG_VERSION").to_string(),
                ..RunEnvironment::default()
            },
            ..RunRecord::default()
        }
    }

    /// Folds one event in. Reports only ever see events.
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::RunStarted { target, .. } => self.environment.target = Some(*target),
            Event::Environment { environment, .. } => {
                let target = self.environment.target;
                self.environment = environment.clone();
                self.environment.target = self.environment.target.or(target);
            }
            Event::SuiteStarted { suite, .. } => {
                let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
                self.suite_started.insert(suite.clone(), now.fixed_offset());
            }
            Event::StillWaiting {
                suite,
                phase,
                waited,
                pending,
            } => {
                let wait = LongWait {
                    phase: *phase,
                    waited_seconds: waited.as_secs_f64(),
                    pending: pending.clone(),
                };
                let waits = self.long_waits.entry(suite.clone()).or_default();
                match waits.iter_mut().find(|w| w.phase == *phase) {
                    Some(same_phase) => *same_phase = wait,
                    None => waits.push(wait),
                }
            }
            Event::CaseFinished { result } => self.cases.push((**result).clone()),
            Event::SetupFailed { suite, error } => self.setup_failures.push(SetupFailure {
                suite: suite.clone(),
                error: super::one_line(&**error),
            }),
            Event::PhaseTimings { suite, phases } => {
                self.phase_timings.insert(suite.clone(), phases.clone());
            }
            Event::SuiteFinished { suite, cleanup } => {
                self.cleanup.insert(suite.clone(), cleanup.clone());
            }
            Event::RunFinished { summary, duration } => {
                self.summary = summary.clone();
                self.exit_code = summary.exit_code();
                self.duration_seconds = duration.as_secs_f64();
            }
            _ => {}
        }
    }

    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|source| ReportError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        text.push('\n');
        write_file(path, text.as_bytes())
    }

    pub fn write_html(&self, path: &Path) -> Result<(), ReportError> {
        write_file(path, super::html::render(self).as_bytes())
    }

    /// One testsuite per meshcheck suite, one testcase per case; the failure keeps the
    /// one-line message and the whole diagnosis block (the chainsaw/kuttl complaint).
    /// Passed cases carry their statistics as system-out. The output validates against
    /// the Jenkins/Surefire JUnit XSD in `schemas/junit-10.xsd`, which has no properties
    /// on a testcase: per-case figures go in the text.
    pub fn to_junit(&self) -> Report {
        let mut report = Report::new("meshcheck");
        report.set_time(Duration::from_secs_f64(self.duration_seconds));
        let mut suites: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
        for case in &self.cases {
            suites.entry(case.suite.as_str()).or_default().push(case);
        }
        for failure in &self.setup_failures {
            suites.entry(failure.suite.as_str()).or_default();
        }
        for (name, cases) in suites {
            let mut suite = TestSuite::new(name);
            if let Some(started) = self.suite_started.get(name) {
                suite.set_timestamp(*started);
            }
            let mut problems: Vec<String> = self
                .setup_failures
                .iter()
                .filter(|f| f.suite == name)
                .map(|f| format!("setup failed: {}", f.error))
                .collect();
            if let Some(cleanup) = self.cleanup.get(name) {
                problems.extend(
                    cleanup
                        .failed
                        .iter()
                        .map(|f| format!("cleanup failed: {f}")),
                );
            }
            if !problems.is_empty() {
                suite.set_system_err(problems.join("\n"));
            }
            let env = &self.environment;
            let properties = [
                ("target", env.target.map(|t| t.to_string())),
                ("meshcheck.version", Some(env.meshcheck.clone())),
                ("envoy.version", env.envoy.clone()),
                ("istio.version", env.istio.clone()),
                ("gateway-api.version", env.gateway_api.clone()),
                ("gateway-api.channel", env.gateway_api_channel.clone()),
                ("kubernetes.version", env.kubernetes.clone()),
                ("meshcheck.run-id", env.run_id.clone()),
            ];
            for (key, value) in properties {
                if let Some(value) = value {
                    suite.add_property(Property::new(key, value));
                }
            }
            let timings = self.phase_timings.get(name).map(Vec::as_slice);
            for (key, value) in super::phase_properties::phase_properties(timings.unwrap_or(&[])) {
                suite.add_property(Property::new(key, value));
            }
            for wait in self.long_waits.get(name).into_iter().flatten() {
                let pending: Vec<String> = wait
                    .pending
                    .iter()
                    .map(|p| format!("{}: {}", p.object, p.reason))
                    .collect();
                suite.add_property(Property::new(
                    format!("waited.{}", wait.phase),
                    format!("{:.0}s: {}", wait.waited_seconds, pending.join("; ")),
                ));
            }
            let mut time = Duration::ZERO;
            for case in cases {
                let status = match case.outcome {
                    Outcome::Passed => TestCaseStatus::success(),
                    Outcome::Skipped => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(case.message.to_string());
                        s
                    }
                    Outcome::Failed => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message(case.message.to_string());
                        s.set_type("assertion");
                        s.set_description(failure_block(case));
                        s
                    }
                };
                let mut test_case = TestCase::new(case.name.as_str(), status);
                test_case.set_classname(case.suite.as_str());
                test_case.set_time(case.duration);
                if case.outcome == Outcome::Passed {
                    test_case.set_system_out(format!(
                        "{}\n{}",
                        case.message,
                        statistics_block(case)
                    ));
                }
                if !case.warnings.is_empty() {
                    let warnings: Vec<String> = case
                        .warnings
                        .iter()
                        .map(|w| format!("warning: {w}"))
                        .collect();
                    test_case.set_system_err(warnings.join("\n"));
                }
                time += case.duration;
                suite.add_test_case(test_case);
            }
            suite.set_time(time);
            report.add_test_suite(suite);
        }
        report
    }

    pub fn write_junit(&self, path: &Path) -> Result<(), ReportError> {
        let text = self
            .to_junit()
            .to_string()
            .map_err(|source| ReportError::Junit {
                path: path.to_path_buf(),
                source,
            })?;
        write_file(path, text.as_bytes())
    }
}

pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn still_waiting(phase: Phase, secs: u64, reason: &str) -> Event {
        Event::StillWaiting {
            suite: "ingress-canary".into(),
            phase,
            waited: Duration::from_secs(secs),
            pending: vec![Pending {
                object: "Deployment istio-test/backend-v1".into(),
                reason: reason.into(),
            }],
        }
    }

    #[test]
    fn phase_timings_are_junit_suite_properties_and_an_html_table() {
        use crate::runner::{DataPlaneTiming, KindReady};
        let timing = |phase: Phase, case: Option<&str>, seconds: f64| PhaseTiming {
            phase,
            case: case.map(str::to_owned),
            seconds,
            ready_by_kind: Vec::new(),
            since_config_applied: None,
        };
        let mut record = RunRecord::new();
        record.record(&Event::PhaseTimings {
            suite: "ingress-canary".into(),
            phases: vec![
                timing(Phase::Apply, None, 0.25),
                // The apply phase is several steps: they add up.
                timing(Phase::Apply, None, 0.5),
                PhaseTiming {
                    ready_by_kind: vec![
                        KindReady {
                            kind: "Deployment".into(),
                            seconds: 45.1,
                        },
                        KindReady {
                            kind: "Gateway".into(),
                            seconds: 12.0,
                        },
                    ],
                    ..timing(Phase::Wait, None, 45.12)
                },
                PhaseTiming {
                    since_config_applied: Some(DataPlaneTiming {
                        first_good_seconds: Some(47.2),
                        in_a_row_seconds: None,
                    }),
                    ..timing(Phase::Converge, Some("weighted-split"), 2.31)
                },
                timing(Phase::Cleanup, None, 1.0),
            ],
        });
        record.record(&Event::CaseFinished {
            result: Box::new(CaseResult::without_traffic(
                "ingress-canary",
                "weighted-split",
                Outcome::Skipped,
                crate::runner::CaseMessage::Skipped("not today".into()),
            )),
        });
        let junit = record.to_junit().to_string().unwrap();
        let properties: Vec<&str> = junit
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(r#"<property name="phase."#))
            .collect();
        assert_eq!(
            properties,
            [
                r#"<property name="phase.apply" value="0.750s"/>"#,
                r#"<property name="phase.wait" value="45.120s"/>"#,
                r#"<property name="phase.wait.ready.Deployment" value="45.100s"/>"#,
                r#"<property name="phase.wait.ready.Gateway" value="12.000s"/>"#,
                r#"<property name="phase.converge.weighted-split" value="2.310s"/>"#,
                r#"<property name="phase.converge.weighted-split.first-good" value="47.200s"/>"#,
                r#"<property name="phase.cleanup" value="1.000s"/>"#,
            ],
            "{junit}"
        );
        // The HTML report has the same, as a table per suite, the slowest phase in bold
        // (the wait: its Deployment detail is not a phase of its own).
        let html = super::super::html::render(&record);
        assert!(html.contains("<caption>ingress-canary</caption>"), "{html}");
        assert!(
            html.contains("<tr><td><b>wait</b></td><td><b>45.120s</b></td></tr>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><td>wait.ready.Deployment</td><td>45.100s</td></tr>"),
            "{html}"
        );
        assert!(
            html.contains("<tr><td>converge.weighted-split.first-good</td><td>47.200s</td></tr>"),
            "{html}"
        );
    }

    #[test]
    fn long_waits_keep_the_last_word_of_each_phase_in_json_and_junit() {
        let mut record = RunRecord::new();
        record.record(&still_waiting(Phase::Wait, 5, "0/3 pods ready"));
        record.record(&still_waiting(Phase::Wait, 15, "1/3 pods ready"));
        record.record(&still_waiting(Phase::Converge, 6, "last response was 503"));
        record.record(&Event::CaseFinished {
            result: Box::new(CaseResult::without_traffic(
                "ingress-canary",
                "weighted-split",
                Outcome::Skipped,
                crate::runner::CaseMessage::Skipped("not today".into()),
            )),
        });
        let json = record.to_json().unwrap();
        assert_eq!(
            json["long_waits"]["ingress-canary"],
            serde_json::json!([
                {"phase": "wait", "waited_seconds": 15.0,
                 "pending": [{"object": "Deployment istio-test/backend-v1", "reason": "1/3 pods ready"}]},
                {"phase": "converge", "waited_seconds": 6.0,
                 "pending": [{"object": "Deployment istio-test/backend-v1", "reason": "last response was 503"}]},
            ])
        );
        let junit = record.to_junit().to_string().unwrap();
        assert!(
            junit.contains(
                r#"<property name="waited.wait" value="15s: Deployment istio-test/backend-v1: 1/3 pods ready"/>"#
            ),
            "{junit}"
        );
        assert!(
            RunRecord::new()
                .to_json()
                .unwrap()
                .get("long_waits")
                .is_none()
        );
    }
}
