//! The kube target's side of the [`Target`] interface: connect, check the cluster,
//! apply the suite's objects (the fixtures plus what the target adds), wait for them,
//! and remove them again, on failure and on a signal alike.

use std::time::Duration;

use super::environment::{KubeEnvironment, Preflight};
use super::error::KubeError;
use super::mesh_client::{self, CLIENT_NAME};
use super::options::{KubeOptions, ReadinessDeadline};
use super::received::KubeReceivedMark;
use super::source::{KubeSource, MeshClientSource};
use super::status::Rejections;
use super::substitute::{DELAY_IMAGE, SubstitutionError, substitute_delayed_echo};
use crate::manifest::{Manifest, ManifestError, ObjectKey, SourceLocation};
use crate::runner::{BringUp, Milestone, Pending, Phase, PhaseDetail, RunEnvironment, TargetKind};
use crate::suite::expect::{Received, Receiver};
use crate::suite::{Case, Entry, Suite};
use crate::targets::{
    BringUpError, CleanupReport, Diagnostics, EngineSource, RunningTarget, StatsSnapshot, Target,
    TargetError,
};

/// Why the kube target could not bring a suite up.
#[derive(Debug, thiserror::Error)]
pub enum KubeSetupError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("the cluster is not ready for meshcheck:\n{0}")]
    NotReady(Preflight),
    #[error(transparent)]
    Substitution(#[from] SubstitutionError),
    #[error("cannot build the in-mesh client for {namespace}")]
    MeshClient {
        namespace: String,
        #[source]
        source: ManifestError,
    },
    #[error(
        "{location}: {object} is the name meshcheck gives its in-mesh client; rename the fixture's object"
    )]
    ClientNameClash {
        location: SourceLocation,
        object: ObjectKey,
    },
}

/// The kube target, as configured for a run.
pub(crate) struct KubeTarget {
    pub(crate) options: KubeOptions,
}

impl Target for KubeTarget {
    type Running = KubeEnvironment;

    /// On a signal, what was applied is deleted here, because only this function
    /// still holds the environment.
    async fn bring_up(&self, bring_up: &mut BringUp<'_>) -> Result<KubeEnvironment, BringUpError> {
        let nothing_created = async { CleanupReport::default() };
        let Some(connected) = bring_up
            .step(KubeEnvironment::connect(self.options.clone()))
            .await
        else {
            return Err(bring_up.abandon(nothing_created).await);
        };
        let mut env = connected.map_err(KubeSetupError::from)?;
        // Nothing is applied yet: an interrupt here has nothing to clean up.
        let Some(checked) = bring_up.step(env.preflight()).await else {
            return Err(bring_up.abandon(nothing_created).await);
        };
        let preflight = checked.map_err(KubeSetupError::from)?;
        if !preflight.is_ready() {
            return Err(KubeSetupError::NotReady(preflight).into());
        }
        let Some(versions) = bring_up.step(env.versions()).await else {
            return Err(bring_up.abandon(nothing_created).await);
        };
        let (known, unknown) = versions.split();
        bring_up.environment(
            RunEnvironment {
                target: Some(TargetKind::Kube),
                meshcheck: env!("CARGO_PKG_VERSION").to_string(),
                envoy: None,
                istio: known.istio,
                gateway_api: known.gateway_api,
                gateway_api_channel: known.gateway_api_channel,
                kubernetes: known.kubernetes,
                run_id: env.run_id().map(ToString::to_string),
            },
            unknown,
        );
        let (manifests, notes) = kube_manifests(bring_up.suite())?;
        for note in notes {
            bring_up.phase(Phase::Apply, note);
        }
        bring_up.phase(
            Phase::Apply,
            PhaseDetail::Applying {
                objects: manifests.len(),
            },
        );
        // From here on, whatever was applied is ours to remove, whether a signal or
        // an error stops the bring-up.
        let Some(applied) = bring_up.step(env.apply(&manifests)).await else {
            return Err(bring_up.abandon(env.cleanup()).await);
        };
        if let Err(err) = applied {
            let cleanup = env.cleanup_after_failure().await;
            return Err(BringUpError::failed_after(
                KubeSetupError::from(err),
                cleanup,
            ));
        }
        // The data plane's time to take the configuration counts from here.
        bring_up.milestone(Milestone::ConfigApplied);
        bring_up.phase(Phase::Wait, PhaseDetail::WaitingForReadiness);
        // The wait's latest word on what it lacks, said by the runner while it lasts.
        let (tell, pending) = tokio::sync::watch::channel(Vec::new());
        let progress = |still: &[Pending]| {
            tell.send_replace(still.to_vec());
        };
        // The suite's readiness.timeout bounds the whole wait; a kind's own bound
        // (KubeOptions::timeouts) ends it sooner when shorter.
        let deadline = ReadinessDeadline::of_suite(bring_up.suite());
        env.bound_readiness_by(&deadline);
        // Istio's status as the fixtures say it will be: what it is expected to reject
        // is awaited until its status is written, not until it is accepted. Fixtures
        // whose status cannot be computed are awaited by the kinds' rules alone.
        let rejections = bring_up
            .suite()
            .fixtures
            .istio_status()
            .map(|status| Rejections::expected_by(&status))
            .unwrap_or_default();
        let Some(ready) = bring_up
            .wait(
                Phase::Wait,
                pending,
                env.wait_ready_within(&manifests, Some(&deadline), &rejections, &progress),
            )
            .await
        else {
            return Err(bring_up.abandon(env.cleanup()).await);
        };
        match ready {
            Ok(kinds) => bring_up.milestone(Milestone::KindsReady(kinds)),
            Err(err) => {
                let cleanup = env.cleanup_after_failure().await;
                return Err(BringUpError::failed_after(
                    KubeSetupError::from(err),
                    cleanup,
                ));
            }
        }
        Ok(env)
    }
}

