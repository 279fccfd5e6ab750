//! `--conformance-report FILE`: the run's conformance suites counted the way the
//! Gateway API conformance suite counts its tests, written in its `ConformanceReport`
//! shape (kubernetes-sigs/gateway-api `conformance/apis/v1/conformancereport.go`,
//! `profilereport.go`), so the file sits next to an implementation's published report
//! (e.g. Istio's) and compares field by field.
//!
//! One suite with a `conformance:` key is one test: it failed if any of its cases
//! failed (its setup included), was skipped if every case was, and passed otherwise.
//! Suites without the key are not counted. A test is core or extended as its features
//! say (`suite::Conformance::extended`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::files::{ReportError, write_file};
use crate::runner::{Event, Outcome, RunEnvironment, TargetKind};
use crate::suite::{Conformance, Profile};

/// The Gateway API release the scenarios in `suites/conformance/` come from.
pub const SCENARIOS_GATEWAY_API_VERSION: &str = "v1.3.0";

/// Folds runner events into a conformance report.
#[derive(Debug, Default)]
pub struct ConformanceRecord {
    target: Option<TargetKind>,
    environment: RunEnvironment,
    /// Suite name -> its test, for the suites that stand for one.
    tests: BTreeMap<String, Conformance>,
    /// Suite name -> the outcomes of its cases, in order.
    outcomes: BTreeMap<String, Vec<Outcome>>,
    date: String,
}

impl ConformanceRecord {
    pub fn new() -> Self {
        ConformanceRecord {
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ..ConformanceRecord::default()
        }
    }

    pub fn record(&mut self, event: &Event) {
        match event {
            Event::RunStarted { target, .. } => self.target = Some(*target),
            Event::Environment { environment, .. } => self.environment = environment.clone(),
            Event::SuiteStarted {
                suite,
                conformance: Some(conformance),
                ..
            } => {
                self.tests.insert(suite.clone(), conformance.clone());
            }
            Event::CaseFinished { result } => self
                .outcomes
                .entry(result.suite.clone())
                .or_default()
                .push(result.outcome),
            _ => {}
        }
    }

    /// The report, as upstream would write it for these results.
    pub fn report(&self) -> ConformanceReport {
        let mut by_profile: BTreeMap<Profile, Vec<(&Conformance, Outcome)>> = BTreeMap::new();
        for (suite, test) in &self.tests {
            let outcomes = self.outcomes.get(suite).map_or(&[][..], Vec::as_slice);
            by_profile
                .entry(test.profile)
                .or_default()
                .push((test, test_outcome(outcomes)));
        }
        let profiles = by_profile
            .into_iter()
            .map(|(profile, tests)| profile_report(profile, &tests))
            .collect();
        let (implementation, mode) = self.implementation();
        ConformanceReport {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "ConformanceReport",
            date: self.date.clone(),
            gateway_api_version: self
                .environment
                .gateway_api
                .clone()
                .unwrap_or_else(|| SCENARIOS_GATEWAY_API_VERSION.to_string()),
            gateway_api_channel: self
                .environment
                .gateway_api_channel
                .clone()
                .unwrap_or_else(|| "experimental".to_string()),
            implementation,
            mode,
            profiles,
            partially_asserted_tests: self
                .tests
                .values()
                .filter_map(|t| {
                    Some(PartialTest {
                        test: t.test.clone(),
                        not_asserted: t.partial.clone()?,
                    })
                })
                .collect(),
        }
    }

