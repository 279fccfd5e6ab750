//! The kubelet stand-in (see the crate docs): the Node ([`node`]), the pod watch that
//! binds and runs pods ([`pods`], [`pod_run`], [`containers`], [`pod_status`]) and the
//! sidecar injection webhook ([`webhook`], [`inject`]), and the kubelet port serving
//! the containers' logs ([`logs`], on a [`tls_server`] like the webhook's).
//!
//! What it does not stand for: there is no container runtime (echo images run as
//! `meshcheck echo` processes, Istio's images and the injected `istio-proxy` sidecar
//! are reported running with no process, anything else stays waiting), no probes,
//! no restarts, no volumes, no `exec` or `attach` (the API server's exec needs the
//! kubelet's streaming protocol, which the stand-in does not speak).

pub mod containers;
pub mod inject;
pub mod logs;
pub mod node;
pub mod pod_run;
pub mod pod_status;
pub mod pods;
pub mod tls_server;
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
    #[error("failed to make the {purpose} server's certificate")]
    Certificate {
        purpose: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("failed to set up TLS for the {purpose} server")]
    Tls {
        purpose: String,
        #[source]
        source: tokio_rustls::rustls::Error,
    },
    #[error("failed to listen for the {purpose} server on 127.0.0.1")]
    Listen {
        purpose: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to describe the injection webhook")]
    WebhookConfiguration(#[source] serde_json::Error),
}

/// Registers the node and the injection webhook, then binds and runs pods until
/// `ctx.shutdown` is cancelled; stops every pod process and removes the webhook
/// before it returns.
pub async fn run(ctx: Arc<Context>) -> Result<(), KubeletError> {
    // The kubelet port: the API server proxies `pods/log` to it, at the port the
    // Node's status gives (it verifies no certificate unless told a CA, and it is not).
    let kubelet_port = tls_server::TlsServer::bind("kubelet").await?;
    node::register(
        &ctx.client,
        &ctx.options.node_name,
        kubelet_port.address.port(),
    )
    .await?;
    let logs = ctx.logs.clone();
    let serving_logs = tokio::spawn(kubelet_port.serve(ctx.shutdown.clone(), move |request| {
        logs.clone().answer(request)
    }));
    let injector = webhook::Injector::bind().await?;
    injector.register(&ctx.client).await?;
    let serving = tokio::spawn(injector.serve(ctx.shutdown.clone()));
    ctx.announce_ready(Half::Kubelet);
    pods::watch(ctx.clone()).await;
    webhook::unregister(&ctx.client).await;
    let _ = serving.await;
    let _ = serving_logs.await;
    Ok(())
}
