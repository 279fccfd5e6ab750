//! What a target's bring-up gets from the runner: progress events for its suite, and
//! the one place an interrupted bring-up is announced and cleaned up.

use std::future::Future;

use futures::Stream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::events::{
    Event, Milestone, Pending, Phase, PhaseDetail, RunEnvironment, UnknownVersion,
};
use super::interrupt::{Interrupt, until_interrupted};
use super::still_waiting::{looks, say_while};
use crate::suite::Suite;
use crate::targets::{BringUpError, CleanupReport};

/// A suite's bring-up in progress, handed to [`Target::bring_up`](crate::targets::Target::bring_up).
pub(crate) struct BringUp<'run> {
    suite: &'run Suite,
    interrupt: &'run Interrupt,
    emit: &'run mut (dyn FnMut(Event) + Send),
}

impl<'run> BringUp<'run> {
    pub(crate) fn new(
        suite: &'run Suite,
        interrupt: &'run Interrupt,
        emit: &'run mut (dyn FnMut(Event) + Send),
    ) -> Self {
        BringUp {
            suite,
            interrupt,
            emit,
        }
    }

    pub(crate) fn suite(&self) -> &'run Suite {
        self.suite
    }

    /// Tells the reporters what the bring-up is doing.
    pub(crate) fn phase(&mut self, phase: Phase, detail: PhaseDetail) {
        (self.emit)(Event::Phase {
            suite: self.suite.name.clone(),
            phase,
            detail,
        });
    }

    /// Marks a moment the suite's phase timings count from (the configuration handed
    /// over, the readiness wait's kinds ready).
    pub(crate) fn milestone(&mut self, milestone: Milestone) {
        (self.emit)(Event::Milestone {
            suite: self.suite.name.clone(),
            milestone,
        });
    }

    /// Tells the reporters what the suite runs against (versions), and why any
    /// version it looked for is unknown.
    pub(crate) fn environment(
        &mut self,
        environment: RunEnvironment,
        unknown: Vec<UnknownVersion>,
    ) {
        (self.emit)(Event::Environment {
            environment,
            unknown,
        });
    }

    /// Runs one step of the bring-up; `None` when a signal came first. The caller then
    /// hands what the steps so far created to [`BringUp::abandon`].
    pub(crate) async fn step<F: Future>(&self, step: F) -> Option<F::Output> {
        until_interrupted(self.interrupt, step).await
    }

    /// Runs a step that waits, like [`BringUp::step`], and while it lasts tells the
    /// reporters what it is still waiting for: `pending` is the step's latest word on
    /// that, looked at every second and said when [`StillWaiting`] finds it due.
    pub(crate) async fn wait<F: Future>(
        &mut self,
        phase: Phase,
        pending: watch::Receiver<Vec<Pending>>,
        step: F,
    ) -> Option<F::Output> {
        self.wait_looking(phase, pending, step, Instant::now(), looks())
            .await
    }

    /// [`BringUp::wait`] with its clock handed in: the wait began at `started`, and
    /// looks at what is pending at each instant `looks` yields.
    async fn wait_looking<F: Future>(
        &mut self,
        phase: Phase,
        pending: watch::Receiver<Vec<Pending>>,
        step: F,
        started: Instant,
        looks: impl Stream<Item = Instant>,
    ) -> Option<F::Output> {
        let step = until_interrupted(self.interrupt, step);
        say_while(
            step,
            &self.suite.name,
            phase,
            &pending,
            started,
            looks,
            &mut *self.emit,
        )
        .await
    }

    /// Says at once that a signal arrived and cleanup begins (cleanup can take a
    /// while on a cluster, and the user must see that the signal was heard), then
    /// removes what the bring-up created so far.
    pub(crate) async fn abandon(
        &mut self,
        cleanup: impl Future<Output = CleanupReport>,
    ) -> BringUpError {
        (self.emit)(Event::Interrupted {
            signal: self.interrupt.signal(),
        });
        self.phase(Phase::Cleanup, PhaseDetail::RemovingPartialEnvironment);
        BringUpError::Interrupted(cleanup.await)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn suite() -> Suite {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::suite::load_suite(&root.join("suites/ingress-canary.yaml")).unwrap()
    }

    fn said(event: &Event) -> String {
        match event {
            Event::Interrupted { signal } => format!("interrupted by {signal}"),
            Event::Phase { phase, detail, .. } => format!("{phase}: {detail}"),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_interrupt_is_announced_before_cleanup_starts() {
        let suite = suite();
        let interrupt = Interrupt::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut emit = {
            let log = Arc::clone(&log);
            move |event: Event| log.lock().unwrap().push(said(&event))
        };
        let mut bring_up = BringUp::new(&suite, &interrupt, &mut emit);
        interrupt.trigger("SIGTERM");
        assert_eq!(bring_up.step(std::future::pending::<()>()).await, None);
        let seen_by_cleanup = Arc::clone(&log);
        let error = bring_up
            .abandon(async move {
                // What the user was told by the time cleanup begins.
                CleanupReport {
                    removed: seen_by_cleanup.lock().unwrap().clone(),
                    failed: Vec::new(),
                    ..CleanupReport::default()
                }
            })
            .await;
        let BringUpError::Interrupted(cleanup) = error else {
            panic!("expected an interrupted bring-up, got {error:?}");
        };
        assert_eq!(
            cleanup.removed,
            [
                "interrupted by SIGTERM",
                "cleanup: removing what this suite created so far"
            ]
        );
    }

    #[tokio::test]
    async fn a_long_wait_says_what_is_pending_after_the_quiet_period_and_every_refresh() {
        use std::time::Duration;
        let suite = suite();
        let interrupt = Interrupt::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut emit = {
            let log = Arc::clone(&log);
            move |event: Event| {
                if let Event::StillWaiting {
                    waited, pending, ..
                } = event
                {
                    let pending: Vec<String> = pending
                        .iter()
                        .map(|p| format!("{}: {}", p.object, p.reason))
                        .collect();
                    log.lock().unwrap().push(format!(
                        "{}s {}",
                        waited.as_secs(),
                        pending.join("; ")
                    ));
                }
            }
        };
        let pending_object = |reason: &str| {
            vec![Pending {
                object: "Deployment istio-test/backend-v1".into(),
                reason: reason.into(),
            }]
        };
        let (tell, pending) = watch::channel(pending_object("0/1 pods ready"));
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        // Each look at its second of the wait; the step's word changes at 20 s, and
        // the step ends after the last look.
        let started = Instant::now();
        let script: Vec<u64> = (1..=23).collect();
        let looks = futures::stream::unfold(
            (script.into_iter(), Some(done)),
            move |(mut seconds, mut done)| {
                let tell = tell.clone();
                async move {
                    let Some(second) = seconds.next() else {
                        done.take().map(|done| done.send(()));
                        return None;
                    };
                    if second == 20 {
                        tell.send_replace(pending_object("1/1 pods ready"));
                    }
                    Some((started + Duration::from_secs(second), (seconds, done)))
                }
            },
        );
        let mut bring_up = BringUp::new(&suite, &interrupt, &mut emit);
        let step = async {
            let _ = finished.await;
            "ready"
        };
        assert_eq!(
            bring_up
                .wait_looking(Phase::Wait, pending, step, started, looks)
                .await,
            Some("ready")
        );
        assert_eq!(
            *log.lock().unwrap(),
            [
                "5s Deployment istio-test/backend-v1: 0/1 pods ready",
                "15s Deployment istio-test/backend-v1: 0/1 pods ready",
                "20s Deployment istio-test/backend-v1: 1/1 pods ready",
            ]
        );
    }

    #[tokio::test]
    async fn steps_run_to_completion_without_a_signal() {
        let suite = suite();
        let interrupt = Interrupt::default();
        let mut emit = |_: Event| {};
        let bring_up = BringUp::new(&suite, &interrupt, &mut emit);
        assert_eq!(bring_up.step(async { "applied" }).await, Some("applied"));
    }
}
