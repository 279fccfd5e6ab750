//! The embedded local target: fixtures as a real Envoy and echo processes.
//!
//! Deployments become `meshcheck echo` processes (one per replica), Services and
//! DestinationRules become static Envoy clusters named as Istio names them, Gateways
//! and HTTPRoutes become Envoy listeners and routes. Everything listens on 127.0.0.1
//! with kernel-chosen ports, learned from the processes themselves, so parallel runs
//! never collide.

mod admin;
mod bootstrap;
mod certificate;
mod diagnose;
mod echo_basic;
mod error;
mod fields;
mod install;
mod lifecycle;
mod plan;
mod process;
mod re2;
mod received;
mod route_rule;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tempfile::TempDir;

use crate::fixtures::Fixtures;
use crate::manifest::{Manifest, ObjectKey};
use crate::suite::{Case, Entry};
use crate::targets::{CleanupReport, DiagnosticSection, Diagnostics, StatsSnapshot};

pub use bootstrap::{
    UNLIMITED, bootstrap, inbound_bootstrap, inbound_cluster_name, inbound_listener_name,
    listener_name, mesh_listener_name, proto_duration, redacted_bootstrap, sidecar_bootstrap,
};
pub use certificate::{PrivateKeyPem, REDACTED_KEY, TlsCertificate, redact_private_keys};
pub use error::LocalError;
pub use install::{
    ENVOY_VERSION, EnvoySource, ensure_envoy, ensure_envoy_from, installing_message,
};
pub(crate) use lifecycle::LocalTarget;
pub use plan::{
    ClusterPlan, GatewayPlan, GatewayPort, HttpsServer, InboundPlan, LbPolicy, MeshKey,
    MeshServicePlan, OutlierDetection, PathMatch, Plan, PodPlan, PortServing, RouteAction,
    RoutePlan, TrafficPolicy, VirtualHost, Workload, plan, plan_fixtures, pod_workload,
};
pub use process::die_with_parent;
pub use re2::Re2Error;
pub use received::LocalReceivedMark;
pub use route_rule::{
    HeaderEdits, HeaderFilters, MatchCondition, Mirror, PathRewrite, Redirect, RedirectPath,
    RedirectPort, Rewrite, RuleFilters, StringMatch,
};

use process::Process;

/// What an echo process never inherits from meshcheck: the variables echo-basic reads,
/// and `HOSTNAME`, which echo-advanced reports.
fn cleared_env() -> Vec<&'static str> {
    let mut names = crate::echo::basic_mode::ENV_VARS.to_vec();
    names.push("HOSTNAME");
    names
}

/// How the local target runs.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The Envoy binary, from [`ensure_envoy`].
    pub envoy: PathBuf,
    /// A binary with the `echo` subcommand: the running meshcheck for the CLI,
    /// `CARGO_BIN_EXE_meshcheck` in tests.
    pub echo_program: PathBuf,
    /// How long each echo and Envoy may take to come up.
    pub startup_timeout: Duration,
    /// How long a process gets between SIGTERM and SIGKILL at shutdown.
    pub shutdown_grace: Duration,
    /// Envoy's worker thread count (`--concurrency`); `None` lets Envoy use one per
    /// core. Benchmarks pin it so the load generator keeps a core of its own.
    pub envoy_concurrency: Option<u32>,
    /// Start the in-mesh client's sidecar even without GAMMA routes: the suite calls
    /// Services from inside the mesh (east-west cases), which Istio routes to the
    /// Service by default.
    pub mesh_client: bool,
}

impl LocalOptions {
    pub fn new(envoy: PathBuf, echo_program: PathBuf) -> LocalOptions {
        LocalOptions {
            envoy,
            echo_program,
            startup_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            envoy_concurrency: None,
            mesh_client: false,
        }
    }
}

/// One echo process: which Deployment replica, where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub deployment: ObjectKey,
    pub replica: u32,
    /// The pod's name (`<deployment>-<hash>-<suffix>`), which echo-basic reports.
    pub pod: String,
    pub pid: u32,
    pub address: SocketAddr,
}

