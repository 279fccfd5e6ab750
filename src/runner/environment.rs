//! The runner's view of a target: bring a suite's fixtures up, hand out gateway
//! addresses and diagnostics, and tear everything down.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::events::{Event, Phase, PhaseDetail, RunEnvironment, TargetKind};
use super::execute::Interrupt;
use super::mesh_client;
use super::source::SampleSource;
use crate::manifest::{Manifest, ObjectKey};
use crate::suite::{Entry, Suite};
use crate::targets::kube::substitute::substitute_delayed_echo;
use crate::targets::kube::{KubeEnvironment, KubeOptions};
use crate::targets::local::{self, LocalEnvironment, LocalOptions};
use crate::targets::{CleanupReport, DiagnosticSection};

/// Which target a run uses, and its settings.
#[derive(Clone, Debug)]
pub enum TargetSettings {
    Local(LocalSettings),
    Kube(KubeOptions),
}

impl TargetSettings {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetSettings::Local(_) => TargetKind::Local,
            TargetSettings::Kube(_) => TargetKind::Kube,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// Envoy binary; `None` installs it into the cache on first use.
    pub envoy: Option<PathBuf>,
    /// A binary with the `echo` subcommand: meshcheck itself.
    pub echo_program: PathBuf,
}

/// Why a suite's environment is not there.
pub(crate) enum BringUpError {
    Failed(String),
    /// A signal arrived; what had been created is already removed.
    Interrupted(CleanupReport),
}

impl From<String> for BringUpError {
    fn from(message: String) -> Self {
        BringUpError::Failed(message)
    }
}

/// A brought-up suite environment.
pub(crate) enum Environment {
    Local(Box<LocalEnvironment>),
    Kube(Box<KubeEnvironment>),
}

