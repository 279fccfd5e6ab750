//! The local target's side of the [`Target`] interface: install Envoy on first use,
//! start the echo processes and Envoy, answer with their addresses and admin pages,
//! and stop them.

use std::time::Duration;

use super::{ENVOY_VERSION, LocalEnvironment, LocalOptions, LocalReceivedMark, ensure_envoy};
use crate::runner::{BringUp, Milestone, Phase, PhaseDetail, RunEnvironment, TargetKind};
use crate::suite::expect::{Received, Receiver};
use crate::suite::{Case, Entry, Suite};
use crate::targets::{
    BringUpError, CleanupReport, Diagnostics, EngineSource, LocalSettings, RunningTarget,
    StatsSnapshot, Target, TargetError,
};

/// The local target, as configured for a run.
pub(crate) struct LocalTarget {
    pub(crate) settings: LocalSettings,
}

impl Target for LocalTarget {
    type Running = LocalEnvironment;

    /// A signal stops it at once: dropping the half-started environment kills its
    /// processes (they are spawned kill-on-drop) and removes its temporary directory.
    async fn bring_up(&self, bring_up: &mut BringUp<'_>) -> Result<LocalEnvironment, BringUpError> {
        let envoy = match &self.settings.envoy {
            Some(path) => path.clone(),
            None => {
                let mut installing_into = None;
                let install = ensure_envoy(|dir| installing_into = Some(dir.to_path_buf()));
                let Some(installed) = bring_up.step(install).await else {
                    return Err(bring_up.abandon(dropped()).await);
                };
                let path = installed?;
                if let Some(dir) = installing_into {
                    bring_up.phase(Phase::Install, PhaseDetail::InstallingEnvoy { dir });
                }
                path
            }
        };
        let suite = bring_up.suite();
        bring_up.phase(
            Phase::BringUp,
            PhaseDetail::StartingLocal {
                objects: suite.manifests.len(),
            },
        );
        let mut options = LocalOptions::new(envoy, self.settings.echo_program.clone());
        options.startup_timeout = suite.spec.readiness.timeout;
        options.mesh_client = suite
            .cases
            .iter()
            .any(|case| matches!(case.entry, Entry::Service { .. } | Entry::Pod { .. }));
        let Some(started) = bring_up
            .step(LocalEnvironment::start_fixtures(&suite.fixtures, options))
            .await
        else {
            return Err(bring_up.abandon(dropped()).await);
        };
        let env = started?;
        // Envoy is live with its configuration from the bootstrap: the local
        // equivalent of the last apply, which convergence is timed from.
        bring_up.milestone(Milestone::ConfigApplied);
        bring_up.environment(
            RunEnvironment {
                target: Some(TargetKind::Local),
                meshcheck: env!("CARGO_PKG_VERSION").to_string(),
                envoy: Some(ENVOY_VERSION.to_string()),
                ..RunEnvironment::default()
            },
            Vec::new(),
        );
        bring_up.phase(
            Phase::Wait,
            PhaseDetail::LocalReady {
                envoy_startup: env.envoy_startup(),
                echo_processes: env.backends().len(),
            },
        );
        Ok(env)
    }
}

/// What dropping a half-started environment removed: its processes die with their
/// handles, its temporary directory with its guard.
async fn dropped() -> CleanupReport {
    CleanupReport {
        removed: vec![
            "killed the Envoy and echo processes started so far".into(),
            "removed the temporary directory".into(),
        ],
        failed: Vec::new(),
        ..CleanupReport::default()
    }
}

impl RunningTarget for LocalEnvironment {
    type Source<'env> = EngineSource;

    /// Edits reach the local target only through the fixtures its status is computed
    /// from: its Envoy keeps the plan it was started with (`serves_edits`). The edited
    /// fixtures are held to what the fixtures were held to at bring-up: a field the
    /// local target would refuse is refused in an edit too, with its location, instead
    /// of being left out of the status computed.
    async fn apply(
        &mut self,
        _objects: &[crate::manifest::Manifest],
        edited: &crate::fixtures::Fixtures,
    ) -> Result<(), TargetError> {
        super::plan::plan_fixtures(edited).map_err(TargetError::Status)?;
        Ok(())
    }

    fn serves_edits(&self) -> bool {
        false
    }

