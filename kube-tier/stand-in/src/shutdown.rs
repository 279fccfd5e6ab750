//! SIGTERM and SIGINT cancel the shared shutdown token.

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Listens for SIGTERM and SIGINT (installed before this returns, so a signal right
/// after startup is not lost) and cancels `shutdown` on the first.
pub fn on_signal(shutdown: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        shutdown.cancel();
    }))
}