impl Environment {
    /// Brings a suite's fixtures up. An interrupt stops it at once: local processes
    /// die with their dropped handles; on a cluster, what was applied is deleted here,
    /// because only this function still holds the environment.
    pub(crate) async fn bring_up(
        settings: &TargetSettings,
        suite: &Suite,
        interrupt: &Interrupt,
        emit: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Environment, BringUpError> {
        let phase = |phase: Phase, detail: String| Event::Phase {
            suite: suite.name.clone(),
            phase,
            detail: PhaseDetail::note(detail),
        };
        match settings {
            TargetSettings::Local(local) => {
                let started = tokio::select! {
                    env = Self::bring_up_local(local, suite, emit) => Some(env),
                    () = interrupt.triggered() => None,
                };
                match started {
                    Some(env) => env.map_err(BringUpError::Failed),
                    // Dropping the half-started environment kills its processes (they
                    // are spawned kill-on-drop) and removes its temporary directory.
                    None => {
                        announce_interrupt(suite, interrupt, emit);
                        Err(BringUpError::Interrupted(CleanupReport {
                            removed: vec![
                                "killed the Envoy and echo processes started so far".into(),
                                "removed the temporary directory".into(),
                            ],
                            failed: Vec::new(),
                        }))
                    }
                }
            }
            TargetSettings::Kube(options) => {
                let connected = tokio::select! {
                    env = KubeEnvironment::connect(options.clone()) => Some(env.map_err(|err| chain(&err))?),
                    () = interrupt.triggered() => None,
                };
                let Some(mut env) = connected else {
                    announce_interrupt(suite, interrupt, emit);
                    return Err(BringUpError::Interrupted(CleanupReport::default()));
                };
                // Nothing is applied yet: an interrupt here has nothing to clean up.
                let checked = tokio::select! {
                    report = env.preflight() => Some(report.map_err(|err| chain(&err))?),
                    () = interrupt.triggered() => None,
                };
                let Some(preflight) = checked else {
                    announce_interrupt(suite, interrupt, emit);
                    return Err(BringUpError::Interrupted(CleanupReport::default()));
                };
                if !preflight.is_ready() {
                    return Err(
                        format!("the cluster is not ready for meshcheck:\n{preflight}").into(),
                    );
                }
                emit(Event::Environment {
                    environment: RunEnvironment {
                        target: Some(TargetKind::Kube),
                        meshcheck: env!("CARGO_PKG_VERSION").to_string(),
                        ..RunEnvironment::default()
                    },
                });
                let (manifests, notes) = kube_manifests(suite)?;
                for note in notes {
                    emit(phase(Phase::Apply, note));
                }
                emit(phase(
                    Phase::Apply,
                    format!("applying {} objects", manifests.len()),
                ));
                let applied = tokio::select! {
                    result = env.apply(&manifests) => Some(result),
                    () = interrupt.triggered() => None,
                };
                match applied {
                    None => {
                        announce_interrupt(suite, interrupt, emit);
                        return Err(BringUpError::Interrupted(env.cleanup().await));
                    }
                    // Whatever was applied before the failure is still ours to remove.
                    Some(Err(err)) => {
                        let message = chain(&err);
                        env.cleanup().await;
                        return Err(message.into());
                    }
                    Some(Ok(())) => {}
                }
                emit(phase(Phase::Wait, "waiting for readiness".into()));
                let ready = tokio::select! {
                    result = env.wait_ready(&manifests, &|_| {}) => Some(result),
                    () = interrupt.triggered() => None,
                };
                match ready {
                    None => {
                        announce_interrupt(suite, interrupt, emit);
                        Err(BringUpError::Interrupted(env.cleanup().await))
                    }
                    Some(Err(err)) => {
                        let message = chain(&err);
                        env.cleanup().await;
                        Err(message.into())
                    }
                    Some(Ok(())) => Ok(Environment::Kube(Box::new(env))),
                }
            }
        }
    }

    async fn bring_up_local(
        local: &LocalSettings,
        suite: &Suite,
        emit: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Environment, String> {
        let phase = |phase: Phase, detail: String| Event::Phase {
            suite: suite.name.clone(),
            phase,
            detail: PhaseDetail::note(detail),
        };
        let envoy = match &local.envoy {
            Some(path) => path.clone(),
            None => {
                let mut notice = None;
                let path = local::ensure_envoy(|dir| notice = Some(local::installing_message(dir)))
                    .await
                    .map_err(|err| chain(&err))?;
                if let Some(notice) = notice {
                    emit(phase(Phase::Install, notice));
                }
                path
            }
        };
        emit(phase(
            Phase::BringUp,
            format!(
                "starting Envoy and echo backends for {} objects",
                suite.manifests.len()
            ),
        ));
        let mut options = LocalOptions::new(envoy, local.echo_program.clone());
        options.startup_timeout = suite.spec.readiness.timeout;
        let env = LocalEnvironment::start(&suite.manifests, options)
            .await
            .map_err(|err| chain(&err))?;
        emit(Event::Environment {
            environment: RunEnvironment {
                target: Some(TargetKind::Local),
                meshcheck: env!("CARGO_PKG_VERSION").to_string(),
                envoy: Some(local::ENVOY_VERSION.to_string()),
                ..RunEnvironment::default()
            },
        });
        emit(phase(
            Phase::Wait,
            format!(
                "Envoy ready in {} ms with {} echo processes",
                env.envoy_startup().as_millis(),
                env.backends().len()
            ),
        ));
        Ok(Environment::Local(Box::new(env)))
    }

    pub(crate) async fn gateway_address(
        &self,
        gateway: &ObjectKey,
        port: u16,
    ) -> Result<SocketAddr, String> {
        match self {
            Environment::Local(env) => env.gateway_address(gateway, port).ok_or_else(|| {
                format!("the local target has no listener for {gateway} on port {port}")
            }),
            Environment::Kube(env) => env
                .gateway_address(gateway, port)
                .await
                .map_err(|err| chain(&err)),
        }
    }

    /// Where a case's samples come from: the engine sending to a gateway listener or
    /// (east-west on the local target) the sidecar's outbound listener for the Service;
    /// on a cluster, east-west requests come from the in-mesh client pod.
    pub(crate) async fn sample_source(
        &self,
        entry: &Entry,
        port: u16,
    ) -> Result<SampleSource<'_>, String> {
        match (self, entry) {
            (_, Entry::Gateway(gateway)) => self
                .gateway_address(gateway, port)
                .await
                .map(SampleSource::Engine),
            (Environment::Local(env), Entry::Service(service)) => env
                .mesh_address(service, port)
                .map(SampleSource::Engine)
                .ok_or_else(|| {
                    format!(
                        "the local target has no in-mesh client listener for {service} port {port}"
                    )
                }),
            (Environment::Kube(env), Entry::Service(service)) => {
                let namespace = mesh_client_namespace(service);
                let pod = env
                    .mesh_client_pod(&namespace, &mesh_client_selector())
                    .await
                    .map_err(|err| chain(&err))?;
                Ok(SampleSource::mesh_client(env, namespace, pod))
            }
        }
    }

    /// A path of the admin API of the proxy that handles a case's requests (`/stats`,
    /// `/clusters`): the gateway's Envoy, or the in-mesh client's sidecar.
    pub(crate) async fn proxy_admin(&self, entry: &Entry, path: &str) -> Result<String, String> {
        match (self, entry) {
            (Environment::Local(env), Entry::Gateway(_)) => {
                env.envoy_admin(path).await.map_err(|err| chain(&err))
            }
            (Environment::Local(env), Entry::Service(_)) => {
                env.sidecar_admin(path).await.map_err(|err| chain(&err))
            }
            (Environment::Kube(env), Entry::Gateway(gateway)) => env
                .proxy_admin(gateway, path.trim_start_matches('/'))
                .await
                .map_err(|err| chain(&err)),
            (Environment::Kube(env), Entry::Service(service)) => {
                let namespace = mesh_client_namespace(service);
                let pod = env
                    .mesh_client_pod(&namespace, &mesh_client_selector())
                    .await
                    .map_err(|err| chain(&err))?;
                env.pod_proxy_admin(&namespace, &pod, path.trim_start_matches('/'))
                    .await
                    .map_err(|err| chain(&err))
            }
        }
    }

    pub(crate) async fn diagnostics(&self, suite: &Suite) -> Vec<DiagnosticSection> {
        match self {
            Environment::Local(env) => env.diagnostics().await,
            Environment::Kube(env) => {
                let mut namespaces: Vec<String> = suite
                    .manifests
                    .iter()
                    .filter_map(|m| m.namespace.clone())
                    .collect();
                namespaces.sort();
                namespaces.dedup();
                env.diagnostics(&namespaces).await
            }
        }
    }

    pub(crate) async fn shutdown(self) -> CleanupReport {
        match self {
            Environment::Local(env) => env.shutdown().await,
            Environment::Kube(env) => env.cleanup().await,
        }
    }
}

/// Says at once that a signal arrived and cleanup begins: cleanup can take a while on
/// a cluster, and the user must see that the signal was heard.
fn announce_interrupt(suite: &Suite, interrupt: &Interrupt, emit: &mut (dyn FnMut(Event) + Send)) {
    emit(Event::Interrupted {
        signal: interrupt.signal(),
    });
    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: Phase::Cleanup,
        detail: PhaseDetail::note("removing what this suite created so far"),
    });
}

