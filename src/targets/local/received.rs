//! What the local target's echo-basic processes received since a mark, read from
//! their own records of their per-request log lines, once the proxy has nothing in
//! flight to them: what a mirror check counts.
//!
//! A mirror's copy is sent by Envoy alongside the request and finishes on its own
//! time (Envoy's router `shadow` requests), so the client's answer says nothing about
//! whether the copy has arrived. The proxy's own counters do: for the Service's
//! clusters, once no request is active or pending and the pods have logged at least
//! as many requests as the proxy sent them since the mark, every copy is in the
//! records.

use std::time::Duration;

use tokio::time::Instant;

use super::{LocalEnvironment, LocalError};
use crate::suite::Entry;
use crate::suite::expect::{Received, Receiver};
use crate::targets::proxy_stats::StatsSnapshot;

/// How often the proxy's counters and the records are looked at while settling.
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// How long a mark waits for earlier copies to land: upstream's request timeout
/// (kubernetes-sigs/gateway-api `conformance/utils/config/timeout.go`).
const MARK_SETTLE: Duration = Duration::from_secs(10);

/// The stats a settle reads: requests sent to each cluster, and those still active or
/// waiting for a connection.
const SETTLE_STATS: &str = "/stats?filter=upstream_rq_%28total%7Cactive%7Cpending_active%29%24";

/// Where the records of some receivers stood at a mark.
#[derive(Debug)]
pub struct LocalReceivedMark {
    entry: Entry,
    receivers: Vec<MarkedReceiver>,
}

#[derive(Debug)]
struct MarkedReceiver {
    /// Indices into the environment's echo processes, with how many requests each
    /// had logged at the mark.
    pods: Vec<(usize, u64)>,
    /// The Envoy clusters of the Service (one per port).
    clusters: Vec<String>,
    /// Requests the proxy had sent to those clusters at the mark.
    sent: u64,
}

/// What the proxy's counters say about one receiver.
struct InFlight {
    sent: u64,
    active: u64,
}

