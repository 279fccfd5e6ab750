//! The istiod stand-in (see the crate docs).

use std::sync::Arc;

use crate::context::{Context, Half};

/// Why the istiod stand-in stopped.
#[derive(Debug, thiserror::Error)]
pub enum IstiodError {}

/// Runs until `ctx.shutdown` is cancelled; calls `ctx.announce_ready(Half::Istiod)`
/// once it serves, and stops every process it started before returning.
pub async fn run(ctx: Arc<Context>) -> Result<(), IstiodError> {
    // Filled in by the istiod stand-in's author.
    ctx.announce_ready(Half::Istiod);
    ctx.shutdown.cancelled().await;
    Ok(())
}
