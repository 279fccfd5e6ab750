//! The kube target: fixtures applied to a real cluster (kind, EKS, GKE, ...).
//!
//! Layout, IO-free first:
//! - [`status`]: readiness rules on object JSON (conditions at the current generation).
//! - [`address`]: which published address to use, and DNS resolution with backoff.
//! - [`redact`]: keeps kubeconfig credentials out of errors and diagnostics.
//! - [`options`]: connection options, timeouts and the cluster test tier switch.
//! - [`substitute`]: fixtures written for `meshcheck echo -delay`, run with an image that can delay.
//! - `mesh_client`: the in-mesh client pod for east-west cases: its Deployment, the
//!   `curl` command run in it, and the parser for its output.
//! - [`run_id`]: the labels that tie each applied object to its run, for `meshcheck cleanup`.
//! - [`versions`]: the Kubernetes, Gateway API and Istio versions, read from objects.
//! - [`environment`]: the client side (apply, wait, address, exec, cleanup).
//! - [`leftovers`]: what earlier runs left, by run-id label, for `meshcheck cleanup`.
//! - `lifecycle` and `source`: the kube target behind the `Target`
//!   interface: bring-up, cleanup on failure or a signal, where samples come from.

pub mod address;
pub mod environment;
pub mod error;
pub mod leftovers;
mod lifecycle;
mod mesh_client;
pub mod options;
mod read_status;
mod received;
pub mod redact;
pub mod route_status;
pub mod run_id;
mod source;
pub mod status;
pub mod substitute;
pub mod versions;

pub use environment::{
    AppliedObject, ExecOutput, FIELD_MANAGER, KubeEnvironment, Preflight, PreflightCheck,
    REQUIRED_CRDS,
};
pub use error::{ApiFailure, KubeError};
pub use lifecycle::KubeSetupError;
pub(crate) use lifecycle::KubeTarget;
pub use mesh_client::{LineError, MeshClientError};
pub use options::{E2E_ENV, KubeOptions, KubeTimeouts, ReadinessDeadline, cluster_tier_configured};
pub use run_id::RunId;