/// What one echo-basic pod logged that it received, from its per-request log lines
/// (`Echoing back request made to PATH to client (ADDR)`), as the real image logs them:
/// a mirror's backend can be checked from this locally, as from the pod's log on a
/// cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedRequests {
    pub deployment: ObjectKey,
    pub pod: String,
    /// Every request the pod logged since it started.
    pub total: u64,
    /// The request targets (`/path?query`) of the most recent ones, oldest first.
    pub targets: Vec<String>,
}

/// A second Envoy playing an in-mesh client's sidecar: its outbound listeners stand for
/// the Services' cluster IPs, configured from the GAMMA routes.
#[derive(Debug)]
struct Sidecar {
    envoy: Process,
    admin: SocketAddr,
    /// (Service, port, consumer namespace) -> the listener a client sends to, Host set
    /// to the Service ([`Plan::mesh_route_for`] picks the one for a caller).
    listeners: BTreeMap<MeshKey, SocketAddr>,
}

/// A third Envoy playing the server-side sidecars of injected pods that a
/// DestinationRule limits ([`InboundPlan`]): one inbound listener per pod, in front of
/// its echo process.
#[derive(Debug)]
struct InboundSidecars {
    envoy: Process,
    admin: SocketAddr,
}

/// The fixtures, running. Dropping it kills every child (they are spawned with
/// kill-on-drop); [`LocalEnvironment::shutdown`] stops them gracefully and reports.
#[derive(Debug)]
pub struct LocalEnvironment {
    plan: Plan,
    /// Redacted: the private keys are only in the file Envoy reads.
    bootstrap: serde_json::Value,
    envoy: Process,
    echoes: Vec<Process>,
    backends: Vec<Backend>,
    /// Per workload of the plan, where its pods are reached: the echo processes, or
    /// the inbound sidecar listeners in front of them.
    pod_endpoints: Vec<Vec<SocketAddr>>,
    admin: SocketAddr,
    listeners: BTreeMap<(ObjectKey, u16), SocketAddr>,
    /// The in-mesh client's sidecar, when the fixtures have GAMMA routes.
    sidecar: Option<Sidecar>,
    /// The server-side sidecars, when a DestinationRule limits injected pods.
    inbound: Option<InboundSidecars>,
    envoy_startup: Duration,
    shutdown_grace: Duration,
    dir: TempDir,
}

impl LocalEnvironment {
    /// Translates the fixtures, starts the echo processes and Envoy, and returns once
    /// Envoy is LIVE with every gateway listener bound.
    pub async fn start(
        manifests: &[Manifest],
        options: LocalOptions,
    ) -> Result<LocalEnvironment, LocalError> {
        LocalEnvironment::start_plan(plan(manifests)?, options).await
    }

    /// [`LocalEnvironment::start`] for a suite's fixtures view, decoded at load time.
    pub async fn start_fixtures(
        fixtures: &Fixtures,
        options: LocalOptions,
    ) -> Result<LocalEnvironment, LocalError> {
        LocalEnvironment::start_plan(plan_fixtures(fixtures)?, options).await
    }