impl RunningTarget for KubeEnvironment {
    type Source<'env> = KubeSource<'env>;

    /// North-south requests come from the engine; east-west requests from the in-mesh
    /// client pod.
    async fn sample_source(&self, entry: &Entry, port: u16) -> Result<KubeSource<'_>, TargetError> {
        match entry {
            Entry::Gateway(gateway) => Ok(KubeSource::Engine(EngineSource::to(
                self.gateway_address(gateway, port).await?,
            ))),
            Entry::Service { from, .. } => {
                let pod = self.mesh_client_pod(from, &mesh_client_selector()).await?;
                Ok(KubeSource::MeshClient(MeshClientSource {
                    env: self,
                    namespace: from.clone(),
                    pod,
                    authority: None,
                    transcript: Default::default(),
                }))
            }
            // curl in the client pod calls the pod's IP, which the target reads from
            // the pod's status.
            Entry::Pod { deployment, from } => {
                let pod = self.mesh_client_pod(from, &mesh_client_selector()).await?;
                let ip = self.deployment_pod_ip(deployment).await?;
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip
                };
                Ok(KubeSource::MeshClient(MeshClientSource {
                    env: self,
                    namespace: from.clone(),
                    pod,
                    authority: Some(format!("{host}:{port}")),
                    transcript: Default::default(),
                }))
            }
        }
    }

    async fn apply(
        &mut self,
        objects: &[crate::manifest::Manifest],
        _edited: &crate::fixtures::Fixtures,
    ) -> Result<(), TargetError> {
        Ok(KubeEnvironment::apply(self, objects).await?)
    }

    async fn status(
        &self,
        _fixtures: &crate::fixtures::Fixtures,
        objects: &[ObjectKey],
        timeout: std::time::Duration,
    ) -> Result<crate::fixtures::IstioStatus, TargetError> {
        Ok(self.istio_status(objects, timeout).await?)
    }

    fn status_converges(&self) -> bool {
        true
    }

    async fn generated_objects(
        &self,
        _fixtures: &crate::fixtures::Fixtures,
        gateway: &ObjectKey,
    ) -> Result<Vec<crate::fixtures::GeneratedObjectView>, TargetError> {
        Ok(KubeEnvironment::generated_objects(self, gateway).await?)
    }

    async fn proxy_admin(&self, entry: &Entry, path: &str) -> Result<String, TargetError> {
        let path = path.trim_start_matches('/');
        match entry {
            Entry::Gateway(gateway) => Ok(KubeEnvironment::proxy_admin(self, gateway, path).await?),
            Entry::Service { from, .. } | Entry::Pod { from, .. } => {
                let pod = self.mesh_client_pod(from, &mesh_client_selector()).await?;
                Ok(self.pod_proxy_admin(from, &pod, path).await?)
            }
        }
    }

    async fn server_sidecar_stats(&self, service: &ObjectKey) -> Result<Vec<String>, TargetError> {
        Ok(KubeEnvironment::server_sidecar_stats(self, service).await?)
    }

    /// The kube target's diagnostics are the cluster's objects, not the proxy's
    /// counters: no snapshot (which would cost an exec into the pod per case).
    async fn measuring_started(&self, _case: &Case) -> Option<StatsSnapshot> {
        None
    }

    async fn diagnostics(
        &self,
        suite: &Suite,
        _case: &Case,
        _baseline: Option<&StatsSnapshot>,
    ) -> Diagnostics {
        let mut namespaces: Vec<String> = suite
            .manifests
            .iter()
            .filter_map(|m| m.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        Diagnostics {
            sections: KubeEnvironment::diagnostics(self, &namespaces).await,
            dumps: Vec::new(),
        }
    }

    type ReceivedMark = KubeReceivedMark;

    /// From the receivers' pod logs (see `kube/received.rs`); the entry does not
    /// matter, since no proxy counter is read.
    async fn mark_received(
        &self,
        _entry: &Entry,
        receivers: &[Receiver],
    ) -> Result<KubeReceivedMark, TargetError> {
        Ok(KubeEnvironment::mark_received(self, receivers).await?)
    }

    async fn received_since(
        &self,
        mark: &KubeReceivedMark,
        complete: &[Option<u64>],
        within: Duration,
    ) -> Result<Vec<Received>, TargetError> {
        Ok(KubeEnvironment::received_since(self, mark, complete, within).await?)
    }

    async fn shutdown(self) -> CleanupReport {
        self.cleanup().await
    }

    async fn shutdown_after_failure(self) -> CleanupReport {
        self.cleanup_after_failure().await
    }
}

