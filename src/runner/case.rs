//! One case: convergence, the measured request loop, and the verdict.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::events::{CaseResult, Event, LatencySummary, Outcome, PhaseDetail};
use super::policy;
use crate::report::one_line;
use crate::stats::{Decision, ExpectedShare, SequentialSplitTest, SplitTestConfig};
use crate::suite::{Case, ConvergenceSpec, Suite};
use crate::targets::{RunningTarget, SampleSource};
use crate::traffic::{ErrorKind, Flow, IdentityRule, LoadSpec, RequestTemplate, Sample, Tally};

/// How many of a case's first responses are shown, like the seed's ten curls.
const SHOWN_RESPONSES: u64 = 10;
/// Progress events are throttled to this interval.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Upper bound for a case without a split check and without an explicit count; the
/// loader requires a count there, so this only guards future case kinds.
const DEFAULT_REQUESTS: u64 = 100;

pub(crate) async fn run_case(
    env: &impl RunningTarget,
    suite: &Suite,
    case: &Case,
    emit: &mut (dyn FnMut(Event) + Send),
) -> CaseResult {
    let started = Instant::now();
    if let Some(reason) = &case.spec.skip {
        return CaseResult::without_traffic(
            &suite.name,
            &case.name,
            Outcome::Skipped,
            reason.clone(),
        );
    }
    let mut source = env
        .sample_source(&case.entry, case.port)
        .await
        .map_err(|err| {
            format!(
                "no way to send requests to {} port {}: {}",
                case.entry,
                case.port,
                one_line(&err)
            )
        });
    let measured = match &mut source {
        Ok(source) => measure(env, source, suite, case, emit).await,
        Err(message) => Err(message.clone()),
    };
    let mut result = match measured {
        Ok(result) => result,
        Err(message) => {
            CaseResult::without_traffic(&suite.name, &case.name, Outcome::Failed, message)
        }
    };
    result.warnings = warnings(case);
    if result.outcome == Outcome::Failed {
        result.diagnostics = env.diagnostics(suite).await;
        if let Some(section) = source.as_ref().ok().and_then(|source| source.diagnostics()) {
            result.diagnostics.insert(0, section);
        }
    }
    result.duration = started.elapsed();
    result
}

fn request_template(
    case: &Case,
    connect_to: Option<SocketAddr>,
) -> Result<RequestTemplate, String> {
    let method = http::Method::from_bytes(case.spec.request.method.as_bytes())
        .map_err(|_| format!("invalid method `{}`", case.spec.request.method))?;
    Ok(RequestTemplate {
        url: case.url.clone(),
        connect_to,
        host_override: case.spec.request.host.clone(),
        headers: case
            .spec
            .request
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        method,
        tls: case.tls.clone(),
    })
}

/// What every report must say about a case whatever its outcome.
fn warnings(case: &Case) -> Vec<String> {
    let mut warnings = Vec::new();
    if case.tls.insecure_skip_verify {
        warnings.push(format!(
            "TLS certificate verification is OFF for {} (request.tls.insecureSkipVerify): \
             any certificate for any name was accepted, so the answers may not have come from the gateway",
            case.url
        ));
    }
    warnings
}

fn identity_rule(case: &Case) -> Result<IdentityRule, String> {
    if let Some(header) = &case.spec.identity.header {
        return Ok(IdentityRule::Header(header.clone()));
    }
    if let Some(re) = &case.spec.identity.regex {
        return regex::Regex::new(re)
            .map(IdentityRule::BodyRegex)
            .map_err(|err| format!("invalid identity regex: {err}"));
    }
    Ok(IdentityRule::Body)
}

/// Whether one response counts as "the data plane serves this case as configured".
fn is_good(case: &Case, sample: &Sample<'_>) -> bool {
    if sample.error.is_some() {
        return false;
    }
    if let Some(expected) = case.spec.expect.status {
        return sample.status == Some(expected);
    }
    // A failing host's answers come from the backend too: the route works.
    if let Some(outlier) = &case.outlier_detection {
        return sample.status == Some(200) || sample.status == Some(outlier.failing_status);
    }
    if let Some(split) = &case.split {
        return sample
            .identity
            .is_some_and(|id| split.backends.iter().any(|b| b.identity == id));
    }
    sample.status.is_some_and(|s| s < 500)
}