    async fn start_plan(plan: Plan, options: LocalOptions) -> Result<LocalEnvironment, LocalError> {
        let dir = private_temp_dir("meshcheck-local-").map_err(|source| LocalError::Write {
            what: "the temporary directory",
            path: std::env::temp_dir(),
            source,
        })?;

        // Spawn every replica first so they come up in parallel, then collect their
        // announced addresses. An early return drops (and so kills) what started.
        let mut echoes = Vec::new();
        for workload in &plan.workloads {
            for replica in 0..workload.replicas {
                let what = format!(
                    "echo {}/{}-{replica}",
                    workload.namespace, workload.deployment.name
                );
                let mut args = vec!["echo".to_string()];
                args.extend(workload.echo_args.iter().cloned());
                args.push("-listen=127.0.0.1:0".into());
                // The pod's environment, and none of meshcheck's own for the variables
                // the images read.
                let env = workload
                    .pods
                    .get(replica as usize)
                    .map(|pod| pod.env.clone())
                    .unwrap_or_default();
                let cleared = cleared_env();
                // What an echo-basic pod logs per request is its record of what it
                // received.
                let record = (workload.echo_mode() == Some(crate::echo::basic_mode::MODE_FLAG))
                    .then(|| process::LineRecord::new(crate::echo::basic_mode::LOG_PREFIX));
                let process = Process::spawn_with(
                    what,
                    &options.echo_program,
                    &args,
                    true,
                    process::SpawnOptions {
                        cleared: &cleared,
                        env: Some(&env),
                        record,
                    },
                )?;
                let pod = workload
                    .pods
                    .get(replica as usize)
                    .map(|pod| pod.name.clone())
                    .unwrap_or_default();
                echoes.push((workload.deployment.clone(), replica, pod, process));
            }
        }
        let mut pods: Vec<Vec<SocketAddr>> = vec![Vec::new(); plan.workloads.len()];
        let mut backends = Vec::new();
        let mut processes = Vec::new();
        for (deployment, replica, pod, mut process) in echoes {
            let line = process.announcement(options.startup_timeout).await?;
            let address = line
                .strip_prefix("listening on ")
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .ok_or_else(|| LocalError::BadAnnouncement {
                    what: process.what.clone(),
                    line: line.clone(),
                })?;
            if let Some(index) = plan
                .workloads
                .iter()
                .position(|w| w.deployment == deployment)
            {
                pods[index].push(address);
            }
            backends.push(Backend {
                deployment,
                replica,
                pod,
                pid: process.pid,
                address,
            });
            processes.push(process);
        }

        // Requests to a pod with a server-side sidecar go to its inbound listener, as
        // iptables hands them to the sidecar on a cluster.
        let (inbound, endpoints) = if plan.inbound.is_empty() {
            (None, pods.clone())
        } else {
            let (sidecars, endpoints) = start_inbound(&plan, &pods, dir.path(), &options).await?;
            (Some(sidecars), endpoints)
        };
        let config = bootstrap(&plan, &endpoints);
        let started = Instant::now();
        let (mut envoy, admin) = spawn_envoy(
            "Envoy",
            &config,
            "envoy",
            dir.path(),
            &options,
            options.envoy_concurrency,
        )
        .await?;
        let envoy_startup = started.elapsed();

        let wanted: Vec<((ObjectKey, u16), String)> = plan
            .gateways
            .iter()
            .flat_map(|g| {
                g.ports.iter().map(|p| {
                    (
                        (g.gateway.clone(), p.port),
                        listener_name(&g.gateway, p.port),
                    )
                })
            })
            .collect();
        let listeners = wait_listeners(&mut envoy, admin, &wanted, options.startup_timeout).await?;
        let sidecar = if !plan.has_gamma_routes() && !options.mesh_client {
            None
        } else {
            Some(start_sidecar(&plan, &endpoints, dir.path(), &options).await?)
        };
        Ok(LocalEnvironment {
            plan,
            bootstrap: redacted_bootstrap(&config),
            envoy,
            echoes: processes,
            backends,
            pod_endpoints: endpoints,
            admin,
            listeners,
            sidecar,
            inbound,
            envoy_startup,
            shutdown_grace: options.shutdown_grace,
            dir,
        })
    }

    /// What each echo-basic pod logged that it received, in [`LocalEnvironment::backends`]'
    /// order (pods of other images log no requests and are left out).
    pub fn received_requests(&self) -> Vec<ReceivedRequests> {
        self.backends
            .iter()
            .zip(&self.echoes)
            .filter_map(|(backend, process)| {
                let (total, lines) = process.record.as_ref()?.snapshot();
                Some(ReceivedRequests {
                    deployment: backend.deployment.clone(),
                    pod: backend.pod.clone(),
                    total,
                    targets: lines
                        .iter()
                        .filter_map(|l| crate::echo::basic_mode::logged_request_target(l))
                        .map(str::to_string)
                        .collect(),
                })
            })
            .collect()
    }

    /// Where to send traffic for a Gateway listener port (80 in the fixtures).
    pub fn gateway_address(&self, gateway: &ObjectKey, listener_port: u16) -> Option<SocketAddr> {
        self.listeners
            .get(&(gateway.clone(), listener_port))
            .copied()
    }

    /// Where an in-mesh client in namespace `from` sends requests for a Service port
    /// (GAMMA): the sidecar's outbound listener standing for the Service's cluster IP,
    /// configured as a caller in `from` sees it.
    pub fn mesh_address(&self, from: &str, service: &ObjectKey, port: u16) -> Option<SocketAddr> {
        let mesh = self.plan.mesh_route_for(from, service, port)?;
        self.sidecar.as_ref()?.listeners.get(&mesh.key()).copied()
    }

