//! Runs suites one after another, emitting events; cleanup always happens, also on
//! interruption.

use std::sync::Arc;
use std::time::Instant;

use super::bring_up::BringUp;
use super::case::run_case;
use super::events::{CaseMessage, CaseResult, Event, Outcome, Phase, PhaseDetail, RunSummary};
use super::interrupt::{Interrupt, until_interrupted};
use crate::suite::Suite;
use crate::targets::kube::KubeTarget;
use crate::targets::local::LocalTarget;
use crate::targets::{BringUpError, RunningTarget, Target, TargetSettings};

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
    // The one place that knows which targets exist.
    match &options.target {
        TargetSettings::Local(settings) => {
            let target = LocalTarget {
                settings: settings.clone(),
            };
            run_suites(&target, &selected, interrupt, emit, &mut summary).await;
        }
        TargetSettings::Kube(options) => {
            let target = KubeTarget {
                options: options.clone(),
            };
            run_suites(&target, &selected, interrupt, emit, &mut summary).await;
        }
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

async fn run_suites<T: Target>(
    target: &T,
    selected: &[(&Suite, Vec<usize>)],
    interrupt: &Interrupt,
    emit: &mut (dyn FnMut(Event) + Send),
    summary: &mut RunSummary,
) {
    for &(suite, ref cases) in selected {
        if interrupt.is_triggered() {
            break;
        }
        emit(Event::SuiteStarted {
            suite: suite.name.clone(),
            cases: cases.len(),
        });
        let brought_up = target
            .bring_up(&mut BringUp::new(suite, interrupt, &mut *emit))
            .await;
        let env = match brought_up {
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
                let error = Arc::new(error);
                emit(Event::SetupFailed {
                    suite: suite.name.clone(),
                    error: Arc::clone(&error),
                });
                for &i in cases {
                    let result = CaseResult::without_traffic(
                        &suite.name,
                        &suite.cases[i].name,
                        Outcome::Failed,
                        CaseMessage::SetupFailed(Arc::clone(&error)),
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
        let mut some_case_failed = false;
        for &i in cases {
            let case = &suite.cases[i];
            emit(Event::CaseStarted {
                suite: suite.name.clone(),
                case: case.name.clone(),
            });
            let finished = until_interrupted(interrupt, run_case(&env, suite, case, emit)).await;
            match finished {
                Some(result) => {
                    summary.record(result.outcome);
                    some_case_failed |= result.outcome == Outcome::Failed;
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
            detail: PhaseDetail::StoppingSuite,
        });
        let cleanup = if some_case_failed {
            env.shutdown_after_failure().await
        } else {
            env.shutdown().await
        };
        emit(Event::SuiteFinished {
            suite: suite.name.clone(),
            cleanup,
        });
    }
}
