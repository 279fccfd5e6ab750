//! The runner's view of a target: bring a suite's fixtures up, hand out gateway
//! addresses and diagnostics, and tear everything down.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::events::{Event, Phase, RunEnvironment, TargetKind};
use super::execute::Interrupt;
use crate::manifest::ObjectKey;
use crate::suite::{Entry, Suite};
use crate::target::kube::{KubeEnvironment, KubeOptions};
use crate::target::local::{self, LocalEnvironment, LocalOptions};
use crate::target::{CleanupReport, DiagnosticSection};

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
            detail,
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
                refuse_meshcheck_only_flags(suite)?;
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
                emit(phase(
                    Phase::Apply,
                    format!("applying {} objects", suite.manifests.len()),
                ));
                let applied = tokio::select! {
                    result = env.apply(&suite.manifests) => Some(result),
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
                    result = env.wait_ready(&suite.manifests, &|_| {}) => Some(result),
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
            detail,
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

    /// Where a case's requests go: a gateway listener, or (east-west) the in-mesh
    /// client's outbound listener for the Service.
    pub(crate) async fn entry_address(
        &self,
        entry: &Entry,
        port: u16,
    ) -> Result<SocketAddr, String> {
        match entry {
            Entry::Gateway(gateway) => self.gateway_address(gateway, port).await,
            Entry::Service(service) => match self {
                Environment::Local(env) => env.mesh_address(service, port).ok_or_else(|| {
                    format!(
                        "the local target has no in-mesh client listener for {service} port {port}"
                    )
                }),
                Environment::Kube(_) => Err(format!(
                    "east-west (GAMMA) cases do not run on the kube target yet: requests to {service} must come from an in-mesh client pod, which meshcheck does not drive yet"
                )),
            },
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
            (Environment::Kube(_), Entry::Service(service)) => Err(format!(
                "the sidecar of the in-mesh client calling {service} is not read by meshcheck yet"
            )),
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
        detail: "removing what this suite created so far".into(),
    });
}

/// The real hashicorp/http-echo image exits on flags only `meshcheck echo` knows
/// (`-delay`): such a fixture would never become ready on a cluster, so say why now.
fn refuse_meshcheck_only_flags(suite: &Suite) -> Result<(), String> {
    for manifest in suite.manifests.iter().filter(|m| m.kind == "Deployment") {
        let Ok(deployment) = manifest.decode::<k8s_openapi::api::apps::v1::Deployment>() else {
            continue;
        };
        let containers = deployment
            .spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers)
            .unwrap_or_default();
        for container in containers {
            let image = container.image.unwrap_or_default();
            if !image.contains("hashicorp/http-echo") {
                continue;
            }
            if let Some(flag) =
                crate::echo::meshcheck_only_flag(&container.args.unwrap_or_default())
            {
                return Err(format!(
                    "{}: {} passes `-{flag}` to {image}, which only `meshcheck echo` understands; on a cluster use an image that can delay (see docs/policy.md)",
                    manifest.location_of("spec.template.spec.containers"),
                    manifest.key()
                ));
            }
        }
    }
    Ok(())
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

    #[test]
    fn the_kube_target_refuses_echo_flags_the_real_image_lacks() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let suite = crate::suite::load_suite(&root.join("suites/circuit-breaking.yaml")).unwrap();
        let message = refuse_meshcheck_only_flags(&suite).unwrap_err();
        assert!(
            message.contains(
                "Deployment istio-test/slow-backend passes `-delay` to hashicorp/http-echo"
            ),
            "{message}"
        );
        assert!(message.contains("backend.yaml:"), "{message}");
        let seed = crate::suite::load_suite(&root.join("suites/ingress-canary.yaml")).unwrap();
        assert_eq!(refuse_meshcheck_only_flags(&seed), Ok(()));
    }
}
