//! How long each phase of a suite took, measured where the suite runs. Reporters cannot
//! time phases from when events reach them: with `--jobs`, a suite's events wait in
//! its channel until the suites before it finish. So the runner watches its own
//! events as it emits them and, at the end of the suite, emits the timings as one
//! [`Event::PhaseTimings`].

use std::time::{Duration, Instant};

use serde::Serialize;

use super::events::{Event, KindReady, Milestone, Phase, PhaseDetail};

/// One phase of a suite, or of one of its cases.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PhaseTiming {
    pub phase: Phase,
    /// The case the phase belongs to (address, convergence, traffic), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    pub seconds: f64,
    /// The readiness wait (`wait` on the kube target): how long each kind of object
    /// took, the kinds in the order they were applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready_by_kind: Vec<KindReady>,
    /// A case's convergence (`converge`): how long after the suite's configuration was
    /// applied the data plane answered as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_config_applied: Option<DataPlaneTiming>,
}

impl PhaseTiming {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

/// How long the data plane took to take a suite's configuration, as one case's
/// convergence saw it: seconds from the last apply (the local target: Envoy live with
/// its configuration) to the case's first good response, and to the good responses in
/// a row it asks for. Later cases of a suite count from the same apply.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DataPlaneTiming {
    /// To the first good response; absent when none came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_good_seconds: Option<f64>,
    /// To the last of the good responses in a row; absent when the case did not converge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_a_row_seconds: Option<f64>,
}

/// Follows one suite's events: a phase lasts from its `Phase` event to the next one,
/// or to the end of its case or suite. Milestones add what happened inside a phase.
#[derive(Debug, Default)]
pub(super) struct PhaseTimer {
    current: Option<(PhaseTiming, Instant)>,
    config_applied: Option<Instant>,
    done: Vec<PhaseTiming>,
}

impl PhaseTimer {
    pub(super) fn observe(&mut self, event: &Event) {
        self.observe_at(event, Instant::now());
    }

    /// [`Self::observe`] with the event's moment handed in (unit tests).
    fn observe_at(&mut self, event: &Event, now: Instant) {
        match event {
            Event::Phase { phase, detail, .. } => {
                self.close(now);
                let timing = PhaseTiming {
                    phase: *phase,
                    case: case_of(detail),
                    seconds: 0.0,
                    ready_by_kind: Vec::new(),
                    since_config_applied: None,
                };
                self.current = Some((timing, now));
            }
            Event::Milestone { milestone, .. } => self.milestone(milestone, now),
            Event::CaseStarted { .. }
            | Event::CaseFinished { .. }
            | Event::SetupFailed { .. }
            | Event::SuiteFinished { .. } => self.close(now),
            _ => {}
        }
    }

    fn milestone(&mut self, milestone: &Milestone, now: Instant) {
        let since_applied = self
            .config_applied
            .map(|applied| now.saturating_duration_since(applied).as_secs_f64());
        match milestone {
            Milestone::ConfigApplied => self.config_applied = Some(now),
            Milestone::KindsReady(kinds) => {
                if let Some((timing, _)) = self.current.as_mut() {
                    timing.ready_by_kind = kinds.clone();
                }
            }
            Milestone::FirstGoodResponse { case } => {
                if let Some(seconds) = since_applied
                    && let Some(data_plane) = converging(&mut self.current, case)
                {
                    data_plane.first_good_seconds.get_or_insert(seconds);
                }
            }
            Milestone::Converged { case } => {
                if let Some(seconds) = since_applied
                    && let Some(data_plane) = converging(&mut self.current, case)
                {
                    data_plane.in_a_row_seconds = Some(seconds);
                }
            }
        }
    }

    fn close(&mut self, now: Instant) {
        if let Some((mut timing, started)) = self.current.take() {
            timing.seconds = now.saturating_duration_since(started).as_secs_f64();
            self.done.push(timing);
        }
    }

    /// Every phase seen, in order; one still open ends now.
    pub(super) fn finish(mut self) -> Vec<PhaseTiming> {
        self.close(Instant::now());
        self.done
    }
}

/// The data-plane timing of `case`'s convergence, when that is the phase open now.
fn converging<'t>(
    current: &'t mut Option<(PhaseTiming, Instant)>,
    case: &str,
) -> Option<&'t mut DataPlaneTiming> {
    current
        .as_mut()
        .map(|(timing, _)| timing)
        .filter(|t| t.phase == Phase::Converge && t.case.as_deref() == Some(case))
        .map(|t| {
            t.since_config_applied.get_or_insert(DataPlaneTiming {
                first_good_seconds: None,
                in_a_row_seconds: None,
            })
        })
}

fn case_of(detail: &PhaseDetail) -> Option<String> {
    match detail {
        PhaseDetail::FindingEntry { case, .. }
        | PhaseDetail::Converging { case, .. }
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

    #[test]
    fn readiness_per_kind_and_the_data_plane_since_the_last_apply() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let milestone = |milestone: Milestone| Event::Milestone {
            suite: "s".into(),
            milestone,
        };
        let converging = || {
            phase(
                Phase::Converge,
                PhaseDetail::Converging {
                    case: "c".into(),
                    consecutive: 3,
                    url: url::Url::parse("http://example.com/").unwrap(),
                    origin: crate::targets::RequestOrigin::Engine {
                        address: "127.0.0.1:1".parse().unwrap(),
                    },
                },
            )
        };
        let mut timer = PhaseTimer::default();
        timer.observe_at(
            &phase(Phase::Apply, PhaseDetail::Applying { objects: 4 }),
            at(0),
        );
        timer.observe_at(&milestone(Milestone::ConfigApplied), at(200));
        timer.observe_at(
            &phase(Phase::Wait, PhaseDetail::WaitingForReadiness),
            at(200),
        );
        let kinds = vec![
            KindReady {
                kind: "Deployment".into(),
                seconds: 4.0,
            },
            KindReady {
                kind: "Gateway".into(),
                seconds: 1.5,
            },
        ];
        timer.observe_at(&milestone(Milestone::KindsReady(kinds.clone())), at(4200));
        timer.observe_at(
            &Event::CaseStarted {
                suite: "s".into(),
                case: "c".into(),
            },
            at(4200),
        );
        timer.observe_at(&converging(), at(5200));
        // Another case's word, or one outside convergence, changes nothing.
        timer.observe_at(
            &milestone(Milestone::FirstGoodResponse { case: "d".into() }),
            at(5300),
        );
        timer.observe_at(
            &milestone(Milestone::FirstGoodResponse { case: "c".into() }),
            at(6200),
        );
        timer.observe_at(
            &milestone(Milestone::FirstGoodResponse { case: "c".into() }),
            at(6500),
        );
        timer.observe_at(
            &milestone(Milestone::Converged { case: "c".into() }),
            at(7200),
        );
        timer.observe_at(&phase(Phase::Cleanup, PhaseDetail::StoppingSuite), at(7200));
        let timings = timer.finish();
        let wait = timings.iter().find(|t| t.phase == Phase::Wait).unwrap();
        assert_eq!(wait.seconds, 4.0);
        assert_eq!(wait.ready_by_kind, kinds);
        let converge = timings.iter().find(|t| t.phase == Phase::Converge).unwrap();
        assert_eq!(converge.seconds, 2.0);
        assert_eq!(
            converge.since_config_applied,
            Some(DataPlaneTiming {
                first_good_seconds: Some(6.0),
                in_a_row_seconds: Some(7.0),
            })
        );
        assert!(
            timings
                .iter()
                .filter(|t| t.phase != Phase::Converge)
                .all(|t| t.since_config_applied.is_none())
        );
    }
}
