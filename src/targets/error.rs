//! What can go wrong between the runner and a target, typed: bring-up failures, and
//! the errors of the questions a running target answers. Reporters flatten them to
//! text ([`crate::error_chain::one_line`]).

use super::CleanupReport;
use super::kube::{KubeError, KubeSetupError, MeshClientError};
use super::local::LocalError;
use crate::manifest::ObjectKey;
use crate::traffic::TrafficError;

/// Why a suite's environment could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Kube(#[from] KubeSetupError),
}

/// Why a suite's environment is not there.
#[derive(Debug)]
pub(crate) enum BringUpError {
    /// The bring-up failed; `cleanup` says what of its work was removed, or kept for
    /// inspection (`--keep-on-failure`), so the reports can say so as after a run.
    Failed {
        error: SetupError,
        cleanup: CleanupReport,
    },
    /// A signal arrived; what had been created is already removed.
    Interrupted(CleanupReport),
}

impl BringUpError {
    /// A failure after which `cleanup` removed (or kept) what the bring-up created.
    pub(crate) fn failed_after(error: impl Into<SetupError>, cleanup: CleanupReport) -> Self {
        BringUpError::Failed {
            error: error.into(),
            cleanup,
        }
    }
}

/// A failure before anything was created: nothing to clean up.
impl From<SetupError> for BringUpError {
    fn from(error: SetupError) -> Self {
        BringUpError::failed_after(error, CleanupReport::default())
    }
}

impl From<LocalError> for BringUpError {
    fn from(error: LocalError) -> Self {
        BringUpError::failed_after(error, CleanupReport::default())
    }
}

impl From<KubeSetupError> for BringUpError {
    fn from(error: KubeSetupError) -> Self {
        BringUpError::failed_after(error, CleanupReport::default())
    }
}

/// Why a running target could not give a case what it asked for: an address, a
/// sample source, a page of the proxy's admin API.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the local target has no listener for {gateway} on port {port}")]
    NoListener { gateway: ObjectKey, port: u16 },
    #[error("the local target has no in-mesh client listener for {service} port {port}: {reason}")]
    NoMeshListener {
        service: ObjectKey,
        port: u16,
        reason: String,
    },
    #[error("the local target has no pod of {deployment} to call on port {port}: {reason}")]
    NoPodAddress {
        deployment: ObjectKey,
        port: u16,
        reason: String,
    },
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("cannot compute the status Istio would write")]
    Status(#[source] crate::manifest::ManifestError),
}

/// Why a batch of a case's requests could not be sent or accounted for (requests that
/// fail are samples, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot send requests")]
    Engine(#[source] TrafficError),
    #[error(transparent)]
    MeshClient(#[from] MeshClientError),
}
