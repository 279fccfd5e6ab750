//! What a failed local case shows of Envoy's stats, IO-free: first the clusters the
//! case's route sends to, with how each stat moved while the case measured; then what
//! moved elsewhere; gauges of limits nobody set left out. Every non-zero stat is kept
//! as a dump for the JSON report only.

use std::collections::BTreeMap;

use super::plan::{ClusterPlan, PathMatch, Plan, RouteAction, RoutePlan, VirtualHost};
use crate::suite::{Case, Entry};
use crate::targets::DiagnosticSection;
use crate::targets::proxy_stats::StatsSnapshot;

/// The stat families of a cluster that explain where requests went and why they failed.
const CLUSTER_STATS: &[&str] = &[
    "upstream_rq_",
    "upstream_cx_",
    "outlier_detection.",
    "membership_",
    "circuit_breakers.",
];

/// The Envoy clusters the case's requests are routed to: the route Envoy would pick
/// for the case's host, path, method and headers (virtual host by exact name, then
/// wildcard, then `*`; the first matching route of its table, which the plan keeps in
/// Envoy's order). When no route matches, every route of the virtual host counts;
/// a Service without a GAMMA route, its own cluster.
pub(crate) fn route_clusters(plan: &Plan, case: &Case) -> Vec<String> {
    let host = case
        .spec
        .request
        .as_ref()
        .and_then(|r| r.host.as_deref())
        .or(case.url.host_str())
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let routes: Vec<&RoutePlan> = match &case.entry {
        // A call to a pod's own address takes no route (Istio's passthrough).
        Entry::Pod { .. } => Vec::new(),
        Entry::Gateway(gateway) => plan
            .gateways
            .iter()
            .filter(|g| &g.gateway == gateway)
            .flat_map(|g| g.ports.iter().filter(|p| p.port == case.port))
            .filter_map(|port| virtual_host_for(port.virtual_hosts(), host))
            .flat_map(|vh| vh.routes.iter())
            .collect(),
        Entry::Service { service, from } => plan
            .mesh_route_for(from, service, case.port)
            .into_iter()
            .flat_map(|m| m.routes.iter())
            .collect(),
    };
    let chosen: Vec<&RoutePlan> = match routes.iter().find(|r| route_matches(r, case)) {
        Some(route) => vec![route],
        None => routes,
    };
    let mut clusters: Vec<String> = chosen
        .iter()
        .flat_map(|r| match &r.action {
            RouteAction::Cluster(name) => vec![name.clone()],
            RouteAction::Weighted(weights) => weights.iter().map(|(c, _)| c.clone()).collect(),
            RouteAction::DirectResponse(_) => Vec::new(),
        })
        .collect();
    if clusters.is_empty()
        && let Entry::Service { service, .. } = &case.entry
    {
        clusters.extend(
            plan.clusters
                .iter()
                .filter(|c| &c.service == service && c.port == case.port)
                .map(|c| c.name.clone()),
        );
    }
    clusters.dedup();
    clusters
}

fn virtual_host_for<'p>(hosts: Vec<&'p VirtualHost>, host: &str) -> Option<&'p VirtualHost> {
    let wildcard_of = |vh: &&VirtualHost| {
        vh.hostname
            .strip_prefix("*.")
            .filter(|suffix| {
                host.strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            })
            .map(str::len)
    };
    hosts
        .iter()
        .find(|vh| vh.hostname == host)
        .or_else(|| {
            hosts
                .iter()
                .filter(|vh| wildcard_of(vh).is_some())
                .max_by_key(|vh| wildcard_of(vh))
        })
        .or_else(|| hosts.iter().find(|vh| vh.hostname == "*"))
        .copied()
}

fn route_matches(route: &RoutePlan, case: &Case) -> bool {
    let path = case.url.path();
    let path_ok = match &route.path {
        PathMatch::Exact(exact) => path == exact,
        PathMatch::Prefix(prefix) => {
            let prefix = prefix.trim_end_matches('/');
            path == prefix
                || prefix.is_empty()
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        PathMatch::Regex(pattern) => {
            regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(path))
        }
    };
    let method_ok = route.method.as_ref().is_none_or(|m| *m == case.method);
    let headers_ok = route.headers.iter().all(|condition| {
        condition.accepts(
            case.spec
                .request
                .iter()
                .flat_map(|r| r.headers.iter())
                .find(|(n, _)| n.eq_ignore_ascii_case(&condition.name))
                .map(|(_, v)| v.as_str()),
        )
    });
    let query: Vec<(String, String)> = case.url.query_pairs().into_owned().collect();
    let query_ok = route.query_params.iter().all(|condition| {
        condition.accepts(
            query
                .iter()
                .find(|(n, _)| *n == condition.name)
                .map(|(_, v)| v.as_str()),
        )
    });
    path_ok && method_ok && headers_ok && query_ok
}

