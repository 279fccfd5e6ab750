//! What a cluster's echo-basic pods received since a mark, read from their logs:
//! the image prints one line per request (`Echoing back request made to PATH to
//! client (ADDR)`), which is how upstream checks a mirror too
//! (kubernetes-sigs/gateway-api `conformance/utils/http/mirror.go`, reading the pod
//! logs since the assertion started).
//!
//! The mark is each pod's last log line's timestamp as the kubelet stamped it (the
//! node's clock, not ours); later reads ask for the log from a second before it
//! (`sinceTime` has whole seconds) and keep the lines stamped after it.
//!
//! A Gateway's Istio proxy keeps no per-cluster request counters by default (its
//! stats inclusion list leaves them out), so unlike the local target there is no
//! proxy-side count of copies in flight. A receiver has settled when it has logged
//! the count the caller says is complete, or, without one, when two reads a poll
//! apart show the same lines; either way within the bound.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, LogParams};
use tokio::time::Instant;

use super::KubeError;
use super::environment::KubeEnvironment;
use crate::suite::expect::{Received, Receiver};

/// How often the logs are read while waiting for them to settle, as upstream's
/// `require.Eventually` polls them.
const SETTLE_POLL: Duration = Duration::from_secs(1);

/// How long a mark waits for the logs to settle: upstream's request timeout
/// (kubernetes-sigs/gateway-api `conformance/utils/config/timeout.go`).
const MARK_SETTLE: Duration = Duration::from_secs(10);

/// The sidecar's container, whose log is not the application's.
const PROXY_CONTAINER: &str = "istio-proxy";

/// Where the logs of some receivers' pods stood at a mark.
#[derive(Debug)]
pub struct KubeReceivedMark {
    receivers: Vec<Vec<MarkedPod>>,
}

#[derive(Debug)]
struct MarkedPod {
    namespace: String,
    name: String,
    /// The application container (the first that is not the sidecar).
    container: Option<String>,
    /// The timestamp of the last line at the mark; `None` for an empty log.
    after: Option<jiff::Timestamp>,
}

impl KubeReceivedMark {
    fn last_lines(&self) -> Vec<Vec<Option<jiff::Timestamp>>> {
        self.receivers
            .iter()
            .map(|pods| pods.iter().map(|p| p.after).collect())
            .collect()
    }
}

impl KubeEnvironment {
    /// See `RunningTarget::mark_received`. Copies of earlier requests (convergence's)
    /// may still be on their way, so the mark is taken once two reads a poll apart
    /// find the same last lines (within [`MARK_SETTLE`]): those copies then count
    /// before the mark, not after it.
    pub async fn mark_received(
        &self,
        receivers: &[Receiver],
    ) -> Result<KubeReceivedMark, KubeError> {
        let deadline = Instant::now() + MARK_SETTLE;
        let mut mark = self.mark_once(receivers).await?;
        while Instant::now() + SETTLE_POLL <= deadline {
            tokio::time::sleep(SETTLE_POLL).await;
            let again = self.mark_once(receivers).await?;
            if again.last_lines() == mark.last_lines() {
                return Ok(again);
            }
            mark = again;
        }
        Ok(mark)
    }

    async fn mark_once(&self, receivers: &[Receiver]) -> Result<KubeReceivedMark, KubeError> {
        let mut marked = Vec::new();
        for receiver in receivers {
            let mut pods = Vec::new();
            for pod in self.pods_behind(receiver).await? {
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let container = pod.spec.as_ref().and_then(|spec| {
                    spec.containers
                        .iter()
                        .find(|c| c.name != PROXY_CONTAINER)
                        .map(|c| c.name.clone())
                });
                let params = LogParams {
                    container: container.clone(),
                    timestamps: true,
                    tail_lines: Some(1),
                    ..LogParams::default()
                };
                let api: Api<Pod> = Api::namespaced(self.client().clone(), &namespace);
                let last = api.logs(&name, &params).await.map_err(|e| {
                    self.api_error("read the log of", format!("pod {namespace}/{name}"), &e)
                })?;
                let after = last.lines().rev().find_map(|l| stamped(l).map(|(t, _)| t));
                pods.push(MarkedPod {
                    namespace,
                    name,
                    container,
                    after,
                });
            }
            marked.push(pods);
        }
        Ok(KubeReceivedMark { receivers: marked })
    }

