//! When a long wait says what it is still waiting for: not during its first seconds
//! (most waits end there), then whenever what is pending changes, and at least every
//! [`REFRESH`] so a silent terminal never looks like a hang. Decided on the tokio clock
//! from instants handed in, so the rule is unit-tested without sleeping.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::events::{Event, Pending, Phase};

/// A wait shorter than this says nothing.
pub(crate) const QUIET: Duration = Duration::from_secs(5);
/// An unchanged wait repeats itself this often.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);
/// How often a wait looks whether it is due to speak (the granularity of "on change").
pub(crate) const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The throttle of one wait's [`Event::StillWaiting`](super::Event::StillWaiting).
#[derive(Debug)]
pub(crate) struct StillWaiting {
    started: Instant,
    quiet: Duration,
    refresh: Duration,
    last: Option<(Instant, Vec<Pending>)>,
}

impl StillWaiting {
    pub(crate) fn new(started: Instant) -> Self {
        StillWaiting {
            started,
            quiet: QUIET,
            refresh: REFRESH,
            last: None,
        }
    }

    /// How long the wait has lasted, when it is time to say `pending` again: past the
    /// quiet period, and either `pending` changed since it was last said or that was
    /// [`REFRESH`] ago. Nothing pending says nothing.
    pub(crate) fn due(&mut self, now: Instant, pending: &[Pending]) -> Option<Duration> {
        let waited = now.saturating_duration_since(self.started);
        if pending.is_empty() || waited < self.quiet {
            return None;
        }
        let speak = match &self.last {
            None => true,
            Some((at, said)) => {
                said.as_slice() != pending || now.saturating_duration_since(*at) >= self.refresh
            }
        };
        speak.then(|| {
            self.last = Some((now, pending.to_vec()));
            waited
        })
    }
}

/// An instant every [`LOOK_EVERY`] on the tokio clock, the first at once.
pub(crate) fn looks() -> impl Stream<Item = Instant> {
    let mut interval = tokio::time::interval(LOOK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold(interval, |mut interval| async move {
        let at = interval.tick().await;
        Some((at, interval))
    })
}

/// Runs `step`, and at each of `looks` emits [`Event::StillWaiting`] with what
/// `pending` says now, when [`StillWaiting`] finds it due.
pub(crate) async fn say_while<F: Future>(
    step: F,
    suite: &str,
    phase: Phase,
    pending: &watch::Receiver<Vec<Pending>>,
    started: Instant,
    looks: impl Stream<Item = Instant>,
    emit: &mut (dyn FnMut(Event) + Send),
) -> F::Output {
    let mut throttle = StillWaiting::new(started);
    let mut step = std::pin::pin!(step);
    let mut looks = std::pin::pin!(looks.fuse());
    loop {
        let now = tokio::select! {
            biased;
            done = &mut step => return done,
            Some(now) = looks.next() => now,
            // No more looks: only the step is left to wait for.
            else => return step.await,
        };
        let current = pending.borrow().clone();
        if let Some(waited) = throttle.due(now, &current) {
            emit(Event::StillWaiting {
                suite: suite.to_owned(),
                phase,
                waited,
                pending: current,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(reason: &str) -> Vec<Pending> {
        vec![Pending {
            object: "Deployment istio-test/backend-v1".into(),
            reason: reason.into(),
        }]
    }

    #[test]
    fn quiet_at_first_then_on_change_and_every_refresh() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut wait = StillWaiting::new(start);
        let one = pending("0/1 pods ready");
        assert_eq!(wait.due(at(1), &one), None);
        assert_eq!(wait.due(at(4), &one), None);
        assert_eq!(wait.due(at(5), &one), Some(Duration::from_secs(5)));
        assert_eq!(wait.due(at(6), &one), None, "unchanged and just said");
        assert_eq!(wait.due(at(14), &one), None);
        assert_eq!(wait.due(at(15), &one), Some(Duration::from_secs(15)));
        let two = pending("1/1 pods ready, Available=False");
        assert_eq!(wait.due(at(16), &two), Some(Duration::from_secs(16)));
        assert_eq!(wait.due(at(17), &two), None);
        assert_eq!(wait.due(at(30), &[]), None, "nothing pending");
    }
}