impl LocalEnvironment {
    /// See `RunningTarget::mark_received`.
    ///
    /// Copies of earlier requests (convergence's) may still be on their way: the mark
    /// waits, within [`MARK_SETTLE`], until the proxy has nothing in flight to the
    /// receivers and their pods have logged every request it ever sent them, so that
    /// those copies are counted before the mark and not after it.
    pub async fn mark_received(
        &self,
        entry: &Entry,
        receivers: &[Receiver],
    ) -> Result<LocalReceivedMark, LocalError> {
        let deadline = Instant::now() + MARK_SETTLE;
        let stats = loop {
            let stats = self.settle_stats(entry).await?;
            let settled = receivers.iter().all(|receiver| {
                let flight = in_flight(&stats, &self.clusters_of(receiver));
                let logged: u64 = self.pods_of(receiver).iter().map(|&(_, total)| total).sum();
                flight.active == 0 && logged >= flight.sent
            });
            if settled || Instant::now() >= deadline {
                break stats;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        };
        let receivers = receivers
            .iter()
            .map(|receiver| {
                let pods = self.pods_of(receiver);
                let clusters = self.clusters_of(receiver);
                let sent = in_flight(&stats, &clusters).sent;
                MarkedReceiver {
                    pods,
                    clusters,
                    sent,
                }
            })
            .collect();
        Ok(LocalReceivedMark {
            entry: entry.clone(),
            receivers,
        })
    }

    /// See `RunningTarget::received_since`. The records have settled once, for every
    /// receiver, the proxy has no request to it active or pending and its pods have
    /// logged at least as many requests as the proxy sent it since the mark.
    pub async fn received_since(
        &self,
        mark: &LocalReceivedMark,
        within: Duration,
    ) -> Result<Vec<Received>, LocalError> {
        let deadline = Instant::now() + within;
        loop {
            let stats = self.settle_stats(&mark.entry).await?;
            let mut settled = true;
            let mut received = Vec::new();
            for receiver in &mark.receivers {
                let targets = self.targets_since(receiver);
                let flight = in_flight(&stats, &receiver.clusters);
                let sent = flight.sent.saturating_sub(receiver.sent);
                settled &= flight.active == 0 && targets.len() as u64 >= sent;
                received.push(targets);
            }
            let timed_out = Instant::now() >= deadline;
            if settled || timed_out {
                return Ok(received
                    .into_iter()
                    .map(|targets| Received { targets, settled })
                    .collect());
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// A receiver's echo-basic processes (indices into the echoes) with how many
    /// requests each has logged so far.
    fn pods_of(&self, receiver: &Receiver) -> Vec<(usize, u64)> {
        self.backends
            .iter()
            .zip(&self.echoes)
            .enumerate()
            .filter(|(_, (backend, _))| receiver.deployments.contains(&backend.deployment))
            .filter_map(|(i, (_, process))| {
                let (total, _) = process.record.as_ref()?.snapshot();
                Some((i, total))
            })
            .collect()
    }

    /// The Envoy clusters of a receiver's Service, one per port.
    fn clusters_of(&self, receiver: &Receiver) -> Vec<String> {
        self.plan
            .clusters
            .iter()
            .filter(|c| c.service == receiver.service)
            .map(|c| c.name.clone())
            .collect()
    }

    /// The request targets a receiver's pods logged since the mark, pod by pod.
    fn targets_since(&self, receiver: &MarkedReceiver) -> Vec<String> {
        let mut targets = Vec::new();
        for &(index, at_mark) in &receiver.pods {
            let Some(record) = self.echoes.get(index).and_then(|p| p.record.as_ref()) else {
                continue;
            };
            let (total, lines) = record.snapshot();
            let new = usize::try_from(total.saturating_sub(at_mark)).unwrap_or(usize::MAX);
            let skip = lines.len().saturating_sub(new);
            targets.extend(
                lines[skip..]
                    .iter()
                    .filter_map(|l| crate::echo::basic_mode::logged_request_target(l))
                    .map(str::to_string),
            );
        }
        targets
    }

    async fn settle_stats(&self, entry: &Entry) -> Result<StatsSnapshot, LocalError> {
        let text = match entry {
            Entry::Gateway(_) => self.envoy_admin(SETTLE_STATS).await?,
            Entry::Service { .. } | Entry::Pod { .. } => self.sidecar_admin(SETTLE_STATS).await?,
        };
        Ok(StatsSnapshot::parse(&text))
    }
}

/// The proxy's requests to `clusters`: sent in all, and active or pending now.
fn in_flight(stats: &StatsSnapshot, clusters: &[String]) -> InFlight {
    let stat = |cluster: &str, name: &str| {
        stats
            .values
            .get(&format!("cluster.{cluster}.{name}"))
            .copied()
            .unwrap_or(0)
    };
    InFlight {
        sent: clusters.iter().map(|c| stat(c, "upstream_rq_total")).sum(),
        active: clusters
            .iter()
            .map(|c| stat(c, "upstream_rq_active") + stat(c, "upstream_rq_pending_active"))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_sums_a_services_clusters() {
        let stats = StatsSnapshot::parse(
            "cluster.outbound|80||a.ns.svc.cluster.local.upstream_rq_total: 5\n\
             cluster.outbound|8080||a.ns.svc.cluster.local.upstream_rq_total: 2\n\
             cluster.outbound|80||a.ns.svc.cluster.local.upstream_rq_active: 1\n\
             cluster.outbound|8080||a.ns.svc.cluster.local.upstream_rq_pending_active: 1\n\
             cluster.outbound|80||b.ns.svc.cluster.local.upstream_rq_total: 9\n",
        );
        let clusters = [
            "outbound|80||a.ns.svc.cluster.local".to_string(),
            "outbound|8080||a.ns.svc.cluster.local".to_string(),
        ];
        let flight = in_flight(&stats, &clusters);
        assert_eq!((flight.sent, flight.active), (7, 2));
    }
}