    /// See `RunningTarget::received_since` and this module's text for when the logs
    /// count as settled.
    pub async fn received_since(
        &self,
        mark: &KubeReceivedMark,
        complete: &[Option<u64>],
        within: Duration,
    ) -> Result<Vec<Received>, KubeError> {
        let deadline = Instant::now() + within;
        let mut previous: Option<Vec<Vec<String>>> = None;
        loop {
            let mut now = Vec::new();
            for pods in &mark.receivers {
                let mut targets = Vec::new();
                for pod in pods {
                    targets.extend(self.logged_since(pod).await?);
                }
                now.push(targets);
            }
            let settled = now.iter().enumerate().all(|(i, targets)| {
                match complete.get(i).copied().flatten() {
                    Some(count) => targets.len() as u64 >= count,
                    None => previous
                        .as_ref()
                        .is_some_and(|before| before.get(i) == Some(targets)),
                }
            });
            if settled || Instant::now() + SETTLE_POLL > deadline {
                return Ok(now
                    .into_iter()
                    .map(|targets| Received { targets, settled })
                    .collect());
            }
            previous = Some(now);
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// The request targets a pod logged after its mark.
    async fn logged_since(&self, pod: &MarkedPod) -> Result<Vec<String>, KubeError> {
        let params = LogParams {
            container: pod.container.clone(),
            timestamps: true,
            // `sinceTime` is rounded to the second: start a second early and drop
            // what is not after the mark.
            since_time: pod
                .after
                .and_then(|t| t.checked_sub(jiff::SignedDuration::from_secs(1)).ok()),
            ..LogParams::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client().clone(), &pod.namespace);
        let text = api.logs(&pod.name, &params).await.map_err(|e| {
            self.api_error(
                "read the log of",
                format!("pod {}/{}", pod.namespace, pod.name),
                &e,
            )
        })?;
        Ok(targets_after(&text, pod.after))
    }

    /// The running pods the receiver's Service selects.
    async fn pods_behind(&self, receiver: &Receiver) -> Result<Vec<Pod>, KubeError> {
        let namespace = receiver.service.namespace_or_default().to_owned();
        let services: Api<Service> = Api::namespaced(self.client().clone(), &namespace);
        let service = services
            .get(&receiver.service.name)
            .await
            .map_err(|e| self.api_error("get", receiver.service.to_string(), &e))?;
        let selector = service
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        let pods: Api<Pod> = Api::namespaced(self.client().clone(), &namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.api_error("list", format!("pods of {}", receiver.service), &e))?;
        Ok(list
            .items
            .into_iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .collect())
    }
}

/// A log line with the kubelet's timestamp, split into the time and the line.
fn stamped(line: &str) -> Option<(jiff::Timestamp, &str)> {
    let (time, rest) = line.split_once(' ')?;
    Some((time.parse().ok()?, rest))
}

/// The request targets of echo-basic's lines stamped after `after`.
fn targets_after(log: &str, after: Option<jiff::Timestamp>) -> Vec<String> {
    log.lines()
        .filter_map(stamped)
        .filter(|(time, _)| after.is_none_or(|after| *time > after))
        .filter_map(|(_, line)| crate::echo::basic_mode::logged_request_target(line))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_request_lines_after_the_mark_count() {
        let log = "2026-12-02T01:00:00.100000000Z Echoing back request made to /old to client (10.0.0.1:1)\n\
                   2026-12-02T01:00:00.200000000Z Starting server\n\
                   2026-12-02T01:00:00.300000000Z Echoing back request made to /mirror?a=1 to client (10.0.0.1:2)\n\
                   not stamped Echoing back request made to /x to client (y)\n";
        let mark: jiff::Timestamp = "2026-12-02T01:00:00.1Z".parse().unwrap();
        assert_eq!(targets_after(log, Some(mark)), ["/mirror?a=1"]);
        assert_eq!(targets_after(log, None), ["/old", "/mirror?a=1"]);
    }
}