    /// On a cluster the implementation under test is the Istio there; locally it is
    /// meshcheck's emulation of Istio, and `mode` says so, so the report is never
    /// mistaken for Istio's own.
    fn implementation(&self) -> (Implementation, String) {
        match self.target {
            Some(TargetKind::Kube) => (
                Implementation {
                    organization: "istio".into(),
                    project: "istio".into(),
                    url: "https://istio.io/".into(),
                    version: self
                        .environment
                        .istio
                        .clone()
                        .unwrap_or_else(|| "unknown".into()),
                    contact: Vec::new(),
                },
                "default".into(),
            ),
            _ => (
                Implementation {
                    organization: "meshcheck".into(),
                    project: "meshcheck-local-target".into(),
                    url: String::new(),
                    version: self.environment.meshcheck.clone(),
                    contact: Vec::new(),
                },
                "meshcheck-local".into(),
            ),
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), ReportError> {
        let text = serde_saphyr::to_string(&self.report()).map_err(|source| ReportError::Yaml {
            path: path.to_path_buf(),
            message: source.to_string(),
        })?;
        write_file(path, text.as_bytes())
    }
}

fn test_outcome(cases: &[Outcome]) -> Outcome {
    if cases.contains(&Outcome::Failed) {
        Outcome::Failed
    } else if !cases.is_empty() && cases.iter().all(|o| *o == Outcome::Skipped) {
        Outcome::Skipped
    } else if cases.is_empty() {
        // A selected suite always reports its cases; none means it was cut short by
        // an interrupt before its cases ran.
        Outcome::Skipped
    } else {
        Outcome::Passed
    }
}

fn profile_report(profile: Profile, tests: &[(&Conformance, Outcome)]) -> ProfileReport {
    let core = status(tests.iter().filter(|(t, _)| !t.extended));
    let extended_tests: Vec<&(&Conformance, Outcome)> =
        tests.iter().filter(|(t, _)| t.extended).collect();
    // A feature counts as exercised when a test of it ran (a skipped one shows nothing).
    let supported: BTreeSet<&str> = extended_tests
        .iter()
        .filter(|(_, outcome)| *outcome != Outcome::Skipped)
        .flat_map(|(t, _)| t.features.iter().map(String::as_str))
        .filter(|f| !profile.core_features().contains(f))
        .collect();
    let extended = (!extended_tests.is_empty()).then(|| ExtendedStatus {
        status: status(extended_tests.iter().copied()),
        supported_features: supported.iter().map(|f| f.to_string()).collect(),
        unsupported_features: profile
            .extended_features()
            .filter(|f| !supported.contains(f))
            .map(str::to_string)
            .collect(),
    });
    let summary = match &extended {
        Some(extended) => format!(
            "{} {}",
            summary("Core", &core),
            summary("Extended", &extended.status)
        ),
        None => summary("Core", &core),
    };
    ProfileReport {
        name: profile.name().to_string(),
        summary,
        core,
        extended,
    }
}

fn status<'a>(tests: impl Iterator<Item = &'a (&'a Conformance, Outcome)>) -> Status {
    let mut status = Status::default();
    for (test, outcome) in tests {
        match outcome {
            Outcome::Passed => status.statistics.passed += 1,
            Outcome::Failed => {
                status.statistics.failed += 1;
                status.failed_tests.push(test.test.clone());
            }
            Outcome::Skipped => {
                status.statistics.skipped += 1;
                status.skipped_tests.push(test.test.clone());
            }
        }
    }
    status.failed_tests.sort();
    status.skipped_tests.sort();
    let s = &status.statistics;
    status.result = if s.failed > 0 {
        "failure"
    } else if s.passed == 0 {
        "skipped"
    } else if s.skipped > 0 {
        "partial"
    } else {
        "success"
    };
    status
}

fn summary(kind: &str, status: &Status) -> String {
    let s = &status.statistics;
    match status.result {
        "failure" => format!("{kind} tests failed with {} test failures.", s.failed),
        "partial" => format!(
            "{kind} tests partially succeeded with {} test skips.",
            s.skipped
        ),
        "skipped" => format!("{kind} tests were all skipped."),
        _ => format!("{kind} tests succeeded."),
    }
}

/// Upstream's `ConformanceReport`, field for field.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub date: String,
    #[serde(rename = "gatewayAPIVersion")]
    pub gateway_api_version: String,
    #[serde(rename = "gatewayAPIChannel")]
    pub gateway_api_channel: String,
    pub implementation: Implementation,
    pub mode: String,
    pub profiles: Vec<ProfileReport>,
    /// meshcheck's addition, absent from upstream's shape: tests whose suite asserts
    /// only part of what upstream checks, with what it leaves out. Their pass counts
    /// above say what was asserted, not more.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partially_asserted_tests: Vec<PartialTest>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartialTest {
    pub test: String,
    pub not_asserted: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Implementation {
    pub organization: String,
    pub project: String,
    pub url: String,
    pub version: String,
    pub contact: Vec<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProfileReport {
    pub name: String,
    pub summary: String,
    pub core: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended: Option<ExtendedStatus>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub result: &'static str,
    pub statistics: Statistics,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_tests: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_tests: Vec<String>,
}

/// Upstream capitalises these keys.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Statistics {
    pub passed: u32,
    pub skipped: u32,
    pub failed: u32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedStatus {
    #[serde(flatten)]
    pub status: Status,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supported_features: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported_features: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{CaseMessage, CaseResult};

    fn test(name: &str, profile: Profile, features: &[&str]) -> Conformance {
        Conformance {
            test: name.into(),
            profile,
            features: features.iter().map(|f| f.to_string()).collect(),
            extended: features
                .iter()
                .any(|f| !profile.core_features().contains(f)),
            partial: None,
        }
    }

    fn started(record: &mut ConformanceRecord, suite: &str, conformance: Option<Conformance>) {
        record.record(&Event::SuiteStarted {
            suite: suite.into(),
            cases: 1,
            conformance,
        });
    }

    fn finished(record: &mut ConformanceRecord, suite: &str, outcome: Outcome) {
        let result = CaseResult::without_traffic(
            suite,
            "case",
            outcome,
            CaseMessage::Verdict(String::new()),
        );
        record.record(&Event::CaseFinished {
            result: Box::new(result),
        });
    }

    #[test]
    fn suites_count_as_core_or_extended_tests_per_profile() {
        let mut record = ConformanceRecord::new();
        record.record(&Event::RunStarted {
            suites: 4,
            cases: 5,
            target: TargetKind::Local,
        });
        let core = ["Gateway", "HTTPRoute"];
        let mut exact = test("HTTPRouteExactPathMatching", Profile::GatewayHttp, &core);
        exact.partial = Some("route conditions".into());
        started(&mut record, "exact", Some(exact));
        finished(&mut record, "exact", Outcome::Passed);
        finished(&mut record, "exact", Outcome::Passed);
        started(
            &mut record,
            "weight",
            Some(test("HTTPRouteWeight", Profile::GatewayHttp, &core)),
        );
        finished(&mut record, "weight", Outcome::Failed);
        let query = ["Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching"];
        started(
            &mut record,
            "query",
            Some(test(
                "HTTPRouteQueryParamMatching",
                Profile::GatewayHttp,
                &query,
            )),
        );
        finished(&mut record, "query", Outcome::Passed);
        started(&mut record, "not-conformance", None);
        finished(&mut record, "not-conformance", Outcome::Failed);

        let report = record.report();
        assert_eq!(report.kind, "ConformanceReport");
        assert_eq!(
            report.mode, "meshcheck-local",
            "never mistaken for Istio's own report"
        );
        let [profile] = report.profiles.as_slice() else {
            panic!("one profile: {:?}", report.profiles);
        };
        assert_eq!(profile.name, "GATEWAY-HTTP");
        assert_eq!(
            (
                profile.core.statistics.passed,
                profile.core.statistics.failed
            ),
            (1, 1)
        );
        assert_eq!(profile.core.result, "failure");
        assert_eq!(profile.core.failed_tests, ["HTTPRouteWeight"]);
        let extended = profile.extended.as_ref().unwrap();
        assert_eq!(extended.status.result, "success");
        assert_eq!(extended.supported_features, ["HTTPRouteQueryParamMatching"]);
        assert!(
            !extended
                .unsupported_features
                .contains(&"HTTPRouteQueryParamMatching".to_string())
        );
        assert_eq!(
            profile.summary,
            "Core tests failed with 1 test failures. Extended tests succeeded."
        );
        assert_eq!(
            report.partially_asserted_tests,
            [PartialTest {
                test: "HTTPRouteExactPathMatching".into(),
                not_asserted: "route conditions".into()
            }]
        );
    }

    #[test]
    fn the_yaml_has_upstreams_field_names() {
        let mut record = ConformanceRecord::new();
        started(
            &mut record,
            "mesh",
            Some(test("MeshBasic", Profile::MeshHttp, &["Mesh", "HTTPRoute"])),
        );
        finished(&mut record, "mesh", Outcome::Skipped);
        let text = serde_saphyr::to_string(&record.report()).unwrap();
        for key in [
            "apiVersion: gateway.networking.k8s.io/v1",
            "kind: ConformanceReport",
            "gatewayAPIVersion: v1.3.0",
            "gatewayAPIChannel:",
            "name: MESH-HTTP",
            "result: skipped",
            "Skipped: 1",
            "skippedTests:",
        ] {
            assert!(text.contains(key), "missing `{key}` in\n{text}");
        }
    }
}
