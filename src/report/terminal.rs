//! The human view: live progress on a terminal, plain timestamped lines elsewhere, and a
//! failure block that reads like a diagnosis.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::display::DisplayConfig;
use crate::runner::{CaseResult, Event, Outcome};

pub struct TerminalReporter {
    config: DisplayConfig,
    out: Box<dyn Write + Send>,
    started: Instant,
    /// Fixed elapsed times for snapshot tests.
    clock: Option<fn() -> Duration>,
    bars: MultiProgress,
    traffic_bar: Option<ProgressBar>,
    failures: Vec<CaseResult>,
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
            failures: Vec::new(),
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
            Event::SuiteStarted { suite, cases } => {
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
                if !quiet {
                    self.line(format!(
                        "{:>9} {suite}: {detail}",
                        self.paint("36", &phase.to_string())
                    ));
                }
            }
            Event::Environment { environment } => {
                if !quiet {
                    let mut parts = vec![format!("meshcheck {}", environment.meshcheck)];
                    let known = [
                        ("Envoy", &environment.envoy),
                        ("Istio", &environment.istio),
                        ("Gateway API", &environment.gateway_api),
                        ("Kubernetes", &environment.kubernetes),
                    ];
                    parts.extend(
                        known
                            .iter()
                            .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n} {v}"))),
                    );
                    self.line(format!("{:>9} {}", "versions", parts.join(", ")));
                }
            }
            Event::CaseStarted { suite, case } => {
                if !quiet {
                    self.line(format!("{:>9} {suite}::{case}", self.paint("1", "START")));
                }
            }
            Event::Response { line, status, .. } => {
                if !quiet {
                    let status = status.map_or_else(|| "---".to_string(), |s| s.to_string());
                    let text = format!("{:>9} {status} {line}", "");
                    let out = &mut self.out;
                    self.bars.suspend(|| {
                        let _ = writeln!(out, "{text}");
                    });
                }
            }
            Event::TrafficProgress {
                requests,
                max_requests,
                backends,
                requests_per_second,
                ..
            } => {
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
                        counts(backends)
                    ));
                }
            }
            Event::CaseFinished { result } => {
                if let Some(bar) = self.traffic_bar.take() {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                let label = match result.outcome {
                    Outcome::Passed => self.paint("1;32", "PASS"),
                    Outcome::Failed => self.paint("1;31", "FAIL"),
                    Outcome::Skipped => self.paint("1;33", "SKIP"),
                };
                if !quiet || result.outcome == Outcome::Failed {
                    self.line(format!(
                        "{label:>9} [{:>7.3}s] {}: {}",
                        result.duration.as_secs_f64(),
                        result.id(),
                        result.message
                    ));
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
                    "{} {suite}: {error}",
                    self.paint("1;31", "SETUP FAILED")
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
            }
            Event::Interrupted { signal } => {
                self.line(format!(
                    "{} by {signal}: stopping and cleaning up what this run created",
                    self.paint("1;33", "INTERRUPTED")
                ));
            }
            Event::RunFinished { summary, duration } => {
                if !self.failures.is_empty() {
                    let names: Vec<String> = self.failures.iter().map(CaseResult::id).collect();
                    self.raw(&format!("\nFailed cases:\n    {}\n", names.join("\n    ")));
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn counts(backends: &BTreeMap<String, u64>) -> String {
    backends
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("  ")
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The per-backend table and totals of a case.
fn statistics_block(result: &CaseResult) -> String {
    let mut text = String::new();
    if let Some(split) = &result.split {
        text.push_str(&format!(
            "{:>12}{:<24} {:>9} {:>9} {:>9}   {}\n",
            "", "backend", "expected", "responses", "observed", "confidence interval"
        ));
        for b in &split.backends {
            text.push_str(&format!(
                "{:>12}{:<24} {:>9} {:>9} {:>9}   [{}, {}]\n",
                "",
                b.backend,
                percent(b.expected_share),
                b.observed,
                percent(b.observed_share),
                percent(b.ci_low),
                percent(b.ci_high)
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
    let mut text = format!("\n--- {} ---\n", result.id());
    text.push_str(&format!("    why: {}\n", result.message));
    if let Some(split) = result
        .split
        .as_ref()
        .filter(|s| !result.message.contains(&s.reason))
    {
        text.push_str(&format!("    statistics: {}\n", split.reason));
    }
    text.push_str(&statistics_block(result));
    for section in &result.diagnostics {
        text.push_str(&format!("    == {} ==\n", section.title));
        for line in section.body.lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text.push('\n');
    text
}