    /// Where a call to a pod of `deployment` on container port `port` connects (its
    /// first pod: the echo process, or its inbound sidecar's listener) and the
    /// `host:port` it names (the pod's loopback address with the container port, as a
    /// pod IP with its port); why not, when its image does not listen there.
    pub fn pod_address(
        &self,
        deployment: &ObjectKey,
        port: u16,
    ) -> Result<(SocketAddr, String), String> {
        let Some((index, workload)) = self
            .plan
            .workloads
            .iter()
            .enumerate()
            .find(|(_, w)| w.deployment == *deployment)
        else {
            return Err(format!("{deployment} runs no pods here"));
        };
        if port != workload.pod_port && !workload.served_on_pod_port.contains(&port) {
            return Err(workload.port_refusal(port));
        }
        let address = self
            .pod_endpoints
            .get(index)
            .and_then(|pods| pods.first())
            .copied()
            .ok_or_else(|| format!("{deployment} has no replicas"))?;
        Ok((address, format!("{}:{port}", address.ip())))
    }

    /// Why the in-mesh client's sidecar has no listener for a Service port.
    pub fn mesh_gap(&self, service: &ObjectKey, port: u16) -> String {
        self.plan
            .mesh_gaps
            .get(&(service.clone(), port))
            .cloned()
            .unwrap_or_else(|| format!("the fixtures give {service} no port {port}"))
    }

    /// GETs a path of the in-mesh client sidecar's admin API.
    pub async fn sidecar_admin(&self, path: &str) -> Result<String, LocalError> {
        let Some(sidecar) = &self.sidecar else {
            return Err(LocalError::Admin {
                path: path.into(),
                message: "the fixtures have no GAMMA route and the suite no east-west case, so there is no in-mesh client sidecar"
                    .into(),
            });
        };
        admin_page(sidecar.admin, path).await
    }

    /// GETs a path of the server-side sidecars' admin API (`/stats` for each pod's
    /// inbound cluster).
    pub async fn inbound_admin(&self, path: &str) -> Result<String, LocalError> {
        let Some(inbound) = &self.inbound else {
            return Err(LocalError::Admin {
                path: path.into(),
                message: "no DestinationRule limits an injected pod, so there are no server-side sidecars"
                    .into(),
            });
        };
        admin_page(inbound.admin, path).await
    }

    /// Every echo process: Deployment, replica, pid, address.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The translation the environment runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The Envoy bootstrap as written, with private keys redacted.
    pub fn bootstrap(&self) -> &serde_json::Value {
        &self.bootstrap
    }

    /// From starting Envoy to admin `/ready` saying LIVE.
    pub fn envoy_startup(&self) -> Duration {
        self.envoy_startup
    }

