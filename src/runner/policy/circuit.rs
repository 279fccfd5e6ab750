//! Circuit breaking: a concurrent burst against a Service whose DestinationRule limits
//! its connection pool. What the limits guarantee, not a percentage, is asserted:
//!
//! Every request the backend serves occupies one upstream connection for at least the
//! backend's delay D, and Envoy keeps at most `maxConnections + endpoints × pools`
//! connections (its documented bound: a host picked by the load balancer always gets
//! one connection per pool, and each worker thread has its own pool). So a burst that
//! lasts T can see at most `(maxConnections + endpoints × workers) × ⌊T / D⌋` successes;
//! everything else must have overflowed, as a 503 carrying `x-envoy-overloaded: true`.
//! Within the limits, nothing overflows. Envoy's own `upstream_rq_pending_overflow`
//! must count exactly the overflowed responses the client saw (Istio's default retry
//! policy does not retry an overflow, so each one reaches the client), summed over the
//! client's proxy and the sidecars of the Service's pods: Istio puts the rule's
//! connection pool on each injected pod's inbound cluster too (`buildInboundCluster`,
//! istio/istio `pilot/pkg/networking/core/cluster_builder.go`), and with
//! `maxRequestsPerConnection 1` a request can overflow there while the client's next
//! connection is still being opened.

use std::collections::BTreeMap;

use super::super::case::result_from;
use super::super::case_error::CaseError;
use super::super::events::{CaseResult, Event, Outcome, Phase, PhaseDetail};
use super::proxy::{admin_page, cluster_stat, server_stat};
use crate::suite::{Case, ExpectedCircuitBreaking, OverflowExpectation, Suite};
use crate::targets::{RunningTarget, SampleSource};
use crate::traffic::{Flow, LoadSpec, Sample};

/// The counters read before and after the burst; deltas go into the case result.
const COUNTERS: &[&str] = &[
    "upstream_rq_pending_overflow",
    "upstream_cx_overflow",
    "upstream_rq_total",
    "upstream_rq_retry",
];

/// How the report names the counters of the Service's pods' sidecars, summed.
const SERVER_SIDE: &str = "inbound (the backend pods' sidecars)";

/// The overflows the sidecars of `service`'s pods have counted on their inbound
/// clusters (`cluster.inbound|5678||.upstream_rq_pending_overflow` on a cluster; the
/// local target prefixes each pod's), summed over the pods.
async fn server_side_overflows(
    env: &impl RunningTarget,
    service: &crate::manifest::ObjectKey,
) -> Result<u64, CaseError> {
    let pages =
        env.server_sidecar_stats(service)
            .await
            .map_err(|source| CaseError::ProxyAdmin {
                path: "/stats",
                source,
            })?;
    Ok(pages.iter().map(|page| inbound_overflows(page)).sum())
}

