//! Why the stand-ins stopped with an error.

use std::path::PathBuf;

/// What ends the stand-ins with exit code 1 (large sources boxed: errors are rare,
/// results are everywhere).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("failed to read the kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    #[error("failed to make a client from the kubeconfig {path}")]
    Client {
        path: PathBuf,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("failed to listen for SIGTERM and SIGINT")]
    Signals(#[source] std::io::Error),
    #[error("the kubelet stand-in failed")]
    Kubelet(#[source] Box<crate::kubelet::KubeletError>),
    #[error("the istiod stand-in failed")]
    Istiod(#[source] Box<crate::istiod::IstiodError>),
}