fn mesh_client_selector() -> String {
    format!("app={CLIENT_NAME}")
}

/// What the kube target applies for a suite, and notes on what differs from the
/// fixtures: delayed `meshcheck echo` backends run as an image that can delay (see
/// [`substitute_delayed_echo`]), and one in-mesh client Deployment per namespace that
/// east-west cases call from is added, applied, awaited and cleaned up like the
/// fixtures.
#[expect(
    clippy::result_large_err,
    reason = "once per suite, on a cold path; the error ends up in an Arc"
)]
fn kube_manifests(suite: &Suite) -> Result<(Vec<Manifest>, Vec<PhaseDetail>), KubeSetupError> {
    let (mut manifests, substituted) = substitute_delayed_echo(&suite.fixtures)?;
    let mut notes: Vec<PhaseDetail> = substituted
        .into_iter()
        .map(|substituted| PhaseDetail::Substituted {
            object: substituted.object,
            image: substituted.image,
            delay: substituted.delay,
            stand_in: DELAY_IMAGE,
            text: substituted.text,
        })
        .collect();
    let mut namespaces: Vec<String> = suite
        .cases
        .iter()
        .filter(|case| case.spec.skip.is_none())
        .filter_map(|case| match &case.entry {
            // The Service's namespace unless the case says `request.from`: the suite
            // loader checked that the namespace's labels give the client a sidecar.
            Entry::Service { from, .. } | Entry::Pod { from, .. } => Some(from.clone()),
            Entry::Gateway(_) => None,
        })
        .collect();
    namespaces.sort();
    namespaces.dedup();
    for namespace in namespaces {
        let client = mesh_client::client_manifests(&namespace).map_err(|source| {
            KubeSetupError::MeshClient {
                namespace: namespace.clone(),
                source,
            }
        })?;
        for manifest in client {
            if let Some(clash) = suite.manifests.iter().find(|m| m.key() == manifest.key()) {
                return Err(KubeSetupError::ClientNameClash {
                    location: clash.location(),
                    object: clash.key(),
                });
            }
            notes.push(PhaseDetail::MeshClientAdded {
                object: manifest.key(),
                image: mesh_client::CLIENT_IMAGE,
            });
            manifests.push(manifest);
        }
    }
    Ok((manifests, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::GroupKind;

    fn load(name: &str) -> Suite {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::suite::load_suite(&root.join("suites").join(name)).unwrap()
    }

    fn image_of(manifests: &[Manifest], name: &str) -> String {
        let m = manifests
            .iter()
            .find(|m| m.is(GroupKind::DEPLOYMENT) && m.name == name)
            .unwrap();
        m.to_json()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn rendered(notes: &[PhaseDetail]) -> Vec<String> {
        notes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_kube_target_runs_the_slow_backend_with_an_image_that_can_delay() {
        let suite = load("circuit-breaking.yaml");
        let (manifests, notes) = kube_manifests(&suite).unwrap();
        assert_eq!(manifests.len(), suite.manifests.len());
        assert_eq!(image_of(&manifests, "slow-backend"), DELAY_IMAGE);
        let notes = rendered(&notes);
        assert_eq!(
            notes,
            [
                "Deployment istio-test/slow-backend: hashicorp/http-echo -delay=500ms runs as \
              fortio/fortio:1.69.5 (an echo server that can delay; it answers with the request \
              body, not `hello from the slow backend`)"
            ]
        );
    }

    #[test]
    fn east_west_suites_get_one_mesh_client_per_namespace() {
        let suite = load("gamma-mesh.yaml");
        let (manifests, notes) = kube_manifests(&suite).unwrap();
        assert_eq!(manifests.len(), suite.manifests.len() + 1);
        assert_eq!(
            image_of(&manifests, mesh_client::CLIENT_NAME),
            mesh_client::CLIENT_IMAGE
        );
        assert_eq!(
            rendered(&notes),
            [format!(
                "Deployment istio-test/meshcheck-mesh-client: in-mesh client for east-west cases ({})",
                mesh_client::CLIENT_IMAGE
            )]
        );
        // North-south suites need no client, and keep their fixtures as written.
        let seed = load("ingress-canary.yaml");
        let (manifests, notes) = kube_manifests(&seed).unwrap();
        assert!(notes.is_empty());
        assert_eq!(manifests.len(), seed.manifests.len());
        assert_eq!(image_of(&manifests, "backend-v1"), "hashicorp/http-echo");
    }

    #[test]
    fn a_case_from_another_namespace_gets_its_client_there() {
        let suite = load("conformance/mesh-consumer-route.yaml");
        let (_, notes) = kube_manifests(&suite).unwrap();
        assert_eq!(
            rendered(&notes),
            ["gateway-conformance-mesh", "gateway-conformance-mesh-consumer"].map(|namespace| {
                format!(
                    "Deployment {namespace}/meshcheck-mesh-client: in-mesh client for east-west cases ({})",
                    mesh_client::CLIENT_IMAGE
                )
            })
        );
    }

    #[test]
    fn a_fixture_named_like_the_mesh_client_is_refused() {
        let mut suite = load("gamma-mesh.yaml");
        let client = mesh_client::client_manifests("istio-test").unwrap();
        suite.manifests.extend(client);
        let err = kube_manifests(&suite).unwrap_err();
        assert!(
            matches!(&err, KubeSetupError::ClientNameClash { object, .. } if object.name == CLIENT_NAME),
            "{err}"
        );
        assert!(
            err.to_string().contains("rename the fixture's object"),
            "{err}"
        );
    }
}
