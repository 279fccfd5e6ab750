//! Outlier detection: a Service with failing hosts (their own Deployment, same pod
//! labels) behind a DestinationRule with `consecutive5xxErrors`. Asserted as observed
//! behaviour, then cross-checked with the proxy:
//!
//! 1. Requests go one at a time until the proxy reports the expected number of
//!    ejections (`outlier_detection.ejections_active`), within a time bound; more is a
//!    failure (maxEjectionPercent not respected).
//!    Then it waits until the proxy's worker threads have the ejections too (see
//!    [`settle_host_updates`]).
//! 2. A measured run: ejected hosts receive no request at all (their `rq_total` in
//!    `/clusters` stays put), every other host keeps serving, and the client sees a 5xx
//!    only from failing hosts that were not ejected (none when all of them were); the
//!    5xx the client saw equal the `rq_error` the proxy counted on the hosts.
//!
//! The failing status must be one Istio's default retry policy does not retry (500,
//! not 503): a retried 503 goes to another host and the client never sees it, which
//! hides the failure from the client although the proxy still ejects the host.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::super::case::result_from;
use super::super::case_error::CaseError;
use super::super::events::{CaseMessage, CaseResult, Event, Outcome, Phase, PhaseDetail};
use super::proxy::{HostState, admin_page, cluster_hosts, cluster_stat, server_stat};
use crate::suite::{Case, ExpectedOutlierDetection, Suite};
use crate::targets::{RunningTarget, SampleSource};
use crate::traffic::{Flow, LoadSpec};

const EJECTION_COUNTERS: &[&str] = &[
    "outlier_detection.ejections_active",
    "outlier_detection.ejections_enforced_total",
    "outlier_detection.ejections_enforced_consecutive_5xx",
    "outlier_detection.ejections_overflow",
];

async fn hosts(
    env: &impl RunningTarget,
    case: &Case,
    cluster: &str,
) -> Result<BTreeMap<String, HostState>, CaseError> {
    let text = admin_page(env, case, "/clusters").await?;
    Ok(cluster_hosts(&text, cluster))
}

async fn ejection_counters(
    env: &impl RunningTarget,
    case: &Case,
    cluster: &str,
) -> Result<BTreeMap<String, u64>, CaseError> {
    let stats = admin_page(env, case, "/stats").await?;
    Ok(EJECTION_COUNTERS
        .iter()
        .map(|name| {
            (
                format!("{cluster}.{name}"),
                cluster_stat(&stats, cluster, name).unwrap_or_default(),
            )
        })
        .collect())
}

/// Envoy's `common_lb_config.update_merge_window` when unset, as Istio leaves it.
const UPDATE_MERGE_WINDOW: Duration = Duration::from_secs(1);
const HELD_UPDATES_DELIVERED: &str = "cluster_manager.cluster_updated_via_merge";

/// Waits until no ejection can still be held back from the load balancers.
///
/// An ejection shows in `/clusters` and the stats at once, but Envoy hands a
/// health-only host change to its worker threads at once only when the previous
/// hand-over is older than the merge window; otherwise the change waits for the window
/// and the workers keep picking the ejected host until then (docs/policy.md, "Outlier
/// detection"). So: done when a held-back change is delivered, or when the window has
/// passed since the last ejection we saw (seen after it happened, so the window
/// really has passed) and nothing can be waiting any more.
async fn settle_host_updates(
    env: &impl RunningTarget,
    case: &Case,
    last_ejection_seen: Instant,
) -> Result<(), CaseError> {
    let delivered = || async {
        let stats = admin_page(env, case, "/stats").await?;
        Ok::<_, CaseError>(server_stat(&stats, HELD_UPDATES_DELIVERED).unwrap_or_default())
    };
    let before = delivered().await?;
    let mut backoff = Duration::from_millis(20);
    while last_ejection_seen.elapsed() < UPDATE_MERGE_WINDOW {
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(200));
        if delivered().await? > before {
            break;
        }
    }
    Ok(())
}

/// Counts what the client saw: responses by status.
#[derive(Default)]
struct Seen {
    ok: u64,
    failing: u64,
    other: u64,
    first_other: Option<String>,
}