/// The stats sections of a failed case, and the complete dump.
pub(crate) struct StatsDiagnostics {
    pub shown: Vec<DiagnosticSection>,
    pub dump: DiagnosticSection,
}

/// Sections from the stats `now`, focused on `clusters`, with changes since `baseline`
/// (the snapshot when the case started measuring) where there is one.
pub(crate) fn stats_diagnostics(
    plan: &Plan,
    clusters: &[String],
    now_text: &str,
    baseline: Option<&StatsSnapshot>,
) -> StatsDiagnostics {
    let now = StatsSnapshot::parse(now_text);
    let changes = baseline.map(|before| now.changes_since(before));
    let mut shown = Vec::new();
    let mut focused = Vec::new();
    for name in clusters {
        let prefix = format!("cluster.{name}.");
        let policy = plan.clusters.iter().find(|c| &c.name == name);
        for (stat, value) in now.values.range(prefix.clone()..) {
            let Some(short) = stat.strip_prefix(&prefix) else {
                break;
            };
            if !CLUSTER_STATS.iter().any(|family| short.contains(family))
                || untouched_limit(short, policy)
            {
                continue;
            }
            let change = changes.as_ref().and_then(|c| c.get(stat)).copied();
            // A cluster with no healthy host is news even at zero.
            if *value == 0 && change.is_none() && short != "membership_healthy" {
                continue;
            }
            focused.push(match change {
                Some(change) => (0, format!("{stat}: {value} ({change:+})")),
                None => (1, format!("{stat}: {value}")),
            });
        }
    }
    // What moved during the case first, then the state it left.
    focused.sort_by_key(|(unchanged, _)| *unchanged);
    let mut focused: Vec<String> = focused.into_iter().map(|(_, line)| line).collect();
    if focused.is_empty() {
        focused.push(format!("no stats for {}", clusters.join(", ")));
    }
    shown.push(DiagnosticSection {
        title: match &changes {
            Some(_) => "Envoy stats of the clusters the case's route uses (change while the case measured)".into(),
            None => "Envoy stats of the clusters the case's route uses (the case failed before measuring: no change to show)".into(),
        },
        body: focused.join("\n"),
    });
    if let Some(changes) = &changes {
        let elsewhere: Vec<String> = changes
            .iter()
            .filter(|(stat, _)| {
                !clusters
                    .iter()
                    .any(|name| stat.starts_with(&format!("cluster.{name}.")))
            })
            .filter(|(stat, _)| {
                let cluster = stat.starts_with("cluster.outbound|")
                    && CLUSTER_STATS.iter().any(|family| stat.contains(family));
                // The gateway's side of a failed TLS handshake.
                let tls = stat.starts_with("listener.") && stat.contains(".ssl.");
                (cluster && !stat.contains(".remaining_")) || tls
            })
            .map(|(stat, change)| {
                let value = now.values.get(stat).copied().unwrap_or_default();
                format!("{stat}: {value} ({change:+})")
            })
            .collect();
        if !elsewhere.is_empty() {
            shown.push(DiagnosticSection {
                title: "Envoy stats that changed elsewhere while the case measured".into(),
                body: elsewhere.join("\n"),
            });
        }
    }
    let dump = now_text
        .lines()
        .filter(|l| !l.ends_with(": 0") && !l.ends_with(": No recorded values"))
        .collect::<Vec<_>>()
        .join("\n");
    StatsDiagnostics {
        shown,
        dump: DiagnosticSection {
            title: "Envoy stats (every non-zero value)".into(),
            body: dump,
        },
    }
}

/// A `circuit_breakers.<priority>.remaining_*` gauge of a threshold the cluster's
/// DestinationRule does not set: it counts down from a limit nobody chose (2^32-1, or
/// 2^64-1 for connection pools, which Istio never limits), which only reads as noise.
fn untouched_limit(short: &str, cluster: Option<&ClusterPlan>) -> bool {
    let Some(remaining) = short
        .strip_prefix("circuit_breakers.")
        .and_then(|rest| rest.split_once(".remaining_"))
        .map(|(_, what)| what)
    else {
        return false;
    };
    let policy = cluster.and_then(|c| c.policy.as_ref());
    let set = match remaining {
        "cx" => policy.and_then(|p| p.max_connections).is_some(),
        "pending" => policy.and_then(|p| p.max_pending_requests).is_some(),
        "rq" => policy.and_then(|p| p.max_requests).is_some(),
        "retries" => policy.and_then(|p| p.max_retries).is_some(),
        _ => false,
    };
    !set
}

