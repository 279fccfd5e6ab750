//! One pod on the stand-in node, from its start to its end: a loopback pod IP, a
//! `meshcheck echo` process per echo container, the status the kubelet would report,
//! and, once the pod is being deleted, its processes stopped and the pod deleted with
//! grace period 0, as the kubelet's status manager does once a pod's containers have
//! stopped (kubernetes `pkg/kubelet/status/status_manager.go`, `syncPod`:
//! `canBeDeleted`, then `Delete` with `NewDeleteOptions(0)` and the pod's UID as
//! precondition). A process that exits is reported terminated; nothing is restarted.

use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::process::ChildProcess;

use super::containers::{ContainerPlan, plan};
use super::pod_status::{ContainerReport, ContainerState, now, status_patch};

/// The pod annotation (or label) that makes the stand-in run a pod but never report
/// it Ready: the kube target's "pods never Ready" failure path on a real API server.
pub const NEVER_READY: &str = "kube-tier.meshcheck.dev/never-ready";

/// Why a pod's run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The pod has a deletionTimestamp: stop, then delete it with grace period 0.
    Deleting,
    /// The pod is gone from the API server, or the stand-in is shutting down.
    Gone,
}

/// A running pod, stopped with [`PodRun::finish`].
pub struct PodRun {
    stop: oneshot::Sender<StopReason>,
    task: JoinHandle<()>,
}

impl PodRun {
    /// Starts running `pod` (bound to this node).
    pub fn start(ctx: Arc<Context>, pod: Pod) -> PodRun {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(ctx, pod, stopped));
        PodRun { stop, task }
    }

    /// Stops the pod's processes (and deletes it, for [`StopReason::Deleting`]);
    /// returns when that is done.
    pub async fn finish(self, reason: StopReason) {
        let _ = self.stop.send(reason);
        let _ = self.task.await;
    }
}

/// What a container task says about its process.
enum ContainerEvent {
    Listening,
    Exited { message: String },
}

struct Running {
    index: usize,
    event: ContainerEvent,
}

