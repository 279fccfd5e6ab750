//! A pod's status as the kubelet reports it: `generateAPIPodStatus` and the condition
//! generators of kubernetes `pkg/kubelet/kubelet_pods.go` and
//! `pkg/kubelet/status/generate.go` (phase, hostIP/podIP, one status per container,
//! conditions PodReadyToStartContainers, Initialized, ContainersReady, Ready, and
//! PodScheduled, which the binding already set; not qosClass, which the API server set
//! at creation and keeps immutable), sent as the status manager sends it:
//! a strategic merge patch of the status subresource
//! (`pkg/kubelet/status/status_manager.go`, `syncPod`).

use std::net::Ipv4Addr;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The host's address as the stand-in node reports it.
pub const HOST_IP: &str = "127.0.0.1";

/// One container's state in the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Running since `started_at` (RFC 3339); `ready` as its readiness says.
    Running { started_at: String, ready: bool },
    /// Not started, with why (`reason` CamelCase, as the kubelet's reasons are).
    Waiting { reason: String, message: String },
    /// Exited (the stand-in restarts nothing).
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        started_at: String,
        finished_at: String,
    },
}

/// A container of the pod, for its status.
#[derive(Clone, Debug)]
pub struct ContainerReport {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    /// `meshcheck://<pid>` for a process, `meshcheck://stand-in` for none.
    pub container_id: Option<String>,
}

impl ContainerReport {
    fn ready(&self) -> bool {
        matches!(self.state, ContainerState::Running { ready: true, .. })
    }
}

/// Now, to the second, as the API server writes times (`2026-12-02T01:30:00Z`).
pub fn now() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// The status patch: phase Running once every container has started (Pending while
/// any waits), the IPs, the container statuses, and the conditions derived from them.
/// `not_ready_note`, when given, is added to the Ready condition's message (the
/// never-ready failure mode says it is one).
pub fn status_patch(
    pod_ip: Ipv4Addr,
    started_at: &str,
    containers: &[ContainerReport],
    not_ready_note: Option<&str>,
) -> Value {
    let waiting = containers
        .iter()
        .any(|c| matches!(c.state, ContainerState::Waiting { .. }));
    let all_terminated = !containers.is_empty()
        && containers
            .iter()
            .all(|c| matches!(c.state, ContainerState::Terminated { .. }));
    // `getPhase` (kubelet_pods.go): a waiting container keeps the pod Pending; with
    // restartPolicy Always (a Deployment's), exited containers would be restarted, but
    // the stand-in restarts nothing, so a pod whose containers all exited is Failed.
    let phase = if waiting {
        "Pending"
    } else if all_terminated {
        "Failed"
    } else {
        "Running"
    };
    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !c.ready())
        .map(|c| c.name.as_str())
        .collect();
    let now = now();
    let condition = |kind: &str, ok: bool, message: Option<String>| {
        let mut c = json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": now,
        });
        if !ok {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(message.unwrap_or_default());
        }
        c
    };
    let all_ready = unready.is_empty() && not_ready_note.is_none();
    // `GenerateContainersReadyCondition`: "containers with unready status: [a b]".
    let unready_message = || {
        let mut message = format!("containers with unready status: [{}]", unready.join(" "));
        if let Some(note) = not_ready_note {
            message = if unready.is_empty() {
                note.to_string()
            } else {
                format!("{message}; {note}")
            };
        }
        Some(message)
    };
    json!({
        "status": {
            "phase": phase,
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": pod_ip.to_string(),
            "podIPs": [{"ip": pod_ip.to_string()}],
            "startTime": started_at,
            "conditions": [
                condition("PodReadyToStartContainers", true, None),
                condition("Initialized", true, None),
                condition("ContainersReady", all_ready, unready_message()),
                condition("Ready", all_ready, unready_message()),
                condition("PodScheduled", true, None),
            ],
            "containerStatuses": containers.iter().map(container_status).collect::<Vec<_>>(),
        }
    })
}

fn container_status(c: &ContainerReport) -> Value {
    let (state, started) = match &c.state {
        ContainerState::Running { started_at, .. } => {
            (json!({"running": {"startedAt": started_at}}), true)
        }
        ContainerState::Waiting { reason, message } => (
            json!({"waiting": {"reason": reason, "message": message}}),
            false,
        ),
        ContainerState::Terminated {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
        } => (
            json!({"terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "message": message,
                "startedAt": started_at,
                "finishedAt": finished_at,
            }}),
            false,
        ),
    };
    let mut status = json!({
        "name": c.name,
        "image": c.image,
        "imageID": "",
        "ready": c.ready(),
        "started": started,
        "restartCount": 0,
        "state": state,
    });
    if let Some(id) = &c.container_id {
        status["containerID"] = json!(id);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(name: &str, ready: bool) -> ContainerReport {
        ContainerReport {
            name: name.into(),
            image: "hashicorp/http-echo".into(),
            state: ContainerState::Running {
                started_at: "2026-01-01T00:00:00Z".into(),
                ready,
            },
            container_id: Some("meshcheck://1".into()),
        }
    }

    fn condition<'a>(patch: &'a Value, kind: &str) -> &'a Value {
        patch["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap()
    }

    #[test]
    fn ready_containers_make_a_ready_running_pod_with_its_ip() {
        let ip = Ipv4Addr::new(127, 10, 0, 7);
        let patch = status_patch(ip, "t", &[running("echo", true)], None);
        assert_eq!(patch["status"]["phase"], "Running");
        assert_eq!(patch["status"]["podIP"], "127.10.0.7");
        assert_eq!(condition(&patch, "Ready")["status"], "True");
        assert_eq!(patch["status"]["containerStatuses"][0]["ready"], true);
    }

    #[test]
    fn a_waiting_container_keeps_the_pod_pending_and_named_in_the_ready_condition() {
        let waiting = ContainerReport {
            name: "web".into(),
            image: "nginx".into(),
            state: ContainerState::Waiting {
                reason: "StandInCannotRun".into(),
                message: "no".into(),
            },
            container_id: None,
        };
        let patch = status_patch(
            Ipv4Addr::LOCALHOST,
            "t",
            &[running("echo", true), waiting],
            None,
        );
        assert_eq!(patch["status"]["phase"], "Pending");
        let ready = condition(&patch, "Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["message"], "containers with unready status: [web]");
    }

    #[test]
    fn a_note_keeps_a_running_pod_unready() {
        let patch = status_patch(
            Ipv4Addr::LOCALHOST,
            "t",
            &[running("echo", false)],
            Some("never ready (kube-tier.meshcheck.dev/never-ready)"),
        );
        assert_eq!(patch["status"]["phase"], "Running");
        assert_eq!(
            condition(&patch, "Ready")["message"],
            "containers with unready status: [echo]; never ready (kube-tier.meshcheck.dev/never-ready)"
        );
    }
}