    /// What Istio would write, computed from the fixtures as edited so far, with each
    /// Gateway's addresses those its Envoy listens on: the stand-in for the Service
    /// address Istio reports (istio/istio `pilot/pkg/config/kube/gateway/conversion.go`,
    /// `reportGatewayStatus`, which reports the Service's addresses and ignores the
    /// `spec.addresses` of a Gateway it deploys).
    async fn status(
        &self,
        fixtures: &crate::fixtures::Fixtures,
        _objects: &[crate::manifest::ObjectKey],
        _timeout: std::time::Duration,
    ) -> Result<crate::fixtures::IstioStatus, TargetError> {
        let mut status = fixtures.istio_status().map_err(TargetError::Status)?;
        for gateway in &mut status.gateways {
            let mut ips: Vec<std::net::IpAddr> = self
                .listeners
                .range((gateway.gateway.clone(), 0)..=(gateway.gateway.clone(), u16::MAX))
                .map(|(_, address)| address.ip())
                .collect();
            ips.sort();
            ips.dedup();
            // Istio reports the Service's address whether or not a listener is
            // programmed; every local listener binds loopback, so a Gateway with none
            // served gets that address too.
            if ips.is_empty() {
                ips.push(std::net::Ipv4Addr::LOCALHOST.into());
            }
            gateway.addresses = ips
                .into_iter()
                .map(|ip| crate::fixtures::GatewayAddressView {
                    type_: "IPAddress".into(),
                    value: ip.to_string(),
                })
                .collect();
        }
        Ok(status)
    }

    /// What Istio's deployment controller would make for the Gateway
    /// ([`crate::fixtures::generated_objects`]); nothing for a Gateway the fixtures
    /// lack.
    async fn generated_objects(
        &self,
        fixtures: &crate::fixtures::Fixtures,
        gateway: &crate::manifest::ObjectKey,
    ) -> Result<Vec<crate::fixtures::GeneratedObjectView>, TargetError> {
        Ok(fixtures
            .gateway(gateway)
            .map(crate::fixtures::generated_objects)
            .unwrap_or_default())
    }

    /// The engine sends to a gateway listener, or (east-west) to the sidecar's
    /// outbound listener for the Service, or straight to a pod: a call to a pod's own
    /// address passes the client's sidecar untouched (Istio sends it to its
    /// PassthroughCluster, no route applying; the Istio oracle checks that), so the
    /// engine connects to the pod (its echo process, or its inbound sidecar) and names
    /// the pod's loopback address with the container port.
    async fn sample_source(&self, entry: &Entry, port: u16) -> Result<EngineSource, TargetError> {
        match entry {
            Entry::Gateway(gateway) => self
                .gateway_address(gateway, port)
                .map(EngineSource::to)
                .ok_or_else(|| TargetError::NoListener {
                    gateway: gateway.clone(),
                    port,
                }),
            Entry::Service { service, from } => self
                .mesh_address(from, service, port)
                .map(EngineSource::to)
                .ok_or_else(|| TargetError::NoMeshListener {
                    service: service.clone(),
                    port,
                    reason: self.mesh_gap(service, port),
                }),
            Entry::Pod { deployment, .. } => {
                let (address, authority) =
                    self.pod_address(deployment, port).map_err(|reason| {
                        TargetError::NoPodAddress {
                            deployment: deployment.clone(),
                            port,
                            reason,
                        }
                    })?;
                Ok(EngineSource {
                    address,
                    authority: Some(authority),
                })
            }
        }
    }

    async fn proxy_admin(&self, entry: &Entry, path: &str) -> Result<String, TargetError> {
        Ok(match entry {
            Entry::Gateway(_) => self.envoy_admin(path).await?,
            Entry::Service { .. } | Entry::Pod { .. } => self.sidecar_admin(path).await?,
        })
    }

    /// The server-side sidecars' Envoy holds every limited pod's inbound cluster; its
    /// stats are the pods' when they are behind `service`. Pods it does not front have
    /// no server-side proxy here (nothing limits them there).
    async fn server_sidecar_stats(
        &self,
        service: &crate::manifest::ObjectKey,
    ) -> Result<Vec<String>, TargetError> {
        let plan = self.plan();
        let fronted = plan.clusters.iter().any(|cluster| {
            &cluster.service == service
                && plan
                    .inbound
                    .iter()
                    .any(|inbound| cluster.workloads.contains(&inbound.workload))
        });
        if !fronted {
            return Ok(Vec::new());
        }
        Ok(vec![self.inbound_admin("/stats").await?])
    }

    async fn measuring_started(&self, case: &Case) -> Option<StatsSnapshot> {
        let stats = self.proxy_admin(&case.entry, "/stats").await.ok()?;
        Some(StatsSnapshot::parse(&stats))
    }

    async fn diagnostics(
        &self,
        _suite: &Suite,
        case: &Case,
        baseline: Option<&StatsSnapshot>,
    ) -> Diagnostics {
        self.case_diagnostics(case, baseline).await
    }

    type ReceivedMark = LocalReceivedMark;

    async fn mark_received(
        &self,
        entry: &Entry,
        receivers: &[Receiver],
    ) -> Result<LocalReceivedMark, TargetError> {
        Ok(LocalEnvironment::mark_received(self, entry, receivers).await?)
    }

    /// The proxy's counters say when everything is in (see `local/received.rs`), so
    /// `complete` is not needed.
    async fn received_since(
        &self,
        mark: &LocalReceivedMark,
        _complete: &[Option<u64>],
        within: Duration,
    ) -> Result<Vec<Received>, TargetError> {
        Ok(LocalEnvironment::received_since(self, mark, within).await?)
    }

    async fn shutdown(self) -> CleanupReport {
        LocalEnvironment::shutdown(self).await
    }
}
