//! Why the istiod stand-in stopped. Only start-up can fail: once it runs, what goes
//! wrong with an object becomes that object's status, and a failed API call is retried
//! on the next reconcile.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IstiodError {
    #[error("failed to install {what}")]
    Install {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("the bundled manifests of {what} do not load")]
    BundledManifests {
        what: &'static str,
        #[source]
        source: Box<meshcheck::manifest::ManifestError>,
    },
    #[error("CRD {name} was not Established within {timeout:?}")]
    CrdNotEstablished {
        name: String,
        timeout: std::time::Duration,
    },
    #[error("failed to find or install Envoy")]
    EnvoyInstall(#[source] Box<meshcheck::targets::local::LocalError>),
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start Envoy")]
    EnvoyStart(#[source] crate::process::ProcessError),
    #[error("Envoy did not become ready within {timeout:?}; its last output: {tail}")]
    EnvoyNotReady {
        timeout: std::time::Duration,
        tail: String,
    },
    #[error("failed to bind the DNS server on 127.0.0.1")]
    DnsBind(#[source] std::io::Error),
}
