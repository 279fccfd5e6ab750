//! How long each phase of a suite took, measured where the suite runs. Reporters cannot
//! time phases from when events reach them: with `--jobs`, a suite's events wait in
//! its channel until the suites before it finish. So the runner watches its own
//! events as it emits them and, at the end of the suite, emits the timings as one
//! [`Event::PhaseTimings`].

use std::time::{Duration, Instant};

use serde::Serialize;

use super::events::{Event, Phase, PhaseDetail};

/// One phase of a suite, or of one of its cases.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PhaseTiming {
    pub phase: Phase,
    /// The case the phase belongs to (convergence, traffic), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    pub seconds: f64,
}

impl PhaseTiming {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// Follows one suite's events: a phase lasts from its `Phase` event to the next one,
/// or to the end of its case or suite.
#[derive(Debug, Default)]
pub(super) struct PhaseTimer {
    current: Option<(Phase, Option<String>, Instant)>,
    done: Vec<PhaseTiming>,
}

impl PhaseTimer {
    pub(super) fn observe(&mut self, event: &Event) {
        match event {
            Event::Phase { phase, detail, .. } => {
                self.close();
                self.current = Some((*phase, case_of(detail), Instant::now()));
            }
            Event::CaseStarted { .. }
            | Event::CaseFinished { .. }
            | Event::SetupFailed { .. }
            | Event::SuiteFinished { .. } => self.close(),
            _ => {}
        }
    }

    fn close(&mut self) {
        if let Some((phase, case, started)) = self.current.take() {
            self.done.push(PhaseTiming {
                phase,
                case,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }

    /// Every phase seen, in order; one still open ends now.
    pub(super) fn finish(mut self) -> Vec<PhaseTiming> {
        self.close();
        self.done
    }
}

fn case_of(detail: &PhaseDetail) -> Option<String> {
    match detail {
        PhaseDetail::Converging { case, .. }
        | PhaseDetail::Measuring { case, .. }
        | PhaseDetail::Burst { case, .. }
        | PhaseDetail::Ejecting { case, .. }
        | PhaseDetail::Ejected { case, .. } => Some(case.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(phase: Phase, detail: PhaseDetail) -> Event {
        Event::Phase {
            suite: "s".into(),
            phase,
            detail,
        }
    }

    #[test]
    fn a_phase_ends_at_the_next_phase_or_the_end_of_its_case() {
        let mut timer = PhaseTimer::default();
        timer.observe(&phase(
            Phase::BringUp,
            PhaseDetail::StartingLocal { objects: 3 },
        ));
        timer.observe(&Event::CaseStarted {
            suite: "s".into(),
            case: "c".into(),
        });
        // Between cases nothing is timed.
        timer.observe(&Event::Response {
            suite: "s".into(),
            case: "c".into(),
            status: Some(200),
            identity: None,
            error: None,
        });
        let url = url::Url::parse("http://example.com/").unwrap();
        timer.observe(&phase(
            Phase::Converge,
            PhaseDetail::Converging {
                case: "c".into(),
                consecutive: 3,
                url,
                origin: crate::targets::RequestOrigin::Engine {
                    address: "127.0.0.1:1".parse().unwrap(),
                },
            },
        ));
        timer.observe(&phase(Phase::Cleanup, PhaseDetail::StoppingSuite));
        let timings = timer.finish();
        let phases: Vec<(Phase, Option<&str>)> = timings
            .iter()
            .map(|t| (t.phase, t.case.as_deref()))
            .collect();
        assert_eq!(
            phases,
            [
                (Phase::BringUp, None),
                (Phase::Converge, Some("c")),
                (Phase::Cleanup, None)
            ]
        );
        assert!(timings.iter().all(|t| t.seconds >= 0.0));
    }
}