/// The in-mesh client of a Service's east-west cases runs in the Service's namespace:
/// GAMMA producer routes live there, and its injection label gives the client a sidecar.
fn mesh_client_namespace(service: &ObjectKey) -> String {
    service
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

fn mesh_client_selector() -> String {
    format!("app={}", mesh_client::CLIENT_NAME)
}

/// What the kube target applies for a suite, and notes on what differs from the
/// fixtures: delayed `meshcheck echo` backends run as an image that can delay (see
/// [`substitute_delayed_echo`]), and one in-mesh client Deployment per namespace that
/// east-west cases call into is added, applied, awaited and cleaned up like the
/// fixtures.
fn kube_manifests(suite: &Suite) -> Result<(Vec<Manifest>, Vec<String>), String> {
    let (mut manifests, mut notes) =
        substitute_delayed_echo(&suite.manifests).map_err(|err| err.to_string())?;
    let mut namespaces: Vec<String> = suite
        .cases
        .iter()
        .filter(|case| case.spec.skip.is_none())
        .filter_map(|case| match &case.entry {
            Entry::Service(service) => Some(mesh_client_namespace(service)),
            Entry::Gateway(_) => None,
        })
        .collect();
    namespaces.sort();
    namespaces.dedup();
    for namespace in namespaces {
        let client = mesh_client::client_manifests(&namespace).map_err(|err| {
            format!(
                "cannot build the in-mesh client for {namespace}: {}",
                chain(&err)
            )
        })?;
        for manifest in client {
            if let Some(clash) = suite.manifests.iter().find(|m| m.key() == manifest.key()) {
                return Err(format!(
                    "{}: {} is the name meshcheck gives its in-mesh client; rename the fixture's object",
                    clash.location(),
                    clash.key()
                ));
            }
            notes.push(format!(
                "{}: in-mesh client for east-west cases ({})",
                manifest.key(),
                mesh_client::CLIENT_IMAGE
            ));
            manifests.push(manifest);
        }
    }
    Ok((manifests, notes))
}

/// An error and its causes on one line, for case messages.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> Suite {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::suite::load_suite(&root.join("suites").join(name)).unwrap()
    }

    fn image_of(manifests: &[Manifest], name: &str) -> String {
        let m = manifests
            .iter()
            .find(|m| m.kind == "Deployment" && m.name == name)
            .unwrap();
        m.to_json()["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn the_kube_target_runs_the_slow_backend_with_an_image_that_can_delay() {
        let suite = load("circuit-breaking.yaml");
        let (manifests, notes) = kube_manifests(&suite).unwrap();
        assert_eq!(manifests.len(), suite.manifests.len());
        assert_eq!(
            image_of(&manifests, "slow-backend"),
            crate::targets::kube::substitute::DELAY_IMAGE
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("slow-backend"), "{notes:?}");
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
            notes,
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
}
