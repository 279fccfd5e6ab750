//! Runs suites, one after another or `jobs` at a time, emitting events; cleanup always happens, also on
//! interruption.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use super::bring_up::BringUp;
use super::case::run_case;
use super::case_error::CaseError;
use super::events::{CaseMessage, CaseResult, Event, Outcome, Phase, PhaseDetail, RunSummary};
use super::interrupt::{Interrupt, until_interrupted};
use super::phase_timer::PhaseTimer;
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
    /// How many suites run at once (at least 1). Only the local target runs more than
    /// one: on a cluster, suites share namespaces.
    pub jobs: usize,
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
            run_suites(
                &target,
                &selected,
                options.jobs,
                interrupt,
                emit,
                &mut summary,
            )
            .await;
        }
        TargetSettings::Kube(options) => {
            let target = KubeTarget {
                options: options.clone(),
            };
            // Suites on one cluster share namespaces: one at a time.
            run_suites(&target, &selected, 1, interrupt, emit, &mut summary).await;
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

/// Runs the selected suites, `jobs` at a time, and tallies the run from the events
/// they emit. Concurrent suites each send to their own channel, and the channels are
/// forwarded one after another in suite order: every reporter sees each suite's
/// events together, as in a sequential run, and the earliest unfinished suite is shown
/// live. Each local suite has its own Envoy, processes and ports, so they do not meet.
async fn run_suites<T: Target>(
    target: &T,
    selected: &[(&Suite, Vec<usize>)],
    jobs: usize,
    interrupt: &Interrupt,
    emit: &mut (dyn FnMut(Event) + Send),
    summary: &mut RunSummary,
) {
    let mut interrupt_said = false;
    let mut tally = |event: Event| {
        match &event {
            Event::CaseFinished { result } => summary.record(result.outcome),
            Event::SetupFailed { .. } => summary.setup_failures += 1,
            // Every suite running at the time sees the interrupt; say it once.
            Event::Interrupted { .. } if interrupt_said => return,
            Event::Interrupted { .. } => interrupt_said = true,
            _ => {}
        }
        emit(event);
    };
    if jobs <= 1 {
        for (suite, cases) in selected {
            if run_suite(target, suite, cases, interrupt, &mut tally).await == Continue::Stop {
                break;
            }
        }
        return;
    }
    let (senders, receivers): (Vec<_>, Vec<_>) = selected
        .iter()
        .map(|_| tokio::sync::mpsc::unbounded_channel::<Event>())
        .unzip();
    let suites = futures::stream::iter(selected.iter().zip(senders))
        .map(|((suite, cases), sender)| async move {
            let mut send = move |event: Event| {
                // The receiver lives until every suite has finished.
                let _ = sender.send(event);
            };
            run_suite(target, suite, cases, interrupt, &mut send).await
        })
        .buffer_unordered(jobs)
        .collect::<Vec<Continue>>();
    let forward = async {
        for mut receiver in receivers {
            while let Some(event) = receiver.recv().await {
                tally(event);
            }
        }
    };
    tokio::join!(suites, forward);
}

/// Whether the run goes on to the next suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Continue {
    Next,
    Stop,
}

/// Runs one suite, timing its phases as it goes (`phase_timer.rs`).
async fn run_suite<T: Target>(
    target: &T,
    suite: &Suite,
    cases: &[usize],
    interrupt: &Interrupt,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Continue {
    if interrupt.is_triggered() {
        return Continue::Stop;
    }
    let mut timer = PhaseTimer::default();
    let mut held_back = None;
    let next = {
        let mut timed = |event: Event| {
            timer.observe(&event);
            // The timings go out just before the suite's last event.
            if matches!(event, Event::SuiteFinished { .. }) {
                held_back = Some(event);
            } else {
                emit(event);
            }
        };
        run_suite_untimed(target, suite, cases, interrupt, &mut timed).await
    };
    emit(Event::PhaseTimings {
        suite: suite.name.clone(),
        phases: timer.finish(),
    });
    if let Some(finished) = held_back {
        emit(finished);
    }
    next
}

async fn run_suite_untimed<T: Target>(
    target: &T,
    suite: &Suite,
    cases: &[usize],
    interrupt: &Interrupt,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Continue {
    emit(Event::SuiteStarted {
        suite: suite.name.clone(),
        cases: cases.len(),
        conformance: suite.conformance.clone(),
    });
    // Nothing to run: no environment to bring up (and none that could fail).
    if cases.iter().all(|&i| suite.cases[i].spec.skip.is_some()) {
        for &i in cases {
            let case = &suite.cases[i];
            emit(Event::CaseFinished {
                result: Box::new(CaseResult::without_traffic(
                    &suite.name,
                    &case.name,
                    Outcome::Skipped,
                    CaseMessage::Skipped(case.spec.skip.clone().unwrap_or_default()),
                )),
            });
        }
        emit(Event::SuiteFinished {
            suite: suite.name.clone(),
            cleanup: Default::default(),
        });
        return Continue::Next;
    }
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
            return Continue::Stop;
        }
        Err(BringUpError::Failed { error, cleanup }) => {
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
                emit(Event::CaseFinished {
                    result: Box::new(result),
                });
            }
            // What the failed bring-up removed or kept, reported as after a run.
            emit(Event::SuiteFinished {
                suite: suite.name.clone(),
                cleanup,
            });
            return Continue::Next;
        }
        Ok(env) => env,
    };
    let mut env = env;
    let mut some_case_failed = false;
    // How many of the suite's cases have had their `apply` done, selected or not: a
    // case is written against the fixtures as every earlier case left them.
    let mut edits_done = 0;
    for &i in cases {
        let case = &suite.cases[i];
        emit(Event::CaseStarted {
            suite: suite.name.clone(),
            case: case.name.clone(),
        });
        let edited =
            until_interrupted(interrupt, apply_edits(&mut env, suite, &mut edits_done, i)).await;
        let finished = match edited {
            None => None,
            Some(Err(error)) => Some(CaseResult::without_traffic(
                &suite.name,
                &case.name,
                Outcome::Failed,
                CaseMessage::Error(Arc::new(error)),
            )),
            Some(Ok(())) => until_interrupted(interrupt, run_case(&env, suite, case, emit)).await,
        };
        match finished {
            Some(result) => {
                some_case_failed |= result.outcome == Outcome::Failed;
                emit(Event::CaseFinished {
                    result: Box::new(result),
                });
            }
            None => break,
        }
    }
    let next = if interrupt.is_triggered() {
        emit(Event::Interrupted {
            signal: interrupt.signal(),
        });
        Continue::Stop
    } else {
        Continue::Next
    };
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
    next
}

/// Applies the `apply` of every case up to and including `through` that is not done
/// yet, in case order, whether those cases run or not.
async fn apply_edits<R: RunningTarget>(
    env: &mut R,
    suite: &Suite,
    done: &mut usize,
    through: usize,
) -> Result<(), CaseError> {
    while *done <= through {
        let case = &suite.cases[*done];
        if !case.apply.is_empty() {
            env.apply(&case.apply, case.fixtures(suite))
                .await
                .map_err(|source| CaseError::Apply {
                    case: case.name.clone(),
                    objects: case
                        .apply
                        .iter()
                        .map(|m| m.key().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    source,
                })?;
        }
        *done += 1;
    }
    Ok(())
}
