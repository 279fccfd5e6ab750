//! `meshcheck cluster up` / `meshcheck cluster down`: a local kind cluster with the
//! Gateway API CRDs, Istio and a LoadBalancer implementation, ready for the seed's
//! fixtures unchanged. Existing clusters (EKS, GKE) skip this and go straight to the
//! kube target's preflight.

mod bringup;
mod error;
pub mod tools;

use std::path::PathBuf;
use std::time::Duration;

pub use bringup::{cluster_down, cluster_up, kubeconfig_path};
pub use error::ClusterError;
pub use tools::Toolbox;

/// The cluster name when none is given.
pub const DEFAULT_CLUSTER_NAME: &str = "meshcheck";
/// The Gateway API release installed by default: the seed's v1.3.0.
pub const DEFAULT_GATEWAY_API_VERSION: &str = "v1.3.0";
/// The Istio release installed by default; `scripts/install-tools.sh` pins the same.
pub const DEFAULT_ISTIO_VERSION: &str = "1.26.2";

#[derive(Clone, Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Create (or reuse) a kind cluster and install the Gateway API CRDs and Istio.
    Up(UpArgs),
    /// Delete the kind cluster and stop the load balancer provider we started.
    Down(DownArgs),
}

#[derive(Clone, Debug, clap::Args)]
pub struct UpArgs {
    /// Name of the kind cluster; an existing cluster of that name is reused.
    #[arg(long, env = "MESHCHECK_CLUSTER", default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    /// The kind cluster configuration.
    #[arg(long, default_value = "kind-config.yaml")]
    pub config: PathBuf,
    /// Gateway API release whose CRDs to install.
    #[arg(long, default_value = DEFAULT_GATEWAY_API_VERSION)]
    pub gateway_api_version: String,
    /// Gateway API release channel.
    #[arg(long, default_value = "standard", value_parser = ["standard", "experimental"])]
    pub gateway_api_channel: String,
    /// Where the Gateway API install manifests are (`gateway-api-<version>-<channel>-install.yaml`).
    #[arg(long, default_value = "crds")]
    pub crds_dir: PathBuf,
    /// Istio release to install; istioctl of that version must be in the tools
    /// directory or on PATH.
    #[arg(long, default_value = DEFAULT_ISTIO_VERSION)]
    pub istio_version: String,
    /// The istioctl installation profile.
    #[arg(long, default_value = "minimal")]
    pub istio_profile: String,
    /// Do not start cloud-provider-kind (bring your own LoadBalancer, e.g. MetalLB).
    #[arg(long)]
    pub no_load_balancer: bool,
    /// Project-local state: pinned tools in `bin/`, the cluster's kubeconfig, logs.
    #[arg(long, default_value = ".meshcheck")]
    pub state_dir: PathBuf,
    /// How long each wait (CRDs Established, istiod ready, GatewayClass Accepted) may take.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Clone, Debug, clap::Args)]
pub struct DownArgs {
    #[arg(long, env = "MESHCHECK_CLUSTER", default_value = DEFAULT_CLUSTER_NAME)]
    pub name: String,
    #[arg(long, default_value = ".meshcheck")]
    pub state_dir: PathBuf,
}

impl ClusterArgs {
    fn state_dir(&self) -> &PathBuf {
        match &self.command {
            ClusterCommand::Up(up) => &up.state_dir,
            ClusterCommand::Down(down) => &down.state_dir,
        }
    }
}

/// Runs `meshcheck cluster up|down`, looking tools up in `<state_dir>/bin` and `PATH`.
/// Returns the process exit code.
pub async fn run_cluster(args: ClusterArgs) -> Result<i32, ClusterError> {
    let toolbox = Toolbox::from_env(args.state_dir().join("bin"));
    run_cluster_with(args, &toolbox, &|line| eprintln!("cluster: {line}")).await
}

/// [`run_cluster`] with the tool lookup and progress output given (tests).
pub async fn run_cluster_with(
    args: ClusterArgs,
    toolbox: &Toolbox,
    progress: &dyn Fn(&str),
) -> Result<i32, ClusterError> {
    match args.command {
        ClusterCommand::Up(up) => cluster_up(&up, toolbox, progress).await?,
        ClusterCommand::Down(down) => cluster_down(&down, toolbox, progress).await?,
    }
    Ok(crate::exit_codes::SUCCESS)
}

impl ClusterError {
    /// The documented exit code: everything here is an environment that could not be
    /// set up, except input we could not read.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClusterError::Manifest(_) | ClusterError::GatewayApiManifestMissing { .. } => {
                crate::exit_codes::BAD_INPUT
            }
            _ => crate::exit_codes::SETUP_FAILED,
        }
    }
}