    /// Pids of every child (Envoy first), for callers that check cleanup.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.envoy.pid)
            .chain(self.sidecar.iter().map(|s| s.envoy.pid))
            .chain(self.inbound.iter().map(|s| s.envoy.pid))
            .chain(self.echoes.iter().map(|p| p.pid))
            .collect()
    }

    /// The temporary directory with the bootstrap; removed at shutdown.
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Envoy's `/stats` text: `cluster.outbound|80||backend-v1...upstream_rq_200: 42`.
    pub async fn envoy_stats(&self) -> Result<String, LocalError> {
        self.envoy_admin("/stats").await
    }

    /// GETs any path of Envoy's admin API (`/clusters` for per-host health flags),
    /// refusing a non-200 answer.
    pub async fn envoy_admin(&self, path: &str) -> Result<String, LocalError> {
        admin_page(self.admin, path).await
    }

    /// What a failure shows when there is no case to focus on: every cluster's Envoy
    /// stats (limits nobody set left out), process states, notes from the translation,
    /// and the tail of Envoy's log.
    pub async fn diagnostics(&self) -> Vec<DiagnosticSection> {
        let clusters = diagnose::all_clusters(&self.plan);
        let mut sections = match self.envoy_stats().await {
            Ok(stats) => diagnose::stats_diagnostics(&self.plan, &clusters, &stats, None).shown,
            Err(err) => vec![stats_unavailable(&err)],
        };
        sections.extend(self.environment_sections());
        sections
    }

    /// What a failed case shows: first the Envoy stats of the clusters its route
    /// uses, with what changed since `baseline` (taken as the case started
    /// measuring), and what changed elsewhere; then the processes, translation notes
    /// and Envoy logs. Every non-zero stat goes to the dumps, for the JSON report.
    pub async fn case_diagnostics(
        &self,
        case: &Case,
        baseline: Option<&StatsSnapshot>,
    ) -> Diagnostics {
        let clusters = diagnose::route_clusters(&self.plan, case);
        // The proxy that handled the case's requests: the gateway's Envoy, or the
        // in-mesh client's sidecar.
        let stats = match &case.entry {
            Entry::Gateway(_) => self.envoy_stats().await,
            Entry::Service { .. } | Entry::Pod { .. } => self.sidecar_admin("/stats").await,
        };
        let (mut sections, dumps) = match stats {
            Ok(stats) => {
                let view = diagnose::stats_diagnostics(&self.plan, &clusters, &stats, baseline);
                (view.shown, vec![view.dump])
            }
            Err(err) => (vec![stats_unavailable(&err)], Vec::new()),
        };
        if self.inbound.is_some() {
            sections.push(self.inbound_stats_section().await);
        }
        sections.extend(self.environment_sections());
        Diagnostics { sections, dumps }
    }

    /// The server-side sidecars' inbound clusters: what each pod's sidecar let through
    /// and refused, since a circuit-breaking 503 may come from there.
    async fn inbound_stats_section(&self) -> DiagnosticSection {
        let body = match self.inbound_admin("/stats").await {
            Ok(stats) => {
                let lines: Vec<&str> = stats
                    .lines()
                    .filter(|line| line.starts_with("cluster.") && line.contains("~inbound|"))
                    .filter(|line| {
                        ["upstream_rq_total", "overflow", "upstream_rq_5xx"]
                            .iter()
                            .any(|stat| line.contains(stat))
                    })
                    .filter(|line| !line.ends_with(": 0"))
                    .collect();
                if lines.is_empty() {
                    "no request reached a server-side sidecar".to_string()
                } else {
                    lines.join("\n")
                }
            }
            Err(err) => format!("unavailable: {err}"),
        };
        DiagnosticSection {
            title: "server-side sidecars (inbound clusters)".into(),
            body,
        }
    }

    /// Process states, translation notes and the Envoy logs' tails.
    fn environment_sections(&self) -> Vec<DiagnosticSection> {
        let mut sections = Vec::new();
        let mut states = vec![format!(
            "Envoy (pid {}): {}, admin {}",
            self.envoy.pid,
            process_state(self.envoy.pid),
            self.admin
        )];
        for backend in &self.backends {
            states.push(format!(
                "echo {}-{} (pid {}) on {}: {}",
                backend.deployment,
                backend.replica,
                backend.pid,
                backend.address,
                process_state(backend.pid)
            ));
        }
        sections.push(DiagnosticSection {
            title: "local processes".into(),
            body: states.join("\n"),
        });
        if !self.plan.notes.is_empty() {
            sections.push(DiagnosticSection {
                title: "translation notes".into(),
                body: self.plan.notes.join("\n"),
            });
        }
        sections.push(DiagnosticSection {
            title: "Envoy log (last 50 lines)".into(),
            body: self.envoy.tail.last(50),
        });
        let log_section = |label: &str, envoy: &Process, admin: SocketAddr| DiagnosticSection {
            title: format!(
                "{label} Envoy (pid {}, admin {admin}) log (last 50 lines)",
                envoy.pid
            ),
            body: envoy.tail.last(50),
        };
        if let Some(sidecar) = &self.sidecar {
            sections.push(log_section("sidecar", &sidecar.envoy, sidecar.admin));
        }
        if let Some(inbound) = &self.inbound {
            sections.push(log_section(
                "server-side sidecars",
                &inbound.envoy,
                inbound.admin,
            ));
        }
        sections
    }

    /// Stops Envoy, then every echo (SIGTERM, SIGKILL after the grace period), reaps
    /// them, and removes the temporary directory.
    pub async fn shutdown(self) -> CleanupReport {
        let grace = self.shutdown_grace;
        let mut report = CleanupReport::default();
        let mut record = |result: Result<String, String>| match result {
            Ok(done) => report.removed.push(done),
            Err(failed) => report.failed.push(failed),
        };
        // Envoys first: nothing should route to backends that are going away.
        record(self.envoy.terminate(grace).await);
        if let Some(sidecar) = self.sidecar {
            record(sidecar.envoy.terminate(grace).await);
        }
        if let Some(inbound) = self.inbound {
            record(inbound.envoy.terminate(grace).await);
        }
        for result in join_all(self.echoes.into_iter().map(|p| p.terminate(grace))).await {
            record(result);
        }
        let path = self.dir.path().display().to_string();
        match self.dir.close() {
            Ok(()) => report.removed.push(format!("removed {path}")),
            Err(err) => report
                .failed
                .push(format!("failed to remove {path}: {err}")),
        }
        report
    }
}

