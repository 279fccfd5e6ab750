//! Runs suites one after another, emitting events; cleanup always happens, also on
//! interruption.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::case::run_case;
use super::environment::{BringUpError, Environment, TargetSettings};
use super::events::{CaseResult, Event, Outcome, Phase, PhaseDetail, RunSummary};
use crate::suite::Suite;

/// Selects cases by name, the way the cargo-test harness does: substring match on
/// `suite::case`, or whole-name match with `exact`. No patterns selects everything.
#[derive(Clone, Debug, Default)]
pub struct CaseFilter {
    pub patterns: Vec<String>,
    pub exact: bool,
}

impl CaseFilter {
    pub fn matches(&self, id: &str) -> bool {
        self.patterns.is_empty()
            || self.patterns.iter().any(|p| {
                if self.exact {
                    id == p
                } else {
                    id.contains(p.as_str())
                }
            })
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub target: TargetSettings,
    pub filter: CaseFilter,
}

/// Set by a signal handler; the runner stops at the next await point and cleans up.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    token: CancellationToken,
    signal: Arc<OnceLock<String>>,
}

impl Interrupt {
    pub fn trigger(&self, signal: &str) {
        let _ = self.signal.set(signal.to_string());
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn signal(&self) -> String {
        self.signal
            .get()
            .cloned()
            .unwrap_or_else(|| "signal".into())
    }

    pub(crate) async fn triggered(&self) {
        self.token.cancelled().await;
    }
}

/// Runs every selected case of `suites` and returns the totals. Suites with no
/// selected case are not brought up at all.
pub async fn run(
    suites: &[Suite],
    options: &RunOptions,
    interrupt: &Interrupt,
    emit: &mut (dyn FnMut(Event) + Send),
) -> RunSummary {
    let started = Instant::now();
    let mut summary = RunSummary::default();
    let selected: Vec<(&Suite, Vec<usize>)> = suites
        .iter()
        .map(|suite| {
            let cases = suite
                .cases
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    options
                        .filter
                        .matches(&format!("{}::{}", suite.name, c.name))
                })
                .map(|(i, _)| i)
                .collect::<Vec<_>>();
            (suite, cases)
        })
        .filter(|(_, cases)| !cases.is_empty())
        .collect();
    emit(Event::RunStarted {
        suites: selected.len(),
        cases: selected.iter().map(|(_, c)| c.len()).sum(),
        target: options.target.kind(),
    });

    for (suite, cases) in selected {
        if interrupt.is_triggered() {
            break;
        }
        emit(Event::SuiteStarted {
            suite: suite.name.clone(),
            cases: cases.len(),
        });
        let env = match Environment::bring_up(&options.target, suite, interrupt, emit).await {
            // Bring-up has announced the interrupt and cleaned up already.
            Err(BringUpError::Interrupted(cleanup)) => {
                emit(Event::SuiteFinished {
                    suite: suite.name.clone(),
                    cleanup,
                });
                break;
            }
            Err(BringUpError::Failed(error)) => {
                summary.setup_failures += 1;
                emit(Event::SetupFailed {
                    suite: suite.name.clone(),
                    error: error.clone(),
                });
                for &i in &cases {
                    let result = CaseResult::without_traffic(
                        &suite.name,
                        &suite.cases[i].name,
                        Outcome::Failed,
                        format!("the environment could not be set up: {error}"),
                    );
                    summary.record(result.outcome);
                    emit(Event::CaseFinished {
                        result: Box::new(result),
                    });
                }
                continue;
            }
            Ok(env) => env,
        };
        for &i in &cases {
            let case = &suite.cases[i];
            emit(Event::CaseStarted {
                suite: suite.name.clone(),
                case: case.name.clone(),
            });
            let finished = tokio::select! {
                result = run_case(&env, suite, case, emit) => Some(result),
                () = interrupt.triggered() => None,
            };
            match finished {
                Some(result) => {
                    summary.record(result.outcome);
                    emit(Event::CaseFinished {
                        result: Box::new(result),
                    });
                }
                None => break,
            }
        }
        // The next iteration stops the loop, so this is said once.
        if interrupt.is_triggered() {
            emit(Event::Interrupted {
                signal: interrupt.signal(),
            });
        }
        emit(Event::Phase {
            suite: suite.name.clone(),
            phase: Phase::Cleanup,
            detail: PhaseDetail::note("stopping what this suite started"),
        });
        let cleanup = env.shutdown().await;
        emit(Event::SuiteFinished {
            suite: suite.name.clone(),
            cleanup,
        });
    }
    if interrupt.is_triggered() {
        summary.interrupted = true;
    }
    emit(Event::RunFinished {
        summary: summary.clone(),
        duration: started.elapsed(),
    });
    summary
}