async fn send(
    source: &mut impl SampleSource,
    load: &LoadSpec,
    failing_status: u16,
    seen: &mut Seen,
) -> Result<crate::traffic::Tally, CaseError> {
    source
        .send(load, |sample| {
            match (sample.error, sample.status) {
                (None, Some(200)) => seen.ok += 1,
                (None, Some(status)) if status == failing_status => seen.failing += 1,
                (error, status) => {
                    seen.other += 1;
                    seen.first_other.get_or_insert_with(|| match error {
                        Some(err) => format!("a failed request ({err})"),
                        None => format!(
                            "{} `{}`",
                            status.map_or_else(|| "---".into(), |s| s.to_string()),
                            sample.identity.unwrap_or_default()
                        ),
                    });
                }
            }
            Flow::Continue
        })
        .await
        .map_err(CaseError::from)
}

pub(crate) async fn run_outlier_detection(
    env: &impl RunningTarget,
    source: &mut impl SampleSource,
    suite: &Suite,
    case: &Case,
    expected: &ExpectedOutlierDetection,
    load: LoadSpec,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Result<CaseResult, CaseError> {
    let cluster = &expected.cluster;
    let active_key = format!("{cluster}.outlier_detection.ejections_active");
    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: Phase::Traffic,
        detail: PhaseDetail::Ejecting {
            case: case.name.clone(),
            ejected_hosts: expected.ejected_hosts,
            hosts: expected.hosts,
            cluster: cluster.clone(),
            within: expected.ejection_timeout,
        },
    });
    let before = ejection_counters(env, case, cluster).await?;

    // Phase 1: drive the failing hosts into ejection. A round is one request per host,
    // sequential, so round robin gives every host its share.
    let round = LoadSpec {
        requests: u64::from(expected.hosts),
        concurrency: 1,
        ..load.clone()
    };
    let started = Instant::now();
    let mut warmup = Seen::default();
    let mut warmup_requests = 0u64;
    let deadline = started + expected.ejection_timeout;
    let mut counters = before.clone();
    let mut last_ejection_seen = started;
    loop {
        let active = counters.get(&active_key).copied().unwrap_or_default();
        if active >= u64::from(expected.ejected_hosts) || Instant::now() >= deadline {
            break;
        }
        warmup_requests += send(source, &round, expected.failing_status, &mut warmup)
            .await?
            .requests;
        let previous = counters.get(&active_key).copied();
        counters = ejection_counters(env, case, cluster).await?;
        if counters.get(&active_key).copied() != previous {
            last_ejection_seen = Instant::now();
        }
    }
    let active = counters.get(&active_key).copied().unwrap_or_default();
    let mut failures = Vec::new();
    if warmup.other > 0 {
        failures.push(format!(
            "{} responses were neither 200 nor the failing hosts' {}; the first was {}",
            warmup.other,
            expected.failing_status,
            warmup.first_other.clone().unwrap_or_default()
        ));
    }
    if active < u64::from(expected.ejected_hosts) {
        failures.push(format!(
            "{active} of {cluster}'s hosts were ejected after {warmup_requests} requests in {}, expected {} (the client saw {} answers {} from the {} failing hosts; consecutive5xxErrors {})",
            humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64)),
            expected.ejected_hosts,
            warmup.failing,
            expected.failing_status,
            expected.failing_hosts,
            expected
                .consecutive_5xx
                .map_or_else(|| "not set".to_string(), |n| n.to_string()),
        ));
        let mut result = CaseResult::without_traffic(
            &suite.name,
            &case.name,
            Outcome::Failed,
            CaseMessage::Verdict(failures.join("; ")),
        );
        result.requests = warmup_requests;
        result.proxy_counters = deltas(&before, &counters);
        return Ok(result);
    }

    settle_host_updates(env, case, last_ejection_seen).await?;

    // Phase 2: the measured run, with the host table before and after.
    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: Phase::Traffic,
        detail: PhaseDetail::Ejected {
            case: case.name.clone(),
            ejected_hosts: active,
            after_requests: warmup_requests,
            measured_requests: load.requests,
        },
    });
    let hosts_before = hosts(env, case, cluster).await?;
    let mut seen = Seen::default();
    let tally = send(source, &load, expected.failing_status, &mut seen).await?;
    let hosts_after = hosts(env, case, cluster).await?;
    let counters_after = ejection_counters(env, case, cluster).await?;

    let ejected: Vec<&String> = hosts_after
        .iter()
        .filter(|(_, h)| h.ejected)
        .map(|(a, _)| a)
        .collect();
    let active_after = counters_after.get(&active_key).copied().unwrap_or_default();
    if hosts_after.len() != expected.hosts as usize {
        failures.push(format!(
            "the proxy lists {} hosts for {cluster}, the fixtures run {}",
            hosts_after.len(),
            expected.hosts
        ));
    }
    if ejected.len() != expected.ejected_hosts as usize
        || active_after != u64::from(expected.ejected_hosts)
    {
        failures.push(format!(
            "{} hosts are flagged failed_outlier_check and ejections_active is {active_after}, expected {} ejected (maxEjectionPercent caps how many)",
            ejected.len(),
            expected.ejected_hosts
        ));
    }
    let mut proxy_errors = 0u64;
    for (address, after) in &hosts_after {
        let was = hosts_before.get(address).cloned().unwrap_or_default();
        let received = after.rq_total.saturating_sub(was.rq_total);
        proxy_errors += after.rq_error.saturating_sub(was.rq_error);
        if after.ejected && received > 0 {
            failures.push(format!(
                "ejected host {address} still received {received} of {} requests",
                tally.requests
            ));
        }
        if !after.ejected && received == 0 {
            failures.push(format!(
                "host {address} is not ejected but received none of {} requests",
                tally.requests
            ));
        }
        if after.ejected
            && let Some(k) = expected.consecutive_5xx
            && after.rq_error < u64::from(k)
        {
            failures.push(format!(
                "host {address} was ejected after {} 5xx, fewer than consecutive5xxErrors {k}",
                after.rq_error
            ));
        }
    }
    if seen.other > 0 {
        failures.push(format!(
            "{} measured responses were neither 200 nor {}; the first was {}",
            seen.other,
            expected.failing_status,
            seen.first_other.clone().unwrap_or_default()
        ));
    }
    let all_failing_ejected = expected.ejected_hosts == expected.failing_hosts;
    if all_failing_ejected && seen.failing > 0 {
        failures.push(format!(
            "{} of {} responses after the ejection were {}: every failing host should be out of rotation",
            seen.failing, tally.requests, expected.failing_status
        ));
    }
    if !all_failing_ejected && seen.failing == 0 {
        failures.push(format!(
            "no response after the ejection was {}, but {} failing host(s) should still be in rotation (maxEjectionPercent)",
            expected.failing_status,
            expected.failing_hosts - expected.ejected_hosts
        ));
    }
    if proxy_errors != seen.failing {
        failures.push(format!(
            "the proxy counted {proxy_errors} 5xx on {cluster}'s hosts, the client saw {}",
            seen.failing
        ));
    }

    let (outcome, message) = if failures.is_empty() {
        (
            Outcome::Passed,
            format!(
                "{} of {} hosts ejected after {warmup_requests} requests ({} answered {}); then {} requests: {} x200, {} x{} ; ejected hosts received none",
                ejected.len(),
                expected.hosts,
                warmup.failing,
                expected.failing_status,
                tally.requests,
                seen.ok,
                seen.failing,
                expected.failing_status
            ),
        )
    } else {
        (Outcome::Failed, failures.join("; "))
    };
    let mut result = result_from(suite, case, outcome, message, &tally, None);
    result.proxy_counters = deltas(&before, &counters_after);
    result.proxy_counters.insert(active_key, active_after);
    for (address, after) in &hosts_after {
        let was = hosts_before.get(address).cloned().unwrap_or_default();
        result.proxy_counters.insert(
            format!(
                "{cluster}::{address}::rq_total{}",
                if after.ejected { " (ejected)" } else { "" }
            ),
            after.rq_total.saturating_sub(was.rq_total),
        );
    }
    Ok(result)
}

fn deltas(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                value.saturating_sub(before.get(name).copied().unwrap_or_default()),
            )
        })
        .collect()
}