fn inbound_overflows(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            let cluster = name
                .strip_prefix("cluster.")?
                .strip_suffix(".upstream_rq_pending_overflow")?;
            cluster
                .contains("inbound|")
                .then(|| value.trim().parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

/// ` and N at the backend pods' sidecars`, when there were any.
fn server_side_part(overflows: u64) -> String {
    if overflows == 0 {
        String::new()
    } else {
        format!(" and {overflows} at the backend pods' sidecars (their inbound clusters)")
    }
}

/// How one response counts.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Served,
    Overflowed,
    Other,
}

fn classify(sample: &Sample<'_>) -> Kind {
    match (sample.error, sample.status) {
        (None, Some(200..=299)) if !sample.envoy_overloaded => Kind::Served,
        (None, Some(503)) if sample.envoy_overloaded => Kind::Overflowed,
        _ => Kind::Other,
    }
}

fn describe(sample: &Sample<'_>) -> String {
    match (sample.error, sample.status) {
        (Some(err), _) => format!("a failed request ({err})"),
        (None, Some(status)) => format!(
            "{status}{} `{}`",
            if sample.envoy_overloaded {
                " x-envoy-overloaded"
            } else {
                ""
            },
            sample.identity.unwrap_or_default()
        ),
        (None, None) => "no response".into(),
    }
}

async fn counters(
    env: &impl RunningTarget,
    case: &Case,
    cluster: &str,
) -> Result<(BTreeMap<String, u64>, Option<u64>), CaseError> {
    let stats = admin_page(env, case, "/stats").await?;
    let values = COUNTERS
        .iter()
        .map(|name| {
            (
                (*name).to_string(),
                cluster_stat(&stats, cluster, name).unwrap_or_default(),
            )
        })
        .collect();
    Ok((values, server_stat(&stats, "server.concurrency")))
}

pub(crate) async fn run_circuit_breaking(
    env: &impl RunningTarget,
    source: &mut impl SampleSource,
    suite: &Suite,
    case: &Case,
    expected: &ExpectedCircuitBreaking,
    load: LoadSpec,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Result<CaseResult, CaseError> {
    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: Phase::Traffic,
        detail: PhaseDetail::Burst {
            case: case.name.clone(),
            requests: load.requests,
            concurrency: load.concurrency,
            cluster: expected.cluster.clone(),
        },
    });
    let (before, workers) = counters(env, case, &expected.cluster).await?;
    let server_before = server_side_overflows(env, &expected.service).await?;
    let mut served = 0u64;
    let mut overflowed = 0u64;
    let mut other = 0u64;
    let mut first_other = None;
    let tally = source
        .send(&load, |sample| {
            match classify(sample) {
                Kind::Served => served += 1,
                Kind::Overflowed => overflowed += 1,
                Kind::Other => {
                    other += 1;
                    first_other.get_or_insert_with(|| describe(sample));
                }
            }
            Flow::Continue
        })
        .await?;
    let (after, _) = counters(env, case, &expected.cluster).await?;
    let server_after = server_side_overflows(env, &expected.service).await?;
    let delta: BTreeMap<String, u64> = after
        .iter()
        .map(|(name, value)| {
            let was = before.get(name).copied().unwrap_or_default();
            (name.clone(), value.saturating_sub(was))
        })
        .collect();

    let limits = format!(
        "maxConnections {}, http1MaxPendingRequests {}",
        expected
            .max_connections
            .map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
        expected
            .max_pending_requests
            .map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
    );
    let mut failures = Vec::new();
    if other > 0 {
        failures.push(format!(
            "{other} of {} responses were neither served (2xx) nor overflowed (503 x-envoy-overloaded); the first was {}",
            tally.requests,
            first_other.unwrap_or_default()
        ));
    }
    // The most successes the limits allow in the time the burst took (see the module
    // comment); `None` when the fixtures set no connection limit or no delay.
    let served_bound = match (expected.max_connections, expected.backend_delay) {
        (Some(max), Some(delay)) => {
            let pools = workers.unwrap_or(1).max(1);
            let rounds = (tally.elapsed.as_secs_f64() / delay.as_secs_f64()).floor() as u64;
            Some((u64::from(max) + u64::from(expected.endpoints) * pools) * rounds.max(1))
        }
        _ => None,
    };
    match expected.overflow {
        OverflowExpectation::Required => {
            if overflowed == 0 {
                failures.push(format!(
                    "expected overflow against {} ({limits}), but none of {} requests ({} at once) overflowed: {served} were served",
                    expected.cluster, tally.requests, load.concurrency
                ));
            } else if let Some(bound) = served_bound
                && served > bound
            {
                failures.push(format!(
                    "{served} requests were served in {:.3}s, more than the {bound} that {limits} allow with a backend delay of {}: the limits are not enforced",
                    tally.elapsed.as_secs_f64(),
                    humantime::format_duration(expected.backend_delay.unwrap_or_default())
                ));
            }
            if served == 0 {
                failures.push(format!(
                    "no request was served: the limits ({limits}) must still let some through"
                ));
            }
        }
        OverflowExpectation::None => {
            if overflowed > 0 {
                failures.push(format!(
                    "{overflowed} of {} requests overflowed ({limits}) at concurrency {}, which the limits allow",
                    tally.requests, load.concurrency
                ));
            }
        }
    }
    let pending_overflow = delta
        .get("upstream_rq_pending_overflow")
        .copied()
        .unwrap_or_default();
    // Pods whose sidecars were not there before (or restarted) start from zero.
    let server_overflow = server_after.saturating_sub(server_before);
    if pending_overflow + server_overflow != overflowed {
        failures.push(format!(
            "the proxy counted {pending_overflow} upstream_rq_pending_overflow for {}{}, the client saw {overflowed} overflowed responses",
            expected.cluster,
            server_side_part(server_overflow),
        ));
    }

    let (outcome, message) = if failures.is_empty() {
        (
            Outcome::Passed,
            format!(
                "{} requests, {served} served, {overflowed} overflowed (503 x-envoy-overloaded){}; proxy: upstream_rq_pending_overflow +{pending_overflow}{}, upstream_cx_overflow +{}",
                tally.requests,
                served_bound.map_or_else(String::new, |b| format!(
                    ", at most {b} servable in {:.3}s",
                    tally.elapsed.as_secs_f64()
                )),
                server_side_part(server_overflow),
                delta
                    .get("upstream_cx_overflow")
                    .copied()
                    .unwrap_or_default()
            ),
        )
    } else {
        (Outcome::Failed, failures.join("; "))
    };
    let mut result = result_from(suite, case, outcome, message, &tally, None);
    result.proxy_counters = delta
        .into_iter()
        .map(|(name, value)| (format!("{}.{name}", expected.cluster), value))
        .collect();
    if server_overflow > 0 {
        result.proxy_counters.insert(
            format!("{SERVER_SIDE}.upstream_rq_pending_overflow"),
            server_overflow,
        );
    }
    if let Some(workers) = workers {
        result
            .proxy_counters
            .insert("server.concurrency".into(), workers);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(status: Option<u16>, overloaded: bool) -> Sample<'static> {
        Sample {
            status,
            identity: None,
            latency: Duration::ZERO,
            error: None,
            error_detail: None,
            envoy_overloaded: overloaded,
            headers: Default::default(),
            body: None,
            websocket_replies: &[],
        }
    }

    #[test]
    fn only_a_503_with_the_overload_header_is_an_overflow() {
        assert_eq!(classify(&sample(Some(200), false)), Kind::Served);
        assert_eq!(classify(&sample(Some(503), true)), Kind::Overflowed);
        assert_eq!(classify(&sample(Some(503), false)), Kind::Other);
        assert_eq!(classify(&sample(Some(500), false)), Kind::Other);
        assert_eq!(classify(&sample(None, false)), Kind::Other);
    }

    #[test]
    fn inbound_overflows_sum_every_inbound_cluster_and_nothing_else() {
        let stats = "cluster.inbound|5678||.upstream_rq_pending_overflow: 2\n\
             cluster.pod-a~inbound|5678||.upstream_rq_pending_overflow: 1\n\
             cluster.outbound|80||x.ns.svc.cluster.local.upstream_rq_pending_overflow: 7\n\
             cluster.inbound|5678||.upstream_cx_overflow: 4\n";
        assert_eq!(inbound_overflows(stats), 3);
        assert_eq!(inbound_overflows(""), 0);
    }
}