/// Every cluster of the plan, for diagnostics that have no case to focus on.
pub(crate) fn all_clusters(plan: &Plan) -> Vec<String> {
    let names: BTreeMap<&str, ()> = plan
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), ()))
        .collect();
    names.into_keys().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(name: &str) -> crate::suite::Suite {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        crate::suite::load_suite(&root.join("suites").join(name)).unwrap()
    }

    fn plan_of(suite: &crate::suite::Suite) -> Plan {
        super::super::plan::plan_fixtures(&suite.fixtures).unwrap()
    }

    #[test]
    fn route_clusters_are_those_of_the_route_the_case_takes() {
        let mesh = suite("gamma-mesh.yaml");
        let plan = plan_of(&mesh);
        assert!(
            plan.clusters
                .iter()
                .any(|c| c.name.contains("||backend.istio-test")),
            "the parent Service has a cluster of its own"
        );
        let split = mesh
            .cases
            .iter()
            .find(|c| c.name == "mesh-weighted-split")
            .unwrap();
        assert_eq!(
            route_clusters(&plan, split),
            [
                "outbound|80||backend-v1.istio-test.svc.cluster.local",
                "outbound|80||backend-v2.istio-test.svc.cluster.local"
            ]
        );
        let canary = suite("ingress-canary.yaml");
        let plan = plan_of(&canary);
        let unrouted = canary
            .cases
            .iter()
            .find(|c| c.name == "unknown-host-not-routed")
            .unwrap();
        assert_eq!(route_clusters(&plan, unrouted), Vec::<String>::new());
    }

    #[test]
    fn stats_show_changes_first_and_leave_untouched_limits_out() {
        let breaking = suite("circuit-breaking.yaml");
        let plan = plan_of(&breaking);
        let cluster = "outbound|80||slow-backend.istio-test.svc.cluster.local";
        let stat = |s: &str| format!("cluster.{cluster}.{s}");
        let before = StatsSnapshot::parse(&format!(
            "{}: 1\n{}: 1\n{}: 5\n",
            stat("circuit_breakers.default.remaining_cx"),
            stat("upstream_rq_200"),
            stat("upstream_rq_total")
        ));
        let now = format!(
            "{}: 18446744073709551614\n{}: 4294967295\n{}: 1\n{}: 3\n{}: 1\n{}: 9\n{}: 2\n{}: 0\n\
             cluster.outbound|80||other.ns.svc.cluster.local.upstream_rq_503: 4\nserver.live: 1\n",
            stat("circuit_breakers.default.remaining_cx_pools"),
            stat("circuit_breakers.default.remaining_retries"),
            stat("circuit_breakers.default.remaining_cx"),
            stat("upstream_rq_200"),
            stat("upstream_rq_pending_overflow"),
            stat("upstream_rq_total"),
            stat("membership_healthy"),
            stat("upstream_rq_timeout"),
        );
        let view = stats_diagnostics(&plan, &[cluster.to_owned()], &now, Some(&before));
        let focused = &view.shown[0];
        assert!(
            focused.title.contains("change while the case measured"),
            "{}",
            focused.title
        );
        let expected = [
            stat("membership_healthy") + ": 2 (+2)",
            stat("upstream_rq_200") + ": 3 (+2)",
            stat("upstream_rq_pending_overflow") + ": 1 (+1)",
            stat("upstream_rq_total") + ": 9 (+4)",
            // maxConnections is set: its gauge stays, after the changes.
            stat("circuit_breakers.default.remaining_cx") + ": 1",
        ];
        assert_eq!(focused.body.lines().collect::<Vec<_>>(), expected);
        let elsewhere = &view.shown[1];
        assert_eq!(
            elsewhere.body,
            "cluster.outbound|80||other.ns.svc.cluster.local.upstream_rq_503: 4 (+4)"
        );
        assert!(
            view.dump
                .body
                .contains("remaining_cx_pools: 18446744073709551614")
        );
        assert!(view.dump.body.contains("server.live: 1"));
    }
}
