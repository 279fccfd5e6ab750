//! The kubelet stand-in (see the crate docs): the Node ([`node`]), the pod watch that
//! binds and runs pods ([`pods`], [`pod_run`], [`containers`], [`pod_status`]) and the
//! sidecar injection webhook ([`webhook`], [`inject`]).
//!
//! What it does not stand for: there is no container runtime (echo images run as
//! `meshcheck echo` processes, Istio's images and the injected `istio-proxy` sidecar
//! are reported running with no process, anything else stays waiting), no probes,
//! no restarts, no volumes, no `exec` or `attach` (the API server's exec needs a real
//! kubelet).

pub mod containers;
pub mod inject;
pub mod node;
pub mod pod_run;
pub mod pod_status;
pub mod pods;
pub mod webhook;

use std::sync::Arc;

use crate::context::{Context, Half};

/// Why the kubelet stand-in stopped.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("failed to {what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to make the injection webhook's certificate")]
    WebhookCertificate(#[source] rcgen::Error),
    #[error("failed to set up TLS for the injection webhook")]
    WebhookTls(#[source] tokio_rustls::rustls::Error),
    #[error("failed to describe the injection webhook")]
    WebhookConfiguration(#[source] serde_json::Error),
    #[error("failed to listen for the injection webhook on 127.0.0.1")]
    WebhookListen(#[source] std::io::Error),
}

/// Registers the node and the injection webhook, then binds and runs pods until
/// `ctx.shutdown` is cancelled; stops every pod process and removes the webhook
/// before it returns.
pub async fn run(ctx: Arc<Context>) -> Result<(), KubeletError> {
    node::register(&ctx.client, &ctx.options.node_name).await?;
    let injector = webhook::Injector::bind().await?;
    injector.register(&ctx.client).await?;
    let serving = tokio::spawn(injector.serve(ctx.shutdown.clone()));
    ctx.announce_ready(Half::Kubelet);
    pods::watch(ctx.clone()).await;
    webhook::unregister(&ctx.client).await;
    let _ = serving.await;
    Ok(())
}
