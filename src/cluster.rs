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
/// The Istio release installed by default: the release of the line the oracle pins
/// (`oracle/go.mod`: `istio.io/istio` on master while its `VERSION` said 1.31, with
/// `istio.io/api` at a v1.31.0 pre-release), so a cluster, the oracle and the local
/// target it checks agree. `scripts/install-tools.sh` and the nightly workflow default
/// to the same; a test below keeps the four together.
pub const DEFAULT_ISTIO_VERSION: &str = "1.31.0";

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

#[cfg(test)]
mod tests {
    use super::DEFAULT_ISTIO_VERSION;

    /// `major.minor` of a version such as `1.31.0` or `v1.31.0-rc.0.0.20260824154656-b9…`.
    fn minor_line(version: &str) -> String {
        let version = version.trim_start_matches('v');
        let mut parts = version.split(['.', '-']);
        format!("{}.{}", parts.next().unwrap(), parts.next().unwrap())
    }

    /// The oracle pins `istio.io/istio` at a commit, which the Go module proxy can only
    /// name by a pseudo-version; the `istio.io/api` it requires carries the release line.
    #[test]
    fn the_default_istio_release_is_the_line_the_oracle_pins() {
        let go_mod = include_str!("../oracle/go.mod");
        let api = go_mod
            .lines()
            .find_map(|line| line.trim().strip_prefix("istio.io/api "))
            .expect("oracle/go.mod requires istio.io/api");
        let api_version = api.split_whitespace().next().unwrap();
        assert_eq!(
            minor_line(api_version),
            minor_line(DEFAULT_ISTIO_VERSION),
            "oracle/go.mod pins the Istio {} line (istio.io/api {api_version}); \
             `meshcheck cluster up` installs {DEFAULT_ISTIO_VERSION}",
            minor_line(api_version),
        );
    }

    #[test]
    fn the_install_script_and_the_nightly_default_to_the_same_istio_release() {
        let script = include_str!("../scripts/install-tools.sh");
        let wanted = format!("ISTIO_VERSION=\"${{ISTIO_VERSION:-{DEFAULT_ISTIO_VERSION}}}\"");
        assert!(
            script.lines().any(|line| line.trim() == wanted),
            "scripts/install-tools.sh must default to {DEFAULT_ISTIO_VERSION} ({wanted})"
        );
        let nightly: Vec<&str> = include_str!("../.github/workflows/nightly.yml")
            .lines()
            .collect();
        let input = nightly
            .iter()
            .position(|line| line.trim() == "istio_version:")
            .expect("the nightly has an istio_version input");
        let input_default = nightly[input..]
            .iter()
            .take(4)
            .find(|line| line.trim().starts_with("default:"))
            .expect("the istio_version input has a default");
        assert_eq!(
            input_default.trim(),
            format!("default: \"{DEFAULT_ISTIO_VERSION}\"")
        );
        let scheduled = nightly
            .iter()
            .find(|line| line.contains("inputs.istio_version ||"))
            .expect("scheduled runs fall back to a default Istio release");
        assert!(
            scheduled.contains(&format!("|| '{DEFAULT_ISTIO_VERSION}'")),
            "the nightly's scheduled runs must install {DEFAULT_ISTIO_VERSION}: {scheduled}"
        );
    }
}