/// GETs `path` of an Envoy admin API, refusing a non-200 answer.
async fn admin_page(admin: SocketAddr, path: &str) -> Result<String, LocalError> {
    let (status, body) = admin::get(admin, path).await?;
    if status != http::StatusCode::OK {
        return Err(LocalError::Admin {
            path: path.into(),
            message: format!("status {status}: {body}"),
        });
    }
    Ok(body)
}

/// The stats section when Envoy's admin API did not answer.
fn stats_unavailable(err: &LocalError) -> DiagnosticSection {
    DiagnosticSection {
        title: "Envoy stats".into(),
        body: format!("unavailable: {err}"),
    }
}

/// Starts the in-mesh client's sidecar Envoy and waits for its Service listeners.
async fn start_sidecar(
    plan: &Plan,
    pods: &[Vec<SocketAddr>],
    dir: &Path,
    options: &LocalOptions,
) -> Result<Sidecar, LocalError> {
    let config = sidecar_bootstrap(plan, pods);
    let (mut envoy, admin) =
        spawn_envoy("sidecar Envoy", &config, "sidecar", dir, options, None).await?;
    let wanted: Vec<(MeshKey, String)> = plan
        .mesh
        .iter()
        .map(|m| (m.key(), mesh_listener_name(m)))
        .collect();
    let listeners = wait_listeners(&mut envoy, admin, &wanted, options.startup_timeout).await?;
    Ok(Sidecar {
        envoy,
        admin,
        listeners,
    })
}

/// Starts the server-side sidecars' Envoy, waits for every pod's inbound listener and
/// returns, per workload, the addresses clients reach its pods at: the inbound
/// listeners for pods with a sidecar, the echo processes for the rest.
async fn start_inbound(
    plan: &Plan,
    pods: &[Vec<SocketAddr>],
    dir: &Path,
    options: &LocalOptions,
) -> Result<(InboundSidecars, Vec<Vec<SocketAddr>>), LocalError> {
    let config = inbound_bootstrap(plan, pods);
    let (mut envoy, admin) = spawn_envoy(
        "inbound sidecars Envoy",
        &config,
        "inbound",
        dir,
        options,
        None,
    )
    .await?;
    let wanted: Vec<((usize, usize), String)> = plan
        .inbound
        .iter()
        .flat_map(|inbound| {
            let workload = &plan.workloads[inbound.workload];
            workload
                .pods
                .iter()
                .take(pods.get(inbound.workload).map_or(0, Vec::len))
                .enumerate()
                .map(|(replica, pod)| {
                    (
                        (inbound.workload, replica),
                        inbound_listener_name(&pod.name),
                    )
                })
        })
        .collect();
    let bound = wait_listeners(&mut envoy, admin, &wanted, options.startup_timeout).await?;
    let mut endpoints = pods.to_vec();
    for ((workload, replica), address) in bound {
        endpoints[workload][replica] = address;
    }
    Ok((InboundSidecars { envoy, admin }, endpoints))
}

