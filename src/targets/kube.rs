//! The kube target: fixtures applied to a real cluster (kind, EKS, GKE, ...).
//!
//! Layout, IO-free first:
//! - [`status`]: readiness rules on object JSON (conditions at the current generation).
//! - [`address`]: which published address to use, and DNS resolution with backoff.
//! - [`redact`]: keeps kubeconfig credentials out of errors and diagnostics.
//! - [`options`]: connection options, timeouts and the cluster test tier switch.
//! - [`substitute`]: fixtures written for `meshcheck echo -delay`, run with an image that can delay.
//! - [`environment`]: the client side (apply, wait, address, exec, cleanup).

pub mod address;
pub mod environment;
pub mod error;
pub mod options;
pub mod redact;
pub mod status;
pub mod substitute;

pub use environment::{
    AppliedObject, ExecOutput, FIELD_MANAGER, KubeEnvironment, Preflight, PreflightCheck,
    REQUIRED_CRDS,
};
pub use error::{ApiFailure, KubeError};
pub use options::{E2E_ENV, KubeOptions, KubeTimeouts, cluster_tier_configured};
