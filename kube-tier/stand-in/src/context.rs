//! What both halves share: the API server connection, the options, the loopback
//! address pools, the shutdown signal and the ready line.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::addresses::AddressPool;
use crate::kubelet::logs::ContainerLogs;
use crate::options::Options;

/// The stand-ins' shared state; each half gets an `Arc` of it.
pub struct Context {
    pub client: kube::Client,
    pub options: Options,
    /// Pod IPs (127.10.x.y), handed out by the kubelet stand-in.
    pub pod_addresses: AddressPool,
    /// Gateway addresses (127.20.0.n), handed out by the istiod stand-in.
    pub gateway_addresses: AddressPool,
    /// The pods' container logs, written by the kubelet stand-in's processes and
    /// served on its kubelet port.
    pub logs: ContainerLogs,
    /// Cancelled on SIGTERM/SIGINT or when either half fails: each half then stops its
    /// processes and returns.
    pub shutdown: CancellationToken,
    ready: mpsc::UnboundedSender<Half>,
}

/// Which half of the stand-ins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    Kubelet,
    Istiod,
}

impl Context {
    /// The context and the receiving end of the halves' ready signals.
    pub fn new(
        client: kube::Client,
        options: Options,
    ) -> (Arc<Context>, mpsc::UnboundedReceiver<Half>) {
        let (ready, announced) = mpsc::unbounded_channel();
        let context = Context {
            client,
            options,
            pod_addresses: AddressPool::pods(),
            gateway_addresses: AddressPool::gateways(),
            logs: ContainerLogs::default(),
            shutdown: CancellationToken::new(),
            ready,
        };
        (Arc::new(context), announced)
    }

    /// Called by a half once it watches and serves: the ready line is printed when both
    /// have said so.
    pub fn announce_ready(&self, half: Half) {
        // The receiver lives as long as `main`'s run; a send after it is gone is moot.
        let _ = self.ready.send(half);
    }
}
