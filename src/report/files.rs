//! Machine-readable reports, written when the run finishes: JSON (schema in
//! `schemas/report.schema.json`) and JUnit XML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use super::terminal::failure_block;
use crate::runner::{CaseResult, Event, Outcome, RunEnvironment, RunSummary};
use crate::target::CleanupReport;

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
    #[error("failed to serialize JUnit report {}", path.display())]
    Junit {
        path: PathBuf,
        #[source]
        source: quick_junit::SerializeError,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct SetupFailure {
    pub suite: String,
    pub error: String,
}

/// Everything the run produced, as the JSON report stores it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunRecord {
    pub schema_version: u32,
    pub environment: RunEnvironment,
    pub summary: RunSummary,
    pub duration_seconds: f64,
    pub cases: Vec<CaseResult>,
    pub setup_failures: Vec<SetupFailure>,
    pub cleanup: BTreeMap<String, CleanupReport>,
}

impl RunRecord {
    pub fn new() -> Self {
        RunRecord {
            schema_version: JSON_SCHEMA_VERSION,
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
            Event::Environment { environment } => {
                let target = self.environment.target;
                self.environment = environment.clone();
                self.environment.target = self.environment.target.or(target);
            }
            Event::CaseFinished { result } => self.cases.push((**result).clone()),
            Event::SetupFailed { suite, error } => self.setup_failures.push(SetupFailure {
                suite: suite.clone(),
                error: error.clone(),
            }),
            Event::SuiteFinished { suite, cleanup } => {
                self.cleanup.insert(suite.clone(), cleanup.clone());
            }
            Event::RunFinished { summary, duration } => {
                self.summary = summary.clone();
                self.duration_seconds = duration.as_secs_f64();
            }
            _ => {}
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        write_file(path, text.as_bytes())
    }

    /// One testsuite per meshcheck suite, one testcase per case; the failure keeps the
    /// one-line message and the whole diagnosis block (the chainsaw/kuttl complaint).
    pub fn to_junit(&self) -> Report {
        let mut report = Report::new("meshcheck");
        report.set_time(Duration::from_secs_f64(self.duration_seconds));
        let mut suites: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
        for case in &self.cases {
            suites.entry(case.suite.as_str()).or_default().push(case);
        }
        for (name, cases) in suites {
            let mut suite = TestSuite::new(name);
            let env = &self.environment;
            let properties = [
                ("target", env.target.map(|t| t.to_string())),
                ("meshcheck.version", Some(env.meshcheck.clone())),
                ("envoy.version", env.envoy.clone()),
                ("istio.version", env.istio.clone()),
                ("gateway-api.version", env.gateway_api.clone()),
                ("kubernetes.version", env.kubernetes.clone()),
            ];
            for (key, value) in properties {
                if let Some(value) = value {
                    suite.add_property(Property::new(key, value));
                }
            }
            let mut time = Duration::ZERO;
            for case in cases {
                let status = match case.outcome {
                    Outcome::Passed => TestCaseStatus::success(),
                    Outcome::Skipped => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(case.message.as_str());
                        s
                    }
                    Outcome::Failed => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message(case.message.as_str());
                        s.set_type("assertion");
                        s.set_description(failure_block(case));
                        s
                    }
                };
                let mut test_case = TestCase::new(case.name.as_str(), status);
                test_case.set_classname(case.suite.as_str());
                test_case.set_time(case.duration);
                test_case.add_property(Property::new("requests", case.requests.to_string()));
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

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
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