/// Writes `config` as `<stem>.json` in `dir`, starts Envoy on it and waits until its
/// admin API says it is ready.
async fn spawn_envoy(
    label: &str,
    config: &serde_json::Value,
    stem: &str,
    dir: &Path,
    options: &LocalOptions,
    concurrency: Option<u32>,
) -> Result<(Process, SocketAddr), LocalError> {
    let config_path = dir.join(format!("{stem}.json"));
    write_json(&config_path, config)?;
    let admin_path = dir.join(format!("{stem}-admin-address.txt"));
    let mut args = vec![
        "-c".into(),
        config_path.display().to_string(),
        "--disable-hot-restart".into(),
        "--admin-address-path".into(),
        admin_path.display().to_string(),
        // Info level is hundreds of start-up lines; warnings and errors are what a
        // failure's log tail needs.
        "--log-level".into(),
        "warning".into(),
    ];
    if let Some(threads) = concurrency {
        args.extend(["--concurrency".into(), threads.to_string()]);
    }
    let mut envoy = Process::spawn(label.into(), &options.envoy, &args, false)?;
    let admin = wait_ready(&mut envoy, &admin_path, options.startup_timeout).await?;
    Ok((envoy, admin))
}

/// Polls for Envoy's admin address file and then `/ready`. Envoy offers no push
/// signal, so this is a bounded poll on the real readiness state, watching for an
/// early exit on every turn.
async fn wait_ready(
    envoy: &mut Process,
    admin_path: &Path,
    timeout: Duration,
) -> Result<SocketAddr, LocalError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if envoy.exit_status().is_some() {
            return Err(envoy.exited_at_startup().await);
        }
        if let Some(admin) = std::fs::read_to_string(admin_path)
            .ok()
            .and_then(|text| text.trim().parse::<SocketAddr>().ok())
            && let Ok((status, body)) = admin::get(admin, "/ready").await
            && status == http::StatusCode::OK
            && body.trim() == "LIVE"
        {
            return Ok(admin);
        }
        if Instant::now() >= deadline {
            return Err(LocalError::StartupTimeout {
                what: "Envoy".into(),
                timeout,
                tail: envoy.tail.last(20),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Waits until Envoy lists every gateway listener with its kernel-chosen port. Static
/// listeners are normally bound by the time Envoy is LIVE; this makes sure, with the
/// same bounded poll as [`wait_ready`].
async fn wait_listeners<K: Ord + Clone>(
    envoy: &mut Process,
    admin: SocketAddr,
    wanted: &[(K, String)],
    timeout: Duration,
) -> Result<BTreeMap<K, SocketAddr>, LocalError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if envoy.exit_status().is_some() {
            return Err(envoy.exited_at_startup().await);
        }
        let (_, body) = admin::get(admin, "/listeners?format=json").await?;
        let bound: BTreeMap<String, SocketAddr> =
            admin::parse_listeners(&body)?.into_iter().collect();
        let found: BTreeMap<K, SocketAddr> = wanted
            .iter()
            .filter_map(|(key, name)| {
                let address = bound.get(name)?;
                (address.port() != 0).then(|| (key.clone(), *address))
            })
            .collect();
        if found.len() == wanted.len() {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(LocalError::Admin {
                path: "/listeners?format=json".into(),
                message: format!(
                    "not every listener was bound after {}: {body}",
                    humantime::format_duration(timeout)
                ),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A temporary directory only its owner can enter: the bootstraps in it may carry the
/// private keys of HTTPS listeners.
fn private_temp_dir(prefix: &str) -> std::io::Result<TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), LocalError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    std::fs::write(path, text).map_err(|source| LocalError::Write {
        what: "the Envoy bootstrap",
        path: path.to_path_buf(),
        source,
    })
}

/// `running`, `exited` (zombie or gone) from /proc, for diagnostics.
fn process_state(pid: u32) -> &'static str {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
        {
            Some('Z' | 'X') => "exited",
            Some(_) => "running",
            None => "unknown",
        },
        Err(_) => "exited",
    }
}

/// Runs `envoy --mode validate` on a bootstrap: Envoy's own check of the config.
pub async fn validate_config(envoy: &Path, config: &serde_json::Value) -> Result<(), LocalError> {
    let dir = private_temp_dir("meshcheck-validate-").map_err(|source| LocalError::Write {
        what: "the temporary directory",
        path: std::env::temp_dir(),
        source,
    })?;
    let path = dir.path().join("envoy.json");
    write_json(&path, config)?;
    let output = tokio::process::Command::new(envoy)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .arg("--disable-hot-restart")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| LocalError::Spawn {
            what: format!("{} --mode validate", envoy.display()),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LocalError::InvalidConfig {
            output: redact_private_keys(&format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )),
        })
    }
}
