use std::path::PathBuf;

use crate::manifest::ManifestError;
use crate::targets::kube::KubeError;

/// Why `meshcheck cluster up/down` failed. Each variant says what to do next where we
/// know it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{tool} not found on PATH or in {}: {hint}", tools_dir.display())]
    MissingTool {
        tool: &'static str,
        tools_dir: PathBuf,
        hint: &'static str,
    },
    #[error(
        "docker is installed but not usable (is the daemon running, and may this user reach it?): {detail}"
    )]
    DockerUnavailable { detail: String },
    #[error("failed to start {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{} {}` failed with {}{}", program.display(), args.join(" "), status.map_or("a signal".to_owned(), |c| format!("exit status {c}")), if stderr_tail.is_empty() { String::new() } else { format!(":\n{stderr_tail}") })]
    Command {
        program: PathBuf,
        args: Vec<String>,
        status: Option<i32>,
        stderr_tail: String,
    },
    #[error("no Gateway API {version} {channel} install manifest at {}; fetch it with scripts/fetch-gateway-api.sh {version} {channel}", path.display())]
    GatewayApiManifestMissing {
        version: String,
        channel: String,
        path: PathBuf,
    },
    #[error("istioctl at {} is version {found}, not the requested {wanted}; run scripts/install-tools.sh with ISTIO_VERSION={wanted}", path.display())]
    IstioVersionMismatch {
        path: PathBuf,
        found: String,
        wanted: String,
    },
    #[error("failed to read the Gateway API CRDs")]
    Manifest(#[from] ManifestError),
    #[error("cluster bring-up failed")]
    Kube(#[source] Box<KubeError>),
    #[error("failed to write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

// Boxed: a KubeError carries a source location and an API failure, and would make every
// Result in this module as large as the rarest error.
impl From<KubeError> for ClusterError {
    fn from(err: KubeError) -> Self {
        ClusterError::Kube(Box::new(err))
    }
}
