//! Reading Envoy's admin output: `/stats` counters and `/clusters` per-host state.

use std::collections::BTreeMap;

use super::super::case_error::CaseError;
use crate::suite::Case;
use crate::targets::RunningTarget;

/// An admin page (`/stats`, `/clusters`) of the proxy that handles the case's requests.
pub(crate) async fn admin_page(
    env: &impl RunningTarget,
    case: &Case,
    path: &'static str,
) -> Result<String, CaseError> {
    env.proxy_admin(&case.entry, path)
        .await
        .map_err(|source| CaseError::ProxyAdmin { path, source })
}

/// A cluster counter from `/stats` text (`cluster.NAME.STAT: VALUE`); `None` when the
/// proxy does not list it.
pub(crate) fn cluster_stat(stats: &str, cluster: &str, stat: &str) -> Option<u64> {
    let key = format!("cluster.{cluster}.{stat}");
    server_stat(stats, &key)
}

/// Any stat by its full name (`server.concurrency`).
pub(crate) fn server_stat(stats: &str, key: &str) -> Option<u64> {
    stats.lines().find_map(|line| {
        let (name, value) = line.split_once(": ")?;
        (name == key).then(|| value.trim().parse().ok()).flatten()
    })
}

/// One upstream host of a cluster as `/clusters` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HostState {
    pub rq_total: u64,
    /// Requests the host answered with a 5xx.
    pub rq_error: u64,
    /// `health_flags` contains `/failed_outlier_check`.
    pub ejected: bool,
}

/// Every host of `cluster`, by address, from `/clusters` text
/// (`NAME::ADDR::rq_total::12`, `NAME::ADDR::health_flags::/failed_outlier_check`).
pub(crate) fn cluster_hosts(clusters: &str, cluster: &str) -> BTreeMap<String, HostState> {
    let prefix = format!("{cluster}::");
    let mut hosts: BTreeMap<String, HostState> = BTreeMap::new();
    for line in clusters.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let mut parts = rest.splitn(3, "::");
        let (Some(address), Some(field), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // Cluster-wide lines (`default_priority::...`, `added_via_api::true`) have no
        // host address.
        if !address.contains(':') {
            continue;
        }
        let host = hosts.entry(address.to_string()).or_default();
        match field {
            "rq_total" => host.rq_total = value.parse().unwrap_or_default(),
            "rq_error" => host.rq_error = value.parse().unwrap_or_default(),
            "health_flags" => host.ejected = value.contains("/failed_outlier_check"),
            _ => {}
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "outbound|80||backend-v1.istio-test.svc.cluster.local";

    #[test]
    fn stats_are_found_by_exact_name() {
        let stats = format!(
            "cluster.{CLUSTER}.upstream_rq_pending_overflow: 7\ncluster.{CLUSTER}.upstream_rq_pending_overflow_x: 9\nserver.concurrency: 2\n"
        );
        assert_eq!(
            cluster_stat(&stats, CLUSTER, "upstream_rq_pending_overflow"),
            Some(7)
        );
        assert_eq!(cluster_stat(&stats, CLUSTER, "upstream_cx_overflow"), None);
        assert_eq!(server_stat(&stats, "server.concurrency"), Some(2));
    }

    #[test]
    fn hosts_with_flags_and_counts() {
        let text = format!(
            "{CLUSTER}::default_priority::max_connections::4294967295\n\
             {CLUSTER}::127.0.0.1:4001::rq_total::12\n\
             {CLUSTER}::127.0.0.1:4001::rq_error::5\n\
             {CLUSTER}::127.0.0.1:4001::health_flags::/failed_outlier_check\n\
             {CLUSTER}::127.0.0.1:4002::rq_total::30\n\
             {CLUSTER}::127.0.0.1:4002::health_flags::healthy\n\
             other::127.0.0.1:9::rq_total::1\n"
        );
        let hosts = cluster_hosts(&text, CLUSTER);
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            hosts["127.0.0.1:4001"],
            HostState {
                rq_total: 12,
                rq_error: 5,
                ejected: true
            }
        );
        assert!(!hosts["127.0.0.1:4002"].ejected);
    }
}