/// The data plane lags the API: wait for `consecutive` good responses in a row, with
/// backoff between attempts, before measuring anything.
async fn converge(
    source: &mut impl SampleSource,
    case: &Case,
    template: &RequestTemplate,
    identity: &IdentityRule,
    spec: &ConvergenceSpec,
) -> Result<(), String> {
    let deadline = Instant::now() + spec.timeout;
    let mut backoff = Duration::from_millis(50);
    let mut last_bad = String::from("no response yet");
    loop {
        let load = LoadSpec {
            request: template.clone(),
            requests: u64::from(spec.consecutive),
            concurrency: 1,
            timeout: case.spec.traffic.timeout,
            keep_alive: case.spec.traffic.keep_alive,
            identity: identity.clone(),
        };
        let mut good = 0u32;
        let mut rejected = false;
        source
            .send(&load, |sample| {
                if is_good(case, sample) {
                    good += 1;
                    Flow::Continue
                } else {
                    last_bad = describe(sample);
                    rejected |= sample.error == Some(ErrorKind::Certificate);
                    Flow::Stop
                }
            })
            .await
            .map_err(|err| one_line(&err))?;
        if good >= spec.consecutive {
            return Ok(());
        }
        // A certificate our verifier refuses stays refused: waiting out the timeout
        // would only delay the answer.
        if rejected {
            return Err(format!(
                "the gateway's certificate for {} was rejected: {last_bad}",
                case.url.host_str().unwrap_or_default()
            ));
        }
        if Instant::now() + backoff > deadline {
            return Err(format!(
                "the data plane did not converge within {}: last response was {last_bad}",
                humantime::format_duration(spec.timeout)
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

fn describe(sample: &Sample<'_>) -> String {
    match (sample.error, sample.status) {
        (Some(err), _) => match sample.error_detail {
            Some(detail) => format!("a failed request ({err}: {detail})"),
            None => format!("a failed request ({err})"),
        },
        (None, Some(status)) => match sample.identity {
            Some(id) => format!("{status} `{id}`"),
            None => format!("{status} with no backend identity"),
        },
        (None, None) => "no response".to_string(),
    }
}

async fn measure(
    env: &impl RunningTarget,
    source: &mut impl SampleSource,
    suite: &Suite,
    case: &Case,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Result<CaseResult, String> {
    let template = request_template(case, source.connect_to())?;
    let via = source.describe();
    let identity = identity_rule(case)?;

    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: super::events::Phase::Converge,
        detail: PhaseDetail::Text(format!(
            "{}: waiting for {} good responses in a row from {} {via}",
            case.name, suite.spec.convergence.consecutive, case.url
        )),
    });
    converge(source, case, &template, &identity, &suite.spec.convergence).await?;

    let policy_load = || LoadSpec {
        request: template.clone(),
        requests: case.spec.traffic.requests.unwrap_or(DEFAULT_REQUESTS),
        concurrency: case.spec.traffic.concurrency,
        timeout: case.spec.traffic.timeout,
        keep_alive: case.spec.traffic.keep_alive,
        identity: identity.clone(),
    };
    if let Some(expected) = &case.circuit_breaking {
        return policy::run_circuit_breaking(
            env,
            source,
            suite,
            case,
            expected,
            policy_load(),
            emit,
        )
        .await;
    }
    if let Some(expected) = &case.outlier_detection {
        return policy::run_outlier_detection(
            env,
            source,
            suite,
            case,
            expected,
            policy_load(),
            emit,
        )
        .await;
    }

    let mut split_test = match &case.split {
        Some(split) => {
            let expected: Vec<ExpectedShare> = split
                .backends
                .iter()
                .map(|b| ExpectedShare {
                    backend: b.service.clone(),
                    weight: b.weight,
                })
                .collect();
            let config = SplitTestConfig {
                alpha: split.alpha,
                power: split.power,
                min_detectable_deviation: split.min_detectable_deviation,
                max_requests: None,
            };
            Some(SequentialSplitTest::new(&expected, config).map_err(|err| err.to_string())?)
        }
        None => None,
    };
    let identities: Vec<String> = case
        .split
        .as_ref()
        .map(|s| s.backends.iter().map(|b| b.identity.clone()).collect())
        .unwrap_or_default();
    let requests = match (&split_test, case.spec.traffic.requests) {
        (Some(test), Some(cap)) => cap.min(test.max_requests()),
        (Some(test), None) => test.max_requests(),
        (None, Some(cap)) => cap,
        (None, None) => DEFAULT_REQUESTS,
    };
    let load = LoadSpec {
        request: template,
        requests,
        concurrency: case.spec.traffic.concurrency,
        timeout: case.spec.traffic.timeout,
        keep_alive: case.spec.traffic.keep_alive,
        identity,
    };

    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: super::events::Phase::Traffic,
        detail: PhaseDetail::Text(format!(
            "{}: up to {requests} requests to {} {via}, concurrency {}",
            case.name, case.url, load.concurrency
        )),
    });
    let mut seen = 0u64;
    let mut unexpected_status: Option<String> = None;
    let mut failed_request: Option<String> = None;
    let mut per_backend = vec![0u64; identities.len()];
    let mut unidentified = 0u64;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let stop_on_first_failure = split_test.is_some();
    let expected_status = case.spec.expect.status;
    let tally = source
        .send(&load, |sample| {
            seen += 1;
            if seen <= SHOWN_RESPONSES {
                emit(Event::Response {
                    suite: suite.name.clone(),
                    case: case.name.clone(),
                    status: sample.status,
                    line: match (sample.error, sample.identity) {
                        (Some(err), _) => format!("({err})"),
                        (None, Some(id)) => id.to_string(),
                        (None, None) => String::new(),
                    },
                });
            }
            let mut flow = Flow::Continue;
            if let Some(err) = sample.error {
                failed_request.get_or_insert_with(|| match sample.error_detail {
                    Some(detail) => format!("request {seen} failed: {err}: {detail}"),
                    None => format!("request {seen} failed: {err}"),
                });
                if stop_on_first_failure {
                    flow = Flow::Stop;
                }
            } else if let Some(expected) = expected_status
                && sample.status != Some(expected)
            {
                unexpected_status.get_or_insert_with(|| {
                    format!(
                        "request {seen} got {} (expected {expected})",
                        describe(sample)
                    )
                });
                if stop_on_first_failure {
                    flow = Flow::Stop;
                }
            }
            if let Some(test) = split_test.as_mut()
                && sample.error.is_none()
            {
                let index = sample
                    .identity
                    .and_then(|id| identities.iter().position(|known| known == id));
                let decision = match index {
                    Some(i) => {
                        per_backend[i] += 1;
                        test.observe(i)
                    }
                    None => {
                        unidentified += 1;
                        test.observe_unknown()
                    }
                };
                if decision != Decision::Continue {
                    flow = Flow::Stop;
                }
            }
            if seen.is_multiple_of(64) && last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                let mut backends: BTreeMap<String, u64> = identities
                    .iter()
                    .cloned()
                    .zip(per_backend.iter().copied())
                    .collect();
                if unidentified > 0 {
                    backends.insert("(unidentified)".into(), unidentified);
                }
                emit(Event::TrafficProgress {
                    suite: suite.name.clone(),
                    case: case.name.clone(),
                    requests: seen,
                    max_requests: requests,
                    backends,
                    requests_per_second: seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
                });
            }
            flow
        })
        .await
        .map_err(|err| one_line(&err))?;

    let split = split_test.as_ref().map(SequentialSplitTest::verdict);
    let mut failures = Vec::new();
    if let Some(text) = failed_request {
        failures.push(text);
    }
    if let Some(text) = unexpected_status {
        failures.push(text);
    }
    if let Some(verdict) = &split {
        match verdict.decision {
            Decision::Pass => {}
            Decision::Fail => failures.push(verdict.reason.clone()),
            Decision::Continue => failures.push(format!(
                "the split is undecided after {} requests (the cap); {}",
                verdict.total, verdict.reason
            )),
        }
    }
    let outcome = if failures.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    let message = if failures.is_empty() {
        pass_message(case, &tally, split.as_ref())
    } else {
        failures.join("; ")
    };
    Ok(result_from(suite, case, outcome, message, &tally, split))
}

fn pass_message(case: &Case, tally: &Tally, split: Option<&crate::stats::SplitVerdict>) -> String {
    let status = case
        .spec
        .expect
        .status
        .map(|s| format!(", all {s}"))
        .unwrap_or_default();
    match split {
        Some(verdict) => format!("{} requests{status}; {}", tally.requests, verdict.reason),
        None => format!("{} requests{status}", tally.requests),
    }
}

pub(super) fn result_from(
    suite: &Suite,
    case: &Case,
    outcome: Outcome,
    message: String,
    tally: &Tally,
    split: Option<crate::stats::SplitVerdict>,
) -> CaseResult {
    let ms = |q: f64| tally.latency_quantile(q).as_secs_f64() * 1000.0;
    CaseResult {
        suite: suite.name.clone(),
        name: case.name.clone(),
        outcome,
        duration: Duration::ZERO,
        requests: tally.requests,
        backends: tally.identities.clone(),
        status_codes: tally.status_codes.clone(),
        errors: tally
            .errors
            .iter()
            .map(|(kind, n)| (kind.to_string(), *n))
            .collect(),
        envoy_overloaded: tally.envoy_overloaded,
        proxy_counters: BTreeMap::new(),
        requests_per_second: tally.requests_per_second(),
        latency: (tally.requests > 0).then(|| LatencySummary {
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: ms(1.0),
        }),
        split,
        message,
        warnings: Vec::new(),
        diagnostics: Vec::new(),
    }
}
