//! Where a case's responses come from. Convergence, the measured loop and the policy
//! checks only see [`Sample`]s through `observe`; this is the one place that knows
//! whether meshcheck's engine sent the requests (to a gateway, or to the local target's
//! sidecar listener) or a client pod inside a cluster's mesh did.

use std::net::SocketAddr;

use super::environment::chain;
use super::events::RequestOrigin;
use super::mesh_client::{self, CLIENT_CONTAINER, Transcript};
use crate::targets::DiagnosticSection;
use crate::targets::kube::KubeEnvironment;
use crate::traffic::{Flow, LoadSpec, Sample, Tally, run_load};

/// The producer of a case's samples.
pub(crate) enum SampleSource<'env> {
    /// meshcheck's engine, connecting to this address.
    Engine(SocketAddr),
    /// `curl` in an in-mesh client pod, driven through exec; its output is kept.
    MeshClient {
        env: &'env KubeEnvironment,
        namespace: String,
        pod: String,
        transcript: Transcript,
    },
}

impl<'env> SampleSource<'env> {
    pub(crate) fn mesh_client(env: &'env KubeEnvironment, namespace: String, pod: String) -> Self {
        SampleSource::MeshClient {
            env,
            namespace,
            pod,
            transcript: Transcript::default(),
        }
    }

    /// Where the engine's sockets go; `None` when requests are sent from a pod, which
    /// resolves the URL's host through cluster DNS.
    pub(crate) fn connect_to(&self) -> Option<SocketAddr> {
        match self {
            SampleSource::Engine(address) => Some(*address),
            SampleSource::MeshClient { .. } => None,
        }
    }

    /// Where requests come from, for progress displays.
    pub(crate) fn origin(&self) -> RequestOrigin {
        match self {
            SampleSource::Engine(address) => RequestOrigin::Engine { address: *address },
            SampleSource::MeshClient { namespace, pod, .. } => RequestOrigin::MeshClient {
                namespace: namespace.clone(),
                pod: pod.clone(),
            },
        }
    }

    /// Sends what `load` describes, calling `observe` per response as
    /// [`run_load`] does, and returns the tally of what `observe` saw.
    pub(crate) async fn send(
        &mut self,
        load: &LoadSpec,
        observe: impl FnMut(&Sample<'_>) -> Flow,
    ) -> Result<Tally, String> {
        match self {
            SampleSource::Engine(_) => run_load(load, observe)
                .await
                .map_err(|err| format!("cannot send requests: {}", chain(&err))),
            SampleSource::MeshClient {
                env,
                namespace,
                pod,
                transcript,
            } => {
                let (env, namespace, pod) = (&**env, namespace.as_str(), pod.as_str());
                let exec = |requests: u64| async move {
                    let command = mesh_client::command(load, requests);
                    let args: Vec<&str> = command.iter().map(String::as_str).collect();
                    env.exec(namespace, pod, CLIENT_CONTAINER, &args)
                        .await
                        .map_err(|err| {
                            format!("cannot run curl in the mesh client: {}", chain(&err))
                        })
                };
                mesh_client::drive(load, exec, transcript, observe).await
            }
        }
    }

    /// The client's raw output, for a failed case: exec output is otherwise invisible,
    /// which is what makes in-mesh checks hard to debug.
    pub(crate) fn diagnostics(&self) -> Option<DiagnosticSection> {
        match self {
            SampleSource::Engine(_) => None,
            SampleSource::MeshClient {
                namespace,
                pod,
                transcript,
                ..
            } => (!transcript.is_empty()).then(|| DiagnosticSection {
                title: format!("client output ({namespace}/{pod}, container {CLIENT_CONTAINER})"),
                body: transcript.text(),
            }),
        }
    }
}
