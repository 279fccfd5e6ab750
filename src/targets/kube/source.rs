//! Where a kube case's samples come from: north-south cases use meshcheck's engine
//! against the gateway's address; east-west cases run `curl` in the in-mesh client pod
//! through exec, and keep its output for diagnostics.

use std::net::SocketAddr;

use super::environment::KubeEnvironment;
use super::mesh_client::{self, CLIENT_CONTAINER, Transcript};
use crate::targets::{DiagnosticSection, EngineSource, RequestOrigin, SampleSource, SendError};
use crate::traffic::{Flow, LoadSpec, Sample, Tally};

/// The producer of a kube case's samples.
pub(crate) enum KubeSource<'env> {
    Engine(EngineSource),
    MeshClient(MeshClientSource<'env>),
}

/// `curl` in an in-mesh client pod, driven through exec; its output is kept, because
/// exec output is otherwise invisible, which is what makes in-mesh checks hard to
/// debug.
pub(crate) struct MeshClientSource<'env> {
    pub(crate) env: &'env KubeEnvironment,
    pub(crate) namespace: String,
    pub(crate) pod: String,
    /// For a call to a pod: its `ip:port`, which curl calls instead of the URL's host.
    pub(crate) authority: Option<String>,
    pub(crate) transcript: Transcript,
}

impl SampleSource for KubeSource<'_> {
    fn connect_to(&self) -> Option<SocketAddr> {
        match self {
            KubeSource::Engine(engine) => engine.connect_to(),
            KubeSource::MeshClient(_) => None,
        }
    }

    fn authority(&self) -> Option<&str> {
        match self {
            KubeSource::Engine(engine) => engine.authority(),
            KubeSource::MeshClient(client) => client.authority.as_deref(),
        }
    }

    fn origin(&self) -> RequestOrigin {
        match self {
            KubeSource::Engine(engine) => engine.origin(),
            KubeSource::MeshClient(client) => RequestOrigin::MeshClient {
                namespace: client.namespace.clone(),
                pod: client.pod.clone(),
            },
        }
    }

    async fn send(
        &mut self,
        load: &LoadSpec,
        observe: impl FnMut(&Sample<'_>) -> Flow,
    ) -> Result<Tally, SendError> {
        match self {
            KubeSource::Engine(engine) => engine.send(load, observe).await,
            KubeSource::MeshClient(client) => {
                let (env, namespace, pod) =
                    (client.env, client.namespace.as_str(), client.pod.as_str());
                let exec = |requests: u64| async move {
                    let command = mesh_client::command(load, requests);
                    let args: Vec<&str> = command.iter().map(String::as_str).collect();
                    env.exec(namespace, pod, CLIENT_CONTAINER, &args).await
                };
                Ok(mesh_client::drive(load, exec, &mut client.transcript, observe).await?)
            }
        }
    }

    fn diagnostics(&self) -> Option<DiagnosticSection> {
        match self {
            KubeSource::Engine(_) => None,
            KubeSource::MeshClient(client) => {
                (!client.transcript.is_empty()).then(|| DiagnosticSection {
                    title: format!(
                        "client output ({}/{}, container {CLIENT_CONTAINER})",
                        client.namespace, client.pod
                    ),
                    body: client.transcript.text(),
                })
            }
        }
    }
}
