//! The stand-ins' command line (both halves' options; `scripts/kube-tier.sh` passes them).

use std::path::PathBuf;

/// `kube-stand-in --kubeconfig F --echo-program P --work-dir D [--envoy E]`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "kube-stand-in",
    about = "Test stand-ins for the kube tier: a kubelet (pods as local processes) and istiod, against a real kube-apiserver"
)]
pub struct Options {
    /// The admin kubeconfig the tier's control plane wrote.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: PathBuf,
    /// The meshcheck binary: its `echo` subcommand stands in for the echo images.
    #[arg(long, value_name = "PATH")]
    pub echo_program: PathBuf,
    /// The Envoy binary for the istiod stand-in's data plane; `None` installs or finds
    /// it as the local target does.
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// A directory of the stand-ins' own (certificates, Envoy configuration). It must
    /// exist; nothing is removed from it.
    #[arg(long, value_name = "DIR")]
    pub work_dir: PathBuf,
    /// Where the istiod stand-in's DNS server (for Gateways whose address is a
    /// hostname) writes its UDP port on 127.0.0.1; default `<work-dir>/dns-port`.
    #[arg(long, value_name = "PATH")]
    pub dns_port_file: Option<PathBuf>,
    /// The Node the kubelet stand-in registers and binds every pod to.
    #[arg(long, value_name = "NAME", default_value = "kube-tier-stand-in")]
    pub node_name: String,
}

impl Options {
    /// [`Options::dns_port_file`] or its default.
    pub fn dns_port_file(&self) -> PathBuf {
        self.dns_port_file
            .clone()
            .unwrap_or_else(|| self.work_dir.join("dns-port"))
    }
}
