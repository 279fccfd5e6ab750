//! SIGINT/SIGTERM as the runner sees them: a token set by the CLI's signal handler,
//! and the one way a step of the run is cut short by it.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

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
}

/// Runs `step` unless the interrupt comes first; `None` means it did, and `step` was
/// dropped at its current await point. Every interruptible wait of the run (each
/// bring-up step, each case) goes through here, so a signal stops them all alike.
pub(crate) async fn until_interrupted<F: Future>(
    interrupt: &Interrupt,
    step: F,
) -> Option<F::Output> {
    tokio::select! {
        output = step => Some(output),
        () = interrupt.token.cancelled() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_that_finishes_first_gives_its_output() {
        let interrupt = Interrupt::default();
        assert_eq!(until_interrupted(&interrupt, async { 7 }).await, Some(7));
    }

    #[tokio::test]
    async fn an_interrupt_drops_the_pending_step() {
        let interrupt = Interrupt::default();
        let waiting = interrupt.clone();
        let step = until_interrupted(&waiting, std::future::pending::<()>());
        interrupt.trigger("SIGINT");
        assert_eq!(step.await, None);
        assert_eq!(interrupt.signal(), "SIGINT");
    }
}
