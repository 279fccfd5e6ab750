//! The kubelet stand-in (see the crate docs).

use std::sync::Arc;

use crate::context::{Context, Half};

/// Why the kubelet stand-in stopped.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {}

/// Runs until `ctx.shutdown` is cancelled, then stops every pod process it started.
pub async fn run(ctx: Arc<Context>) -> Result<(), KubeletError> {
    ctx.announce_ready(Half::Kubelet);
    ctx.shutdown.cancelled().await;
    Ok(())
}
