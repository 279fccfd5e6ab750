//! The istiod stand-in: what `istioctl install` and istiod's gateway controllers do for
//! the Gateway API, done against the tier's real API server, with one real Envoy as the
//! data plane of every Gateway of class `istio`.
//!
//! - [`install`]: at start-up, the Gateway API and Istio CRDs, the `istio-system`
//!   namespace, an `istiod` Deployment whose image tag is the Istio release meshcheck
//!   follows, and the GatewayClass `istio`, Accepted.
//! - [`gateway_objects`]: each Gateway's `<name>-istio` Deployment and LoadBalancer
//!   Service, as Istio's deployment controller makes them, and its loopback address.
//! - [`translate`]: the API server's objects turned into the local target's plan and
//!   Envoy configuration, the endpoints being the Ready pods the kubelet stand-in runs.
//! - [`envoy`]: the Envoy process, reprogrammed through files it watches (file-based
//!   xDS), and whether each gateway's listeners listen.
//! - [`status`]: Gateway, listener and route status as Istio writes it, only when it
//!   changes; [`failure_modes`] the annotations tests use to make it misbehave.
//! - [`dns`]: a DNS server on 127.0.0.1 for Gateways whose address is a hostname.

mod controller;
mod dns;
mod envoy;
mod error;
mod failure_modes;
mod gateway_objects;
mod install;
mod manifests;
mod status;
mod translate;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::context::{Context, Half};

pub use error::IstiodError;

/// How long the controller waits after a change for more changes before it reprograms:
/// a suite applies its fixtures in one burst, and one Envoy update for the burst is
/// cheaper and shows no half-applied state for long.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Runs until `ctx.shutdown` is cancelled; calls `ctx.announce_ready(Half::Istiod)`
/// once it serves, and stops every process it started before returning.
pub async fn run(ctx: Arc<Context>) -> Result<(), IstiodError> {
    install::install(&ctx.client).await?;
    let dns = dns::GatewayDns::start().await?;
    let port_file = ctx.options.dns_port_file();
    std::fs::write(&port_file, format!("{}\n", dns.address().port())).map_err(|source| {
        IstiodError::Write {
            path: port_file.clone(),
            source,
        }
    })?;
    println!("dns listening on {}", dns.address());

    let envoy_binary = match &ctx.options.envoy {
        Some(path) => path.clone(),
        None => meshcheck::targets::local::ensure_envoy(|dir| {
            eprintln!(
                "istiod stand-in: {}",
                meshcheck::targets::local::installing_message(dir)
            );
        })
        .await
        .map_err(|err| IstiodError::EnvoyInstall(Box::new(err)))?,
    };
    let dir = ctx.options.work_dir.join("istiod");
    std::fs::create_dir_all(&dir).map_err(|source| IstiodError::Write {
        path: dir.clone(),
        source,
    })?;
    let data_plane = envoy::DataPlane::start(&envoy_binary, &dir).await?;

    let watches = watch::Watches::start(&ctx.client);
    tokio::select! {
        () = watches.synced() => {}
        () = ctx.shutdown.cancelled() => {
            data_plane.stop().await;
            return Ok(());
        }
    }
    ctx.announce_ready(Half::Istiod);

    let mut controller = controller::Controller::new(ctx.clone(), data_plane, dns);
    let mut wake_at: Option<Instant> = None;
    loop {
        let until = wake_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = ctx.shutdown.cancelled() => break,
            () = watches.changed() => {
                // Let the rest of a burst arrive, then read everything once.
                tokio::time::sleep(DEBOUNCE).await;
            }
            () = tokio::time::sleep_until(until) => {}
        }
        wake_at = controller.reconcile(&watches.snapshot()).await;
    }
    watches.stop();
    controller.stop().await;
    Ok(())
}
