//! Errors of the kube target. None of them holds a `kube::Error`: messages from the
//! client and the server are copied through the [`Redactor`](super::redact::Redactor)
//! first, so neither Display nor Debug can print a credential.

use std::path::PathBuf;
use std::time::Duration;

use crate::manifest::SourceLocation;

/// What an API call answered, with the message already redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiFailure {
    /// HTTP status when the server answered; `None` when it could not be reached.
    pub code: Option<u16>,
    /// The Status reason (`NotFound`, `Forbidden`, `Conflict`, ...) when there was one.
    pub reason: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) if self.reason.is_empty() => write!(f, "HTTP {code}: {}", self.message),
            Some(code) => write!(f, "HTTP {code} {}: {}", self.reason, self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("failed to load kubeconfig{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Kubeconfig {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("failed to reach the API server at {url}: {failure}")]
    Unreachable { url: String, failure: ApiFailure },
    #[error("{location}: {kind} ({api_version}) is not served by the cluster: {failure}")]
    UnknownKind {
        location: SourceLocation,
        kind: String,
        api_version: String,
        failure: ApiFailure,
    },
    #[error("failed to {action} {object}: {failure}")]
    Api {
        action: &'static str,
        object: String,
        failure: ApiFailure,
    },
    #[error("{location}: failed to apply {object}: {failure}")]
    Apply {
        location: SourceLocation,
        object: String,
        failure: ApiFailure,
    },
    #[error("timed out after {} waiting for {waited_for}; last seen: {last_seen}", humantime::format_duration(*timeout))]
    WaitTimeout {
        waited_for: String,
        timeout: Duration,
        last_seen: String,
    },
    /// The suite's readiness timeout ran out before every object was ready (before
    /// any kind's own, longer bound did).
    #[error("{deadline} ran out; not ready then: {}", still_pending.join("; "))]
    ReadinessDeadline {
        deadline: super::options::ReadinessDeadline,
        /// Every object still pending, and what it lacked (redacted), in apply order.
        still_pending: Vec<String>,
    },
    /// A readiness wait failed while others were still waiting (they stop with it).
    /// `first` is shown, not a `source`: kube errors hold no causes of their own.
    #[error("{first}; also not ready then: {}", still_pending.join("; "))]
    NotAllReady {
        first: Box<KubeError>,
        /// The others still pending when it failed, and what each lacked.
        still_pending: Vec<String>,
    },
    #[error("gateway {gateway} has no address after {}: {last_seen}", humantime::format_duration(*timeout))]
    NoAddress {
        gateway: String,
        timeout: Duration,
        last_seen: String,
    },
    #[error("failed to resolve {hostname} (address of gateway {gateway}) within {} after {attempts} attempts: {last_error}", humantime::format_duration(*timeout))]
    Resolve {
        gateway: String,
        hostname: String,
        timeout: Duration,
        attempts: u32,
        last_error: String,
    },
    #[error("no running pod for gateway {gateway}")]
    NoGatewayPod { gateway: String },
    #[error("no running pod of {deployment} has an IP to call")]
    NoPodIp { deployment: String },
    #[error("no usable in-mesh client pod ({selector}) in namespace {namespace}: {reason}")]
    NoMeshClient {
        namespace: String,
        selector: String,
        reason: String,
    },
    #[error("failed to exec {command:?} in {namespace}/{pod} container {container}: {message}")]
    Exec {
        namespace: String,
        pod: String,
        container: String,
        command: Vec<String>,
        message: String,
    },
    #[error("{object} needs a namespace")]
    NoNamespace { object: String },
}

impl KubeError {
    /// The HTTP status behind an API error, if any (for callers that treat 403 or 404
    /// specially).
    pub fn status_code(&self) -> Option<u16> {
        match self {
            KubeError::Api { failure, .. }
            | KubeError::Apply { failure, .. }
            | KubeError::UnknownKind { failure, .. }
            | KubeError::Unreachable { failure, .. } => failure.code,
            _ => None,
        }
    }
}
