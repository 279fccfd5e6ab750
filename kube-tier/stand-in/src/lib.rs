//! Test stand-ins for the kube tier (`scripts/kube-tier.sh`): what a real cluster's
//! kubelet and istiod would do, done against the tier's real kube-apiserver so the kube
//! target can be tested end to end on a machine without a container runtime or Istio.
//!
//! - [`kubelet`]: binds pods to the stand-in node, runs `meshcheck echo` for the echo
//!   images on a loopback pod IP, reports them Running and Ready, and stops them when
//!   their pods are deleted; injects the `istio-proxy` sidecar through a mutating
//!   webhook, as Istio's injector does.
//! - [`istiod`]: accepts GatewayClass `istio`, makes each Gateway's `<name>-istio`
//!   Deployment and LoadBalancer Service, writes Gateway, listener and route status as
//!   Istio would, and programs a real Envoy from the API server's objects with the local
//!   target's translation.
//!
//! Both run in one process (`kube-stand-in`, options in [`options`]); pods get loopback
//! IPs 127.10.x.y and gateways 127.20.0.n ([`addresses`]). It prints [`READY_LINE`] once
//! both halves watch and serve, and on SIGTERM or SIGINT (or an error in either half)
//! stops every process it started before it exits.
//!
//! Nothing here is meshcheck's product; it exists so tests can fail for the right reasons.

pub mod addresses;
pub mod context;
mod error;
pub mod istiod;
pub mod kubelet;
pub mod options;
pub mod process;
mod shutdown;

pub use error::Error;

use clap::Parser;

use context::{Context, Half};
use options::Options;

/// What `scripts/kube-tier.sh` waits for on stdout: both halves watch and serve.
pub const READY_LINE: &str = "stand-ins ready";

/// Runs the stand-ins until SIGTERM or SIGINT; returns the process exit code (0 after a
/// signal, 1 on an error, 2 on bad options).
pub fn main() -> i32 {
    let options = match Options::try_parse() {
        Ok(options) => options,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { 2 } else { 0 };
        }
    };
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| runtime.block_on(run(options)));
    match outcome {
        Ok(()) => 0,
        Err(err) => {
            eprintln!(
                "kube-stand-in: error: {}",
                meshcheck::error_chain::caused_by(&err)
            );
            1
        }
    }
}

/// Connects, runs both halves until a signal or the first error, and returns once
/// both have stopped their processes.
async fn run(options: Options) -> Result<(), Error> {
    let client = connect(&options.kubeconfig).await?;
    let (ctx, mut announced) = Context::new(client, options);
    let signals = shutdown::on_signal(ctx.shutdown.clone()).map_err(Error::Signals)?;

    // Either half failing stops the other: the shutdown token is cancelled, and each
    // half stops its processes before returning.
    let kubelet = {
        let ctx = ctx.clone();
        async move {
            let result = kubelet::run(ctx.clone()).await;
            ctx.shutdown.cancel();
            result.map_err(|e| Error::Kubelet(Box::new(e)))
        }
    };
    let istiod = {
        let ctx = ctx.clone();
        async move {
            let result = istiod::run(ctx.clone()).await;
            ctx.shutdown.cancel();
            result.map_err(|e| Error::Istiod(Box::new(e)))
        }
    };
    let ready_line = async {
        let mut waiting = vec![Half::Kubelet, Half::Istiod];
        while !waiting.is_empty() {
            match announced.recv().await {
                Some(half) => waiting.retain(|h| *h != half),
                None => return,
            }
        }
        println!("{READY_LINE}");
    };
    let ((kubelet, istiod), ()) = tokio::join!(async { tokio::join!(kubelet, istiod) }, async {
        tokio::select! {
            () = ready_line => {}
            () = ctx.shutdown.cancelled() => {}
        }
    });
    signals.abort();
    kubelet.and(istiod)
}

/// A client for the kubeconfig's current context.
async fn connect(path: &std::path::Path) -> Result<kube::Client, Error> {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|source| Error::Kubeconfig {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    kube::Client::try_from(config).map_err(|source| Error::Client {
        path: path.to_owned(),
        source: Box::new(source),
    })
}