async fn run(ctx: Arc<Context>, pod: Pod, stopped: oneshot::Receiver<StopReason>) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let what = format!("{namespace}/{name}");
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let started_at = now();
    let never_ready = [&pod.metadata.annotations, &pod.metadata.labels]
        .iter()
        .any(|m| {
            m.as_ref()
                .and_then(|m| m.get(NEVER_READY))
                .map(String::as_str)
                == Some("true")
        });
    let note =
        never_ready.then(|| format!("never Ready: the kube tier's failure mode {NEVER_READY}"));

    let address = match ctx.pod_addresses.allocate() {
        Ok(address) => Some(address),
        Err(err) => {
            eprintln!("kube-stand-in: pod {what}: {err}");
            None
        }
    };
    let containers = pod.spec.clone().unwrap_or_default().containers;
    let mut reports: Vec<ContainerReport> = Vec::new();
    let stop_containers = CancellationToken::new();
    let (events, mut heard) = mpsc::unbounded_channel::<Running>();
    let mut tasks = JoinSet::new();
    let mut starting = 0usize;
    for (index, container) in containers.iter().enumerate() {
        let image = container.image.clone().unwrap_or_default();
        let report = |state| ContainerReport {
            name: container.name.clone(),
            image: image.clone(),
            state,
            container_id: None,
        };
        let waiting = |reason: &str, message: String| {
            report(ContainerState::Waiting {
                reason: reason.into(),
                message,
            })
        };
        let Some(address) = address else {
            reports.push(waiting("StandInNoAddress", "no pod IP left".into()));
            continue;
        };
        match plan(&pod, container) {
            ContainerPlan::StoodIn { why } => {
                let mut stood_in = report(ContainerState::Running {
                    started_at: started_at.clone(),
                    ready: !never_ready,
                });
                stood_in.container_id = Some("meshcheck://stand-in".into());
                ctx.logs
                    .open((namespace.clone(), name.clone(), container.name.clone()));
                eprintln!(
                    "kube-stand-in: pod {what}: container {} is {why}",
                    container.name
                );
                reports.push(stood_in);
            }
            ContainerPlan::CannotRun { message } => {
                reports.push(waiting("StandInCannotRun", message));
            }
            ContainerPlan::Echo { args, port, env } => {
                let mut argv = vec!["echo".to_string()];
                argv.extend(args);
                argv.push(format!("-listen={address}:{port}"));
                let mut cleared = meshcheck::echo::basic_mode::ENV_VARS.to_vec();
                cleared.push("HOSTNAME");
                let log_key = (namespace.clone(), name.clone(), container.name.clone());
                ctx.logs.open(log_key.clone());
                match ChildProcess::spawn(
                    format!("{what}/{}", container.name),
                    &ctx.options.echo_program,
                    &argv,
                    &env,
                    &cleared,
                    Some(Arc::new(ctx.logs.writer(log_key))),
                ) {
                    Ok(child) => {
                        let mut running = waiting("ContainerCreating", String::new());
                        running.container_id = Some(format!("meshcheck://{}", child.pid));
                        reports.push(running);
                        starting += 1;
                        tasks.spawn(container_task(
                            index,
                            child,
                            stop_containers.clone(),
                            events.clone(),
                        ));
                    }
                    Err(err) => reports.push(waiting(
                        "RunContainerError",
                        meshcheck::error_chain::one_line(&err),
                    )),
                }
            }
        }
    }
    drop(events);

    let report = |reports: &[ContainerReport]| {
        let pods = pods.clone();
        let patch = status_patch(
            address.unwrap_or(Ipv4Addr::UNSPECIFIED),
            &started_at,
            reports,
            note.as_deref(),
        );
        let what = what.clone();
        let name = name.clone();
        async move {
            let params = PatchParams::default();
            if let Err(err) = pods
                .patch_status(&name, &params, &Patch::Strategic(patch))
                .await
            {
                eprintln!("kube-stand-in: could not report the status of pod {what}: {err}");
            }
        }
    };

    let mut stopped = std::pin::pin!(stopped);
    let mut reported = false;
    if starting == 0 {
        report(&reports).await;
        reported = true;
    }
    let reason = loop {
        tokio::select! {
            reason = &mut stopped => break reason.unwrap_or(StopReason::Gone),
            event = heard.recv() => {
                let Some(Running { index, event }) = event else {
                    // Every container task has ended; wait for the stop alone.
                    break stopped.await.unwrap_or(StopReason::Gone);
                };
                let Some(container) = reports.get_mut(index) else { continue };
                match event {
                    ContainerEvent::Listening => {
                        starting = starting.saturating_sub(1);
                        container.state = ContainerState::Running {
                            started_at: now(),
                            ready: !never_ready,
                        };
                    }
                    ContainerEvent::Exited { message } => {
                        if matches!(container.state, ContainerState::Waiting { .. }) {
                            starting = starting.saturating_sub(1);
                        }
                        let started = match &container.state {
                            ContainerState::Running { started_at, .. } => started_at.clone(),
                            _ => started_at.clone(),
                        };
                        container.state = ContainerState::Terminated {
                            exit_code: 1,
                            reason: "Error".into(),
                            message,
                            started_at: started,
                            finished_at: now(),
                        };
                    }
                }
                if starting == 0 || reported {
                    report(&reports).await;
                    reported = true;
                }
            }
        }
    };
    stop_containers.cancel();
    while tasks.join_next().await.is_some() {}
    if let Some(address) = address {
        ctx.pod_addresses.release(address);
    }
    if reason == StopReason::Deleting {
        delete_now(&pods, &name, &uid).await;
    }
    ctx.logs.remove_pod(&namespace, &name);
}

/// Deletes the pod with grace period 0 (its containers have stopped), if it is still
/// the same pod.
pub async fn delete_now(pods: &Api<Pod>, name: &str, uid: &str) {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(name, &params).await {
        Ok(_) => {}
        // Gone already, or another pod of that name now (the precondition failed).
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(err) => eprintln!("kube-stand-in: could not delete pod {name}: {err}"),
    }
}

/// Waits for the process to listen, then for its exit or the pod's stop; stops it.
async fn container_task(
    index: usize,
    mut child: ChildProcess,
    stop: CancellationToken,
    events: mpsc::UnboundedSender<Running>,
) {
    let listening = tokio::select! {
        line = child.wait_for_line(|l| l.starts_with("listening on ")) => line,
        () = stop.cancelled() => {
            child.stop().await;
            return;
        }
    };
    let event = match listening {
        Ok(_) => ContainerEvent::Listening,
        Err(err) => {
            let status = child.exited().await;
            let _ = events.send(Running {
                index,
                event: ContainerEvent::Exited {
                    message: format!("{} ({status})", meshcheck::error_chain::one_line(&err)),
                },
            });
            return;
        }
    };
    let _ = events.send(Running { index, event });
    let exited = tokio::select! {
        status = child.exited() => Some(status),
        () = stop.cancelled() => None,
    };
    match exited {
        Some(status) => {
            let _ = events.send(Running {
                index,
                event: ContainerEvent::Exited {
                    message: format!("the process exited: {status}"),
                },
            });
        }
        None => child.stop().await,
    }
}
