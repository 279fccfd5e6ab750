//! The human view: live progress on a terminal, plain timestamped lines elsewhere, and a
//! failure block that reads like a diagnosis.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::display::DisplayConfig;
use crate::runner::{CaseResult, Event, Outcome, Pending, PhaseTiming, RunEnvironment};
use crate::stats::Decision;
use crate::traffic::ErrorKind;

pub struct TerminalReporter {
    config: DisplayConfig,
    out: Box<dyn Write + Send>,
    started: Instant,
    /// Fixed elapsed times for snapshot tests.
    clock: Option<fn() -> Duration>,
    bars: MultiProgress,
    traffic_bar: Option<ProgressBar>,
    /// On a terminal: one spinner line naming the current phase, instead of a line each.
    phase_bar: Option<ProgressBar>,
    /// The first responses of the running case, printed as one line (the seed's curl
    /// loop, without ten lines of log per case).
    responses: Vec<String>,
    failures: Vec<CaseResult>,
    /// The versions line last printed, and the unknown versions already explained.
    versions_said: Option<String>,
    /// The run id already announced.
    run_id_said: Option<String>,
    unknown_said: Vec<(&'static str, String)>,
    /// The longest phase of any suite so far, for the summary.
    slowest: Option<(String, PhaseTiming)>,
}

impl TerminalReporter {
    pub fn new(config: DisplayConfig, out: Box<dyn Write + Send>) -> Self {
        let bars = if config.progress_bars {
            MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        TerminalReporter {
            config,
            out,
            started: Instant::now(),
            clock: None,
            bars,
            traffic_bar: None,
            phase_bar: None,
            responses: Vec::new(),
            failures: Vec::new(),
            versions_said: None,
            run_id_said: None,
            unknown_said: Vec::new(),
            slowest: None,
        }
    }

    /// Every timestamp reads as this elapsed time: for snapshot tests.
    pub fn with_fixed_clock(mut self, clock: fn() -> Duration) -> Self {
        self.clock = Some(clock);
        self
    }

    fn elapsed(&self) -> Duration {
        self.clock.map_or_else(|| self.started.elapsed(), |c| c())
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.config.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Writes a line above any progress bars (indicatif suspends them meanwhile).
    fn line(&mut self, text: String) {
        let stamp = format!("[{:>8.3}s]", self.elapsed().as_secs_f64());
        let out = &mut self.out;
        self.bars.suspend(|| {
            let _ = writeln!(out, "{stamp} {text}");
        });
    }

    fn flush_responses(&mut self) {
        if self.responses.is_empty() {
            return;
        }
        let shown = std::mem::take(&mut self.responses);
        self.line(format!(
            "{:>9} first {}: {}",
            "responses",
            shown.len(),
            shown.join(" | ")
        ));
    }

    fn raw(&mut self, text: &str) {
        let out = &mut self.out;
        self.bars.suspend(|| {
            let _ = write!(out, "{text}");
        });
    }

    pub fn report(&mut self, event: &Event) {
        let quiet = self.config.quiet;
        match event {
            Event::RunStarted {
                suites,
                cases,
                target,
            } => {
                if !quiet {
                    self.line(format!(
                        "{} {cases} case{} in {suites} suite{} on the {target} target",
                        self.paint("1", "Starting"),
                        plural(*cases),
                        plural(*suites)
                    ));
                }
            }
            Event::SuiteStarted { suite, cases, .. } => {
                if !quiet {
                    self.line(format!(
                        "{} {suite} ({cases} case{})",
                        self.paint("1;36", "SUITE"),
                        plural(*cases)
                    ));
                }
            }
            Event::Phase {
                suite,
                phase,
                detail,
            } => {
                if self.config.progress_bars {
                    let bar = self.phase_bar.get_or_insert_with(|| {
                        let bar = self.bars.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} {prefix:>9} {wide_msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar
                    });
                    bar.set_prefix(phase.to_string());
                    bar.set_message(format!("{suite}: {detail}"));
                } else if !quiet {
                    self.line(format!(
                        "{} {suite}: {}",
                        self.paint("36", &format!("{:>9}", phase.to_string())),
                        detail
                    ));
                }
            }
            Event::Environment {
                environment,
                unknown,
            } => {
                if !quiet {
                    // Each suite's bring-up reports the versions; say them (and why any
                    // is unknown) once a run, again only if they change.
                    let line = versions_line(environment);
                    if self.versions_said.as_ref() != Some(&line) {
                        self.line(format!("{:>9} {line}", "versions"));
                        self.versions_said = Some(line);
                    }
                    // One id a run; said once, for `meshcheck cleanup --run-id` after a crash.
                    if let Some(run_id) = &environment.run_id
                        && self.run_id_said.as_ref() != Some(run_id)
                    {
                        self.line(format!(
                            "{:>9} {run_id} (labels what this run creates; `meshcheck cleanup --run-id {run_id}` removes what a crash leaves)",
                            "run id"
                        ));
                        self.run_id_said = Some(run_id.clone());
                    }
                    for unknown in unknown {
                        let said = (unknown.component, unknown.reason.clone());
                        if !self.unknown_said.contains(&said) {
                            self.line(format!(
                                "{:>9} {} version unknown: {}",
                                "versions", unknown.component, unknown.reason
                            ));
                            self.unknown_said.push(said);
                        }
                    }
                }
            }
            Event::StillWaiting {
                suite,
                phase,
                waited,
                pending,
            } => {
                let text = format!("{suite}: {}", still_waiting(*waited, pending));
                if let Some(bar) = self
                    .phase_bar
                    .as_ref()
                    .filter(|_| self.config.progress_bars)
                {
                    bar.set_prefix(phase.to_string());
                    bar.set_message(text);
                } else if !quiet {
                    self.line(format!(
                        "{} {text}",
                        self.paint("36", &format!("{:>9}", phase.to_string()))
                    ));
                }
            }
            Event::CaseStarted { suite, case } => {
                if !quiet {
                    self.line(format!(
                        "{} {suite}::{case}",
                        self.paint("1", &format!("{:>9}", "START"))
                    ));
                }
            }
            Event::Response {
                status,
                identity,
                error,
                ..
            } => {
                if !quiet {
                    self.responses
                        .push(response(*status, identity.as_deref(), *error));
                }
            }
            Event::TrafficProgress {
                requests,
                max_requests,
                backends,
                unidentified,
                requests_per_second,
                ..
            } => {
                self.flush_responses();
                if self.config.progress_bars {
                    let bar = self.traffic_bar.get_or_insert_with(|| {
                        let bar = self.bars.add(ProgressBar::new(*max_requests));
                        bar.set_style(
                            ProgressStyle::with_template("{spinner} traffic {pos}/{len} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar
                    });
                    bar.set_length(*max_requests);
                    bar.set_position(*requests);
                    bar.set_message(format!(
                        "{:.0} req/s  {}",
                        requests_per_second,
                        counts(backends, *unidentified)
                    ));
                }
            }
            Event::CaseFinished { result } => {
                self.flush_responses();
                if let Some(bar) = self.traffic_bar.take() {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                let label = match result.outcome {
                    Outcome::Passed => self.paint("1;32", &format!("{:>9}", "PASS")),
                    Outcome::Failed => self.paint("1;31", &format!("{:>9}", "FAIL")),
                    Outcome::Skipped => self.paint("1;33", &format!("{:>9}", "SKIP")),
                };
                if !quiet || result.outcome == Outcome::Failed {
                    self.line(format!(
                        "{label} [{:>7.3}s] {}: {}",
                        result.duration.as_secs_f64(),
                        result.id(),
                        result.message
                    ));
                }
                // Shown even in quiet mode and on passing cases: a pass obtained with
                // verification off is not the pass it looks like.
                for warning in &result.warnings {
                    let label = self.paint("1;33", &format!("{:>9}", "WARNING"));
                    self.line(format!("{label} {}: {warning}", result.id()));
                }
                if result.outcome == Outcome::Failed {
                    let block = failure_block(result);
                    self.raw(&block);
                    self.failures.push((**result).clone());
                } else if !quiet && result.outcome == Outcome::Passed {
                    let block = statistics_block(result);
                    self.raw(&block);
                }
            }
            Event::SetupFailed { suite, error } => {
                self.line(format!(
                    "{} {suite}: {}",
                    self.paint("1;31", "SETUP FAILED"),
                    super::one_line(&**error)
                ));
            }
            Event::SuiteFinished { suite, cleanup } => {
                if !quiet && !cleanup.removed.is_empty() {
                    self.line(format!(
                        "{:>9} {suite}: removed {}",
                        "cleanup",
                        cleanup.removed.join(", ")
                    ));
                }
                for failed in &cleanup.failed {
                    self.line(format!(
                        "{} {suite}: {failed}",
                        self.paint("1;31", "CLEANUP FAILED")
                    ));
                }
                // Said even with --quiet and a spinner: the user needs the command later.
                if let Some(command) = &cleanup.remove_later_with {
                    self.line(format!(
                        "{:>9} {suite}: kept {} (--keep-on-failure); remove them later with `{command}`",
                        "kept",
                        cleanup.kept.join(", ")
                    ));
                }
            }
            Event::Interrupted { signal } => {
                self.line(format!(
                    "{} by {signal}: stopping and cleaning up what this run created",
                    self.paint("1;33", "INTERRUPTED")
                ));
            }
            // Timed by the runner (`PhaseTimings`), not shown as they happen.
            Event::Milestone { .. } => {}
            Event::PhaseTimings { suite, phases } => {
                let longest = phases.iter().max_by(|a, b| a.seconds.total_cmp(&b.seconds));
                if let Some(longest) = longest
                    && self
                        .slowest
                        .as_ref()
                        .is_none_or(|(_, slowest)| longest.seconds > slowest.seconds)
                {
                    self.slowest = Some((suite.clone(), longest.clone()));
                }
            }
            Event::RunFinished { summary, duration } => {
                if let Some(bar) = self.phase_bar.take() {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                if !self.failures.is_empty() {
                    let names: Vec<String> = self.failures.iter().map(CaseResult::id).collect();
                    self.raw(&format!("\nFailed cases:\n    {}\n", names.join("\n    ")));
                }
                if let Some((suite, phase)) = &self.slowest {
                    let whose = match &phase.case {
                        Some(case) => format!("{suite}::{case}"),
                        None => suite.clone(),
                    };
                    self.raw(&format!(
                        "\nSlowest phase: {} of {whose}, {:.3}s{}\n",
                        phase.phase,
                        phase.seconds,
                        within_phase(phase)
                    ));
                }
                let text = format!(
                    "\n{}: {} passed, {} failed, {} skipped [{:.3}s]{}\n",
                    self.paint("1", "Summary"),
                    summary.passed,
                    summary.failed,
                    summary.skipped,
                    duration.as_secs_f64(),
                    if summary.interrupted {
                        " (interrupted)"
                    } else {
                        ""
                    }
                );
                self.raw(&text);
            }
        }
    }
}

/// What the slowest phase's timing says about its inside: ` (Deployment 45.0s,
/// Gateway 12.1s)` for a readiness wait, ` (first good response 2.0s after the
/// configuration was applied, in a row after 2.3s)` for a convergence.
fn within_phase(timing: &PhaseTiming) -> String {
    let mut parts: Vec<String> = timing
        .ready_by_kind
        .iter()
        .map(|kind| format!("{} {:.1}s", kind.kind, kind.seconds))
        .collect();
    if let Some(data_plane) = &timing.since_config_applied {
        let first = data_plane
            .first_good_seconds
            .map_or("no good response".to_owned(), |s| {
                format!("first good response {s:.1}s")
            });
        let in_a_row = data_plane
            .in_a_row_seconds
            .map_or("never enough in a row".to_owned(), |s| {
                format!("in a row after {s:.1}s")
            });
        parts.push(format!(
            "{first} after the configuration was applied, {in_a_row}"
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// `waiting 45s: Deployment istio-test/backend-v1: 1/3 pods ready; Gateway ...`.
fn still_waiting(waited: Duration, pending: &[Pending]) -> String {
    let pending: Vec<String> = pending
        .iter()
        .map(|p| format!("{}: {}", p.object, p.reason))
        .collect();
    format!("waiting {}s: {}", waited.as_secs(), pending.join("; "))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Responses per backend, the unidentified ones among them in sorted order.
fn counts(backends: &BTreeMap<String, u64>, unidentified: u64) -> String {
    let mut backends = backends.clone();
    if unidentified > 0 {
        backends.insert("(unidentified)".into(), unidentified);
    }
    backends
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("  ")
}

/// One of a case's first responses: its status and the backend it named, or why the
/// request failed.
fn response(status: Option<u16>, identity: Option<&str>, error: Option<ErrorKind>) -> String {
    let status = status.map_or_else(|| "---".to_string(), |s| s.to_string());
    let what = match (error, identity) {
        (Some(err), _) => format!("({err})"),
        (None, Some(id)) => id.to_string(),
        (None, None) => String::new(),
    };
    format!("{status} {what}").trim_end().to_string()
}

fn p_value(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The per-backend table and totals of a case.
pub fn statistics_block(result: &CaseResult) -> String {
    let mut text = String::new();
    if let Some(split) = &result.split {
        text.push_str(&format!(
            "{:>12}{:<24} {:>9} {:>9} {:>9}   {:<18} {:>9}\n",
            "", "backend", "expected", "responses", "observed", "confidence interval", "p-value"
        ));
        for b in &split.backends {
            let interval = format!("[{}, {}]", percent(b.ci_low), percent(b.ci_high));
            let outside = !(b.ci_low..=b.ci_high).contains(&b.expected_share);
            text.push_str(&format!(
                "{:>12}{:<24} {:>9} {:>9} {:>9}   {interval:<18} {:>9}{}\n",
                "",
                b.backend,
                percent(b.expected_share),
                b.observed,
                percent(b.observed_share),
                p_value(b.p_value),
                if outside {
                    "  <- expected share outside the interval"
                } else {
                    ""
                }
            ));
        }
        if split.unknown > 0 {
            text.push_str(&format!(
                "{:>12}{:<24} {:>9} {:>9}\n",
                "", "(unidentified)", "0.0%", split.unknown
            ));
        }
    }
    let codes: Vec<String> = result
        .status_codes
        .iter()
        .map(|(code, n)| format!("{code} x{n}"))
        .collect();
    let mut line = format!(
        "{:>12}{} requests, {:.0} req/s, status {}",
        "",
        result.requests,
        result.requests_per_second,
        if codes.is_empty() {
            "none".to_string()
        } else {
            codes.join(", ")
        }
    );
    if !result.errors.is_empty() {
        let errors: Vec<String> = result
            .errors
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        line.push_str(&format!(", errors {}", errors.join(", ")));
    }
    if result.envoy_overloaded > 0 {
        line.push_str(&format!(
            ", x-envoy-overloaded x{}",
            result.envoy_overloaded
        ));
    }
    if let Some(l) = &result.latency {
        line.push_str(&format!(
            ", latency p50 {:.2}ms p90 {:.2}ms p99 {:.2}ms max {:.2}ms",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        ));
    }
    text.push_str(&line);
    text.push('\n');
    if !result.proxy_counters.is_empty() {
        text.push_str(&format!("{:>12}proxy counters:\n", ""));
        for (name, value) in &result.proxy_counters {
            text.push_str(&format!("{:>14}{name}: {value}\n", ""));
        }
    }
    text
}

/// Everything needed to understand a failure, in one block.
pub fn failure_block(result: &CaseResult) -> String {
    let mut text = format!("\n--- FAILED {} ---\n", result.id());
    text.push_str(&format!("    why: {}\n", result.message));
    if let Some(split) = &result.split {
        let verdict = match split.decision {
            Decision::Pass => "the split matches the route's weights",
            Decision::Fail => "the split does NOT match the route's weights",
            Decision::Continue => "the split test could not decide within the request cap",
        };
        text.push_str(&format!(
            "    verdict: {verdict} ({} responses, {} from no expected backend)\n",
            split.total, split.unknown
        ));
        // The message usually is the reason already; say it once.
        if !result.message.to_string().contains(&split.reason) {
            text.push_str(&format!("    statistics: {}\n", split.reason));
        }
        text.push_str("    expected vs observed per backend:\n");
    }
    // A case that never sent a request has no figures worth a line.
    if result.requests > 0 || result.split.is_some() {
        text.push_str(&statistics_block(result));
    }
    if result.diagnostics.is_empty() {
        text.push_str("    (the target reported no diagnostics)\n");
    }
    for section in &result.diagnostics {
        text.push_str(&format!("    == {} ==\n", section.title));
        for line in section.body.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text.push('\n');
    text
}

/// `meshcheck 0.1.0, Istio 1.26.2, Gateway API v1.3.0 (standard), Kubernetes v1.33.1`:
/// what is known, in that order.
fn versions_line(environment: &RunEnvironment) -> String {
    let mut parts = vec![format!("meshcheck {}", environment.meshcheck)];
    let gateway_api =
        environment
            .gateway_api
            .as_ref()
            .map(|version| match &environment.gateway_api_channel {
                Some(channel) => format!("{version} ({channel})"),
                None => version.clone(),
            });
    let known = [
        ("Envoy", environment.envoy.clone()),
        ("Istio", environment.istio.clone()),
        ("Gateway API", gateway_api),
        ("Kubernetes", environment.kubernetes.clone()),
    ];
    parts.extend(
        known
            .into_iter()
            .filter_map(|(name, version)| version.map(|v| format!("{name} {v}"))),
    );
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::TerminalReporter;
    use crate::report::DisplayConfig;
    use crate::runner::{
        CaseMessage, CaseResult, Event, LatencySummary, Outcome, Phase, PhaseDetail,
        RunEnvironment, RunSummary, TargetKind,
    };
    use crate::stats::{BackendShare, Decision, SplitVerdict};
    use crate::targets::{CleanupReport, DiagnosticSection};
    use crate::traffic::ErrorKind;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn render(config: DisplayConfig, events: &[Event]) -> String {
        let captured = Captured::default();
        let mut reporter = TerminalReporter::new(config, Box::new(captured.clone()))
            .with_fixed_clock(|| Duration::from_millis(1500));
        for event in events {
            reporter.report(event);
        }
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    fn plain() -> DisplayConfig {
        DisplayConfig::choose(false, true, false, true)
    }

    fn share(
        backend: &str,
        expected: f64,
        observed: u64,
        total: u64,
        ci: (f64, f64),
        p: f64,
    ) -> BackendShare {
        BackendShare {
            backend: backend.into(),
            expected_share: expected,
            observed,
            observed_share: observed as f64 / total as f64,
            ci_low: ci.0,
            ci_high: ci.1,
            p_value: p,
        }
    }

    fn case(name: &str, outcome: Outcome, split: SplitVerdict, message: &str) -> CaseResult {
        let backends: BTreeMap<String, u64> = split
            .backends
            .iter()
            .map(|b| (format!("hello from {}", b.backend), b.observed))
            .collect();
        CaseResult {
            suite: "ingress-canary".into(),
            name: name.into(),
            outcome,
            duration: Duration::from_millis(178),
            requests: split.total,
            backends,
            status_codes: BTreeMap::from([(200, split.total - 3), (503, 3)]),
            errors: BTreeMap::new(),
            envoy_overloaded: 0,
            proxy_counters: BTreeMap::new(),
            requests_per_second: 2690.0,
            latency: Some(LatencySummary {
                p50_ms: 1.24,
                p90_ms: 1.81,
                p99_ms: 2.37,
                max_ms: 4.28,
            }),
            split: Some(split),
            message: CaseMessage::Verdict(message.into()),
            warnings: Vec::new(),
            diagnostics: Vec::new(),
            diagnostic_dumps: Vec::new(),
        }
    }

    fn run(results: Vec<CaseResult>) -> Vec<Event> {
        let mut summary = RunSummary::default();
        let mut events = vec![
            Event::RunStarted {
                suites: 1,
                cases: results.len(),
                target: TargetKind::Local,
            },
            Event::SuiteStarted {
                suite: "ingress-canary".into(),
                cases: results.len(),
                conformance: None,
            },
            Event::Phase {
                suite: "ingress-canary".into(),
                phase: Phase::BringUp,
                detail: PhaseDetail::StartingLocal { objects: 9 },
            },
            Event::Environment {
                environment: RunEnvironment {
                    target: Some(TargetKind::Local),
                    meshcheck: "0.1.0".into(),
                    envoy: Some("1.40.0".into()),
                    ..RunEnvironment::default()
                },
                unknown: Vec::new(),
            },
        ];
        for result in results {
            summary.record(result.outcome);
            events.push(Event::CaseStarted {
                suite: result.suite.clone(),
                case: result.name.clone(),
            });
            for (status, identity, error) in [
                (Some(200), Some("hello from backend-v1"), None),
                (Some(200), Some("hello from backend-v2"), None),
                (None, None, Some(ErrorKind::ConnectionClosed)),
            ] {
                events.push(Event::Response {
                    suite: result.suite.clone(),
                    case: result.name.clone(),
                    status,
                    identity: identity.map(str::to_string),
                    error,
                });
            }
            events.push(Event::CaseFinished {
                result: Box::new(result),
            });
        }
        events.push(Event::SuiteFinished {
            suite: "ingress-canary".into(),
            cleanup: CleanupReport {
                removed: vec!["stopped Envoy".into()],
                failed: Vec::new(),
                ..CleanupReport::default()
            },
        });
        events.push(Event::RunFinished {
            summary,
            duration: Duration::from_millis(480),
        });
        events
    }

    fn passing() -> CaseResult {
        case(
            "weighted-split",
            Outcome::Passed,
            SplitVerdict {
                decision: Decision::Pass,
                total: 402,
                unknown: 0,
                backends: vec![
                    share("backend-v1", 0.5, 201, 402, (0.4027, 0.5973), 1.0),
                    share("backend-v2", 0.5, 201, 402, (0.4027, 0.5973), 1.0),
                ],
                reason: "no backend's share is off by 10.0 percentage points or more".into(),
            },
            "402 requests, all 200; no backend's share is off by 10.0 percentage points or more",
        )
    }

    fn failing() -> CaseResult {
        let mut result = case(
            "weighted-split",
            Outcome::Failed,
            SplitVerdict {
                decision: Decision::Fail,
                total: 300,
                unknown: 0,
                backends: vec![
                    share("backend-v1", 0.5, 240, 300, (0.72, 0.86), 2.1e-25),
                    share("backend-v2", 0.5, 60, 300, (0.14, 0.28), 2.1e-25),
                ],
                reason: "backend-v1 got 80.0% (99.99% CI 72.0–86.0%), expected 50.0%".into(),
            },
            "request 17 got 503 with no backend identity (expected 200); backend-v1 got 80.0% (99.99% CI 72.0–86.0%), expected 50.0%",
        );
        result.diagnostics = vec![
            DiagnosticSection {
                title: "Envoy cluster stats (non-zero)".into(),
                body: "cluster.outbound|80||backend-v1.istio-test.svc.cluster.local.upstream_rq_200: 240\ncluster.outbound|80||backend-v2.istio-test.svc.cluster.local.upstream_rq_503: 3".into(),
            },
            DiagnosticSection { title: "local processes".into(), body: "Envoy: running".into() },
        ];
        result
    }

    #[test]
    fn passing_run_in_plain_lines() {
        insta::assert_snapshot!(render(plain(), &run(vec![passing()])));
    }

    #[test]
    fn failing_run_reads_like_a_diagnosis() {
        insta::assert_snapshot!(render(plain(), &run(vec![failing()])));
    }

    #[test]
    fn quiet_shows_only_failures_and_the_summary() {
        let quiet = DisplayConfig::choose(false, true, true, true);
        let text = render(quiet, &run(vec![passing(), failing()]));
        assert!(!text.contains("PASS"), "{text}");
        assert!(!text.contains("responses first"), "{text}");
        assert!(text.contains("FAIL"), "{text}");
        assert!(
            text.contains("expected share outside the interval"),
            "{text}"
        );
        assert!(text.contains("Summary: 1 passed, 1 failed"), "{text}");
    }

    #[test]
    fn warnings_show_on_passing_cases_even_when_quiet() {
        let mut warned = passing();
        warned.warnings = vec!["TLS certificate verification is OFF".into()];
        let quiet = DisplayConfig::choose(false, true, true, true);
        let text = render(quiet, &run(vec![warned]));
        assert!(
            text.contains(
                "  WARNING ingress-canary::weighted-split: TLS certificate verification is OFF"
            ),
            "{text}"
        );
        assert!(!render(quiet, &run(vec![passing()])).contains("WARNING"));
    }

    #[test]
    fn a_long_wait_names_each_pending_object_with_its_reason() {
        let pending = |object: &str, reason: &str| crate::runner::Pending {
            object: object.into(),
            reason: reason.into(),
        };
        let event = Event::StillWaiting {
            suite: "ingress-canary".into(),
            phase: crate::runner::Phase::Wait,
            waited: Duration::from_millis(45_300),
            pending: vec![
                pending(
                    "Deployment istio-test/backend-v1",
                    "1/3 pods ready (2 without the istio-proxy sidecar)",
                ),
                pending("Gateway istio-test/istio-gateway", "no address yet"),
            ],
        };
        assert_eq!(
            render(plain(), std::slice::from_ref(&event)),
            "[   1.500s]      wait ingress-canary: waiting 45s: Deployment istio-test/backend-v1: \
             1/3 pods ready (2 without the istio-proxy sidecar); \
             Gateway istio-test/istio-gateway: no address yet\n"
        );
        let quiet = DisplayConfig::choose(false, true, true, true);
        assert_eq!(render(quiet, &[event]), "");
    }

    #[test]
    fn case_phases_read_as_before() {
        let url = url::Url::parse("http://test.devopscube.com/").unwrap();
        let origin = crate::runner::RequestOrigin::Engine {
            address: "127.0.0.1:8080".parse().unwrap(),
        };
        let events = [
            PhaseDetail::Converging {
                case: "weighted-split".into(),
                consecutive: 3,
                url: url.clone(),
                origin: origin.clone(),
            },
            PhaseDetail::Measuring {
                case: "weighted-split".into(),
                max_requests: 1200,
                url,
                origin: crate::runner::RequestOrigin::MeshClient {
                    namespace: "istio-test".into(),
                    pod: "client-0".into(),
                },
                concurrency: 4,
            },
            PhaseDetail::Ejecting {
                case: "failing-host-ejected".into(),
                ejected_hosts: 1,
                hosts: 3,
                cluster: "outbound|80||flaky".into(),
                within: Duration::from_secs(10),
            },
        ]
        .map(|detail| Event::Phase {
            suite: "s".into(),
            phase: Phase::Traffic,
            detail,
        });
        let text = render(plain(), &events);
        for line in [
            "  traffic s: weighted-split: waiting for 3 good responses in a row from http://test.devopscube.com/ via 127.0.0.1:8080",
            "  traffic s: weighted-split: up to 1200 requests to http://test.devopscube.com/ from the in-mesh client pod istio-test/client-0, concurrency 4",
            "  traffic s: failing-host-ejected: one request at a time until 1 of 3 hosts of outbound|80||flaky are ejected (within 10s)",
        ] {
            assert!(text.contains(line), "{line}\nin\n{text}");
        }
    }

    #[test]
    fn color_only_when_chosen() {
        let colored = DisplayConfig {
            progress_bars: false,
            color: true,
            quiet: false,
        };
        assert!(render(colored, &run(vec![failing()])).contains("\x1b[1;31m     FAIL"));
        assert!(!render(plain(), &run(vec![failing()])).contains('\x1b'));
    }
}
