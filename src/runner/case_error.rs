//! Why a case ended without a verdict of its checks. Reporters see it as the case's
//! one-line message, its causes joined (`environment::chain`).

use std::time::Duration;

use crate::suite::Entry;
use crate::suite::expect::JudgeError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CaseError {
    #[error("no way to send requests to {entry} port {port}")]
    NoSampleSource {
        entry: Entry,
        port: u16,
        #[source]
        source: TargetFailure,
    },
    /// Sending failed before any response (setup of the engine or the client pod).
    #[error(transparent)]
    Send(TargetFailure),
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
    #[error("cannot read the proxy's {}", path.trim_start_matches('/'))]
    ProxyAdmin {
        /// The admin path (`/stats`, `/clusters`).
        path: &'static str,
        #[source]
        source: TargetFailure,
    },
}

/// What the target said went wrong, in its words: `Environment` and `SampleSource`
/// still report errors as text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TargetFailure(pub(crate) String);
