//! What a target's bring-up gets from the runner: progress events for its suite, and
//! the one place an interrupted bring-up is announced and cleaned up.

use std::future::Future;

use super::events::{Event, Phase, PhaseDetail, RunEnvironment};
use super::interrupt::{Interrupt, until_interrupted};
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

    /// Tells the reporters what the suite runs against (versions).
    pub(crate) fn environment(&mut self, environment: RunEnvironment) {
        (self.emit)(Event::Environment { environment });
    }

    /// Runs one step of the bring-up; `None` when a signal came first. The caller then
    /// hands what the steps so far created to [`BringUp::abandon`].
    pub(crate) async fn step<F: Future>(&self, step: F) -> Option<F::Output> {
        until_interrupted(self.interrupt, step).await
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
