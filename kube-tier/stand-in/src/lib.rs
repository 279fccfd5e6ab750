//! Test stand-ins for the kube tier (`scripts/kube-tier.sh`): what a real cluster's
//! kubelet and istiod would do, done against the tier's real kube-apiserver so the kube
//! target can be tested end to end on a machine without a container runtime or Istio.
//!
//! - [`kubelet`]: binds pods to the stand-in node, runs `meshcheck echo` for the echo
//!   images on a loopback pod IP, reports them Running and Ready, and stops them when
//!   their pods are deleted; injects the `istio-proxy` sidecar through a mutating
//!   webhook, as Istio's injector does.
//! - [`istiod`]: accepts GatewayClass `istio`, makes each Gateway's `<name>-istio`
//!   Deployment and LoadBalancer Service, writes Gateway, listener and route status as
//!   Istio would, and programs a real Envoy from the API server's objects with the local
//!   target's translation.
//!
//! Nothing here is meshcheck's product; it exists so tests can fail for the right reasons.

pub mod istiod;
pub mod kubelet;

/// Runs the stand-ins until SIGTERM or SIGINT; returns the process exit code.
pub fn main() -> i32 {
    // Filled in by the kubelet and istiod stand-ins' authors: parse the options, connect
    // with the kubeconfig, run both halves, stop every child process on a signal.
    eprintln!("kube-stand-in: not implemented yet");
    1
}
