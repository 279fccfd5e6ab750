//! Why a case ended without a verdict of its checks. The case's result carries it
//! typed ([`super::CaseMessage::Error`]); reporters put it and its causes into words.

use std::time::Duration;

use crate::suite::Entry;
use crate::suite::expect::JudgeError;
use crate::targets::{SendError, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no way to send requests to {entry} port {port}")]
    NoSampleSource {
        entry: Entry,
        port: u16,
        #[source]
        source: TargetError,
    },
    /// Sending failed before any response (setup of the engine or the client pod).
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("the gateway's certificate for {host} was rejected: {last}")]
    CertificateRejected {
        host: String,
        /// The last response, in words.
        last: String,
    },
    #[error(
        "the data plane did not converge within {}: last response was {last}",
        humantime::format_duration(*timeout)
    )]
    NotConverged {
        timeout: Duration,
        /// The last response, in words.
        last: String,
    },
    #[error(transparent)]
    Judge(#[from] JudgeError),
    #[error("cannot apply the edit of case `{case}` ({objects})")]
    Apply {
        /// The case whose `apply` it was (this one, or an earlier one).
        case: String,
        /// The objects, by kind, namespace and name.
        objects: String,
        #[source]
        source: TargetError,
    },
    #[error("cannot read the status of the case's objects")]
    Status {
        #[source]
        source: TargetError,
    },
    #[error("cannot read what the mirror backends {} received", services.join(", "))]
    Received {
        services: Vec<String>,
        #[source]
        source: TargetError,
    },
    #[error("cannot read the proxy's {}", path.trim_start_matches('/'))]
    ProxyAdmin {
        /// The admin path (`/stats`, `/clusters`).
        path: &'static str,
        #[source]
        source: TargetError,
    },
}
