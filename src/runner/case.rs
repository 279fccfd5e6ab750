//! One case: convergence, the measured request loop, and the verdict.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::case_error::CaseError;
use super::events::{
    CaseMessage, CaseResult, Event, LatencySummary, Milestone, Outcome, Pending, Phase, PhaseDetail,
};
use super::policy;
use super::still_waiting::{StillWaiting, looks, say_while};
use crate::suite::expect::{ExpectedConditions, ResponseCheck, ResponseChecks};
use crate::suite::{Case, Entry, Expectation, Suite};
use crate::targets::{RunningTarget, SampleSource, StatsSnapshot};
use crate::traffic::{ErrorKind, Flow, LoadSpec, RequestTemplate, Tally};

/// How many of a case's first responses are shown, like the seed's ten curls.
const SHOWN_RESPONSES: u64 = 10;
/// How often a cluster's status is read again while it does not say what a
/// `conditions` case expects.
const STATUS_POLL: Duration = Duration::from_millis(250);
/// Why a target that does not reprogram its proxies mid-suite skips traffic after an
/// `apply`.
const EDITED_TRAFFIC_NOT_SERVED: &str = "the local target serves the fixtures as brought up and does not reprogram its Envoy after an `apply`: requests after an edit run on a cluster (`--target kube`)";
/// Progress events are throttled to this interval.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// Upper bound for a case whose checks do not size their sample and that gives no
/// count; the loader requires a count there, so this only guards future kinds.
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
            CaseMessage::Skipped(reason.clone()),
        );
    }
    // Status first: a route that is not accepted explains the traffic that follows.
    // It is judged even where the traffic after an edit cannot be sent: a wrong status
    // fails the case, not a skip.
    let mut status_passed = None;
    if let Some(conditions) = &case.conditions {
        match check_conditions(env, suite, case, conditions, emit).await {
            Ok(passed) => status_passed = Some(passed),
            Err(result) => {
                return finish(env, suite, case, *result, None, None, started).await;
            }
        }
    }
    if case.sends_traffic() && case.edited_fixtures.is_some() && !env.serves_edits() {
        return CaseResult::without_traffic(
            &suite.name,
            &case.name,
            Outcome::Skipped,
            CaseMessage::Skipped(EDITED_TRAFFIC_NOT_SERVED.to_owned()),
        );
    }
    if !case.sends_traffic() {
        let result = CaseResult::without_traffic(
            &suite.name,
            &case.name,
            Outcome::Passed,
            CaseMessage::Verdict(status_passed.unwrap_or_default()),
        );
        return finish(env, suite, case, result, None, None, started).await;
    }
    // Finding the entry's address can take minutes on a cloud load balancer: a phase
    // of its own, timed, and a long one says so.
    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: Phase::Address,
        detail: PhaseDetail::FindingEntry {
            case: case.name.clone(),
            entry: case.entry.clone(),
            port: case.port,
        },
    });
    let (_unchanging, finding) = tokio::sync::watch::channel(vec![Pending {
        object: case.entry.to_string(),
        reason: match &case.entry {
            Entry::Gateway(_) => "no address yet".to_owned(),
            Entry::Service { .. } | Entry::Pod { .. } => "no in-mesh client pod yet".to_owned(),
        },
    }]);
    let source = say_while(
        env.sample_source(&case.entry, case.port),
        &suite.name,
        Phase::Address,
        &finding,
        tokio::time::Instant::now(),
        looks(),
        emit,
    )
    .await
    .map_err(|err| CaseError::NoSampleSource {
        entry: case.entry.clone(),
        port: case.port,
        source: err,
    });
    let mut baseline = None;
    let (measured, source) = match source {
        Ok(mut source) => (
            measure(env, &mut source, suite, case, &mut baseline, emit).await,
            Some(source),
        ),
        Err(err) => (Err(err), None),
    };
    // Kept typed: reporters put the error and its causes into words.
    let mut result = measured.unwrap_or_else(|err| {
        CaseResult::without_traffic(
            &suite.name,
            &case.name,
            Outcome::Failed,
            CaseMessage::Error(Arc::new(err)),
        )
    });
    if let (Some(passed), CaseMessage::Verdict(message)) = (&status_passed, &mut result.message) {
        *message = format!("{passed}; {message}");
    }
    let source_diagnostics = source.as_ref().and_then(|source| source.diagnostics());
    finish(
        env,
        suite,
        case,
        result,
        baseline.as_ref(),
        source_diagnostics,
        started,
    )
    .await
}

/// What every result gets: the case's warnings, diagnostics when it failed, its
/// duration.
async fn finish(
    env: &impl RunningTarget,
    suite: &Suite,
    case: &Case,
    mut result: CaseResult,
    baseline: Option<&StatsSnapshot>,
    source_diagnostics: Option<crate::targets::DiagnosticSection>,
    started: Instant,
) -> CaseResult {
    result.warnings = warnings(case);
    if result.outcome == Outcome::Failed {
        let diagnostics = env.diagnostics(suite, case, baseline).await;
        result.diagnostics = diagnostics.sections;
        result.diagnostic_dumps = diagnostics.dumps;
        if let Some(section) = source_diagnostics {
            result.diagnostics.insert(0, section);
        }
    }
    result.duration = started.elapsed();
    result
}

/// Reads the status the case's `conditions` name (waiting, on a cluster, for status at
/// the objects' current generation within the suite's convergence timeout) and judges
/// it: the pass message's fragment, or the failed result.
async fn check_conditions(
    env: &impl RunningTarget,
    suite: &Suite,
    case: &Case,
    conditions: &ExpectedConditions,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Result<String, Box<CaseResult>> {
    let objects = conditions.objects();
    let (_unchanging, waiting) = tokio::sync::watch::channel(
        objects
            .iter()
            .map(|key| Pending {
                object: key.to_string(),
                reason: "no status for its current generation yet".to_owned(),
            })
            .collect(),
    );
    let started = tokio::time::Instant::now();
    let deadline = started + suite.spec.convergence.timeout;
    let failed = |message: CaseMessage| {
        Box::new(CaseResult::without_traffic(
            &suite.name,
            &case.name,
            Outcome::Failed,
            message,
        ))
    };
    let mut status = say_while(
        env.status(
            case.fixtures(suite),
            &objects,
            suite.spec.convergence.timeout,
        ),
        &suite.name,
        Phase::Wait,
        &waiting,
        started,
        looks(),
        emit,
    )
    .await;
    let read_failed = |source| failed(CaseMessage::Error(Arc::new(CaseError::Status { source })));
    loop {
        let mut read = status.map_err(read_failed)?;
        // What was deployed for a Gateway is not its status: read only for the
        // `generated` checks, next to each status read.
        for gateway in conditions.generated_gateways() {
            let objects = env
                .generated_objects(case.fixtures(suite), &gateway)
                .await
                .map_err(read_failed)?;
            if let Some(view) = read.gateways.iter_mut().find(|g| g.gateway == gateway) {
                view.generated = objects;
            }
        }
        let failures = conditions.failures(&read);
        if failures.is_empty() {
            return Ok(conditions.describe());
        }
        // On a cluster the status may not have caught up with the suite's last
        // objects yet: it is read again until it says what the case expects or the
        // suite's convergence timeout runs out, as traffic converges.
        let now = tokio::time::Instant::now();
        if !env.status_converges() || now + STATUS_POLL >= deadline {
            return Err(failed(CaseMessage::Verdict(failures.join("\n"))));
        }
        tokio::time::sleep(STATUS_POLL).await;
        status = env
            .status(
                case.fixtures(suite),
                &objects,
                deadline - tokio::time::Instant::now(),
            )
            .await;
    }
}

fn request_template(case: &Case, source: &impl SampleSource) -> RequestTemplate {
    let mut url = case.url.clone();
    // A call to a pod names the pod's address, which only the target knows; the
    // loader made sure the URL's host is the `pod-ip` placeholder.
    if let Some((host, port)) = source.authority().and_then(|a| a.rsplit_once(':')) {
        let _ = url.set_host(Some(host.trim_start_matches('[').trim_end_matches(']')));
        let _ = url.set_port(port.parse().ok());
    }
    RequestTemplate {
        url,
        connect_to: source.connect_to(),
        host_override: case.spec.request.as_ref().and_then(|r| r.host.clone()),
        headers: case
            .spec
            .request
            .iter()
            .flat_map(|r| r.headers.iter())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        method: case.method.clone(),
        tls: case.tls.clone(),
        version: case.version,
        websocket_messages: case.websocket_messages.clone(),
    }
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

/// The load of a case's own traffic settings, `requests` of them.
pub(super) fn load_spec(case: &Case, template: &RequestTemplate, requests: u64) -> LoadSpec {
    LoadSpec {
        request: template.clone(),
        requests,
        concurrency: case.spec.traffic.concurrency,
        timeout: case.spec.traffic.timeout,
        keep_alive: case.spec.traffic.keep_alive,
        identity: case.identity.clone(),
        response_headers: case.expect.response_headers(),
        response_body: case.expect.response_body(),
    }
}

/// The data plane lags the API: wait for `consecutive` good responses in a row, with
/// backoff between attempts, before measuring anything. A long wait says, between
/// attempts, what the last response was.
async fn converge(
    source: &mut impl SampleSource,
    suite: &Suite,
    case: &Case,
    template: &RequestTemplate,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Result<(), CaseError> {
    let spec = &suite.spec.convergence;
    let deadline = Instant::now() + spec.timeout;
    let mut still_waiting = StillWaiting::new(tokio::time::Instant::now());
    let mut backoff = Duration::from_millis(50);
    let mut last_bad = String::from("no response yet");
    let mut first_good_said = false;
    loop {
        let load = LoadSpec {
            concurrency: 1,
            ..load_spec(case, template, u64::from(spec.consecutive))
        };
        let mut good = 0u32;
        let mut rejected = false;
        source
            .send(&load, |sample| {
                if case.expect.ready(sample) {
                    good += 1;
                    // When the data plane first answered as configured (phase timings).
                    if !first_good_said {
                        first_good_said = true;
                        emit(Event::Milestone {
                            suite: suite.name.clone(),
                            milestone: Milestone::FirstGoodResponse {
                                case: case.name.clone(),
                            },
                        });
                    }
                    Flow::Continue
                } else {
                    last_bad = case.expect.describe_unready(sample);
                    rejected |= sample.error == Some(ErrorKind::Certificate);
                    Flow::Stop
                }
            })
            .await?;
        if good >= spec.consecutive {
            emit(Event::Milestone {
                suite: suite.name.clone(),
                milestone: Milestone::Converged {
                    case: case.name.clone(),
                },
            });
            return Ok(());
        }
        // A certificate our verifier refuses stays refused: waiting out the timeout
        // would only delay the answer.
        if rejected {
            return Err(CaseError::CertificateRejected {
                host: case.url.host_str().unwrap_or_default().to_string(),
                last: last_bad,
            });
        }
        if Instant::now() + backoff > deadline {
            return Err(CaseError::NotConverged {
                timeout: spec.timeout,
                last: last_bad,
            });
        }
        let pending = [Pending {
            object: case.url.to_string(),
            reason: format!(
                "last response was {last_bad} ({good}/{} good in a row)",
                spec.consecutive
            ),
        }];
        if let Some(waited) = still_waiting.due(tokio::time::Instant::now(), &pending) {
            emit(Event::StillWaiting {
                suite: suite.name.clone(),
                phase: Phase::Converge,
                waited,
                pending: pending.to_vec(),
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Converges, then runs what the case's expectation asks for. `baseline` gets the
/// target's snapshot of the proxy's stats from when measuring starts.
async fn measure(
    env: &impl RunningTarget,
    source: &mut impl SampleSource,
    suite: &Suite,
    case: &Case,
    baseline: &mut Option<StatsSnapshot>,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Result<CaseResult, CaseError> {
    let template = request_template(case, source);
    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: Phase::Converge,
        detail: PhaseDetail::Converging {
            case: case.name.clone(),
            consecutive: suite.spec.convergence.consecutive,
            url: case.url.clone(),
            origin: source.origin(),
        },
    });
    converge(source, suite, case, &template, emit).await?;
    *baseline = env.measuring_started(case).await;

    // A probe's count is required by the loader; the default only guards future kinds.
    let probe_load = || {
        load_spec(
            case,
            &template,
            case.spec.traffic.requests.unwrap_or(DEFAULT_REQUESTS),
        )
    };
    match &case.expect {
        Expectation::Responses(checks) => {
            measure_responses(env, source, suite, case, checks, &template, emit).await
        }
        Expectation::CircuitBreaking(expected) => {
            policy::run_circuit_breaking(env, source, suite, case, expected, probe_load(), emit)
                .await
        }
        Expectation::OutlierDetection(expected) => {
            policy::run_outlier_detection(env, source, suite, case, expected, probe_load(), emit)
                .await
        }
        // run_case answers a status-only case before any traffic.
        Expectation::StatusOnly => Ok(CaseResult::without_traffic(
            &suite.name,
            &case.name,
            Outcome::Passed,
            CaseMessage::Verdict(String::new()),
        )),
    }
}

/// The measured request loop, every response shown to the case's checks. With a
/// mirror check it runs in rounds: each round marks the mirrors' records, sends, and
/// hands what the mirrors received to the mirror's judge, until the judge has its
/// verdict or the requests are spent. Without one, it is a single round.
async fn measure_responses(
    env: &impl RunningTarget,
    source: &mut impl SampleSource,
    suite: &Suite,
    case: &Case,
    checks: &ResponseChecks,
    template: &RequestTemplate,
    emit: &mut (dyn FnMut(Event) + Send),
) -> Result<CaseResult, CaseError> {
    let mut judge = checks.judge()?;
    let mut mirror = checks
        .mirror()
        .map(|expected| expected.mirror_judge().map(|judge| (expected, judge)))
        .transpose()?;
    // A split decides its own sample: the mirror's verdict must not cut it short.
    let others_size_themselves = checks.iter().any(|c| matches!(c, ResponseCheck::Split(_)));
    let requests = judge
        .max_requests(case.spec.traffic.requests)
        .unwrap_or(DEFAULT_REQUESTS);
    let load = load_spec(case, template, requests);
    emit(Event::Phase {
        suite: suite.name.clone(),
        phase: Phase::Traffic,
        detail: PhaseDetail::Measuring {
            case: case.name.clone(),
            max_requests: requests,
            url: case.url.clone(),
            origin: source.origin(),
            concurrency: load.concurrency,
        },
    });
    let mut seen = 0u64;
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut tally: Option<Tally> = None;
    let mut stopped = false;
    while seen < requests && !stopped {
        let left = requests - seen;
        let round = mirror
            .as_ref()
            .map_or(left, |(_, mirror_judge)| mirror_judge.round_size(left));
        let mark = match &mirror {
            Some((expected, _)) => Some(
                env.mark_received(&case.entry, &expected.receivers())
                    .await
                    .map_err(|source| received_error(expected, source))?,
            ),
            None => None,
        };
        let mut answered = 0u64;
        let round_load = LoadSpec {
            requests: round,
            ..load.clone()
        };
        let round_tally = source
            .send(&round_load, |sample| {
                seen += 1;
                if sample.error.is_none() {
                    answered += 1;
                }
                if seen <= SHOWN_RESPONSES {
                    emit(Event::Response {
                        suite: suite.name.clone(),
                        case: case.name.clone(),
                        status: sample.status,
                        identity: sample.identity.map(str::to_string),
                        error: sample.error,
                    });
                }
                let flow = judge.observe(seen, sample);
                stopped |= flow == Flow::Stop;
                if seen.is_multiple_of(64) && last_progress.elapsed() >= PROGRESS_EVERY {
                    last_progress = Instant::now();
                    let progress = judge.progress();
                    emit(Event::TrafficProgress {
                        suite: suite.name.clone(),
                        case: case.name.clone(),
                        requests: seen,
                        max_requests: requests,
                        backends: progress.backends,
                        unidentified: progress.unidentified,
                        requests_per_second: seen as f64
                            / started.elapsed().as_secs_f64().max(1e-9),
                    });
                }
                flow
            })
            .await?;
        let sent_nothing = round_tally.requests == 0;
        match &mut tally {
            Some(tally) => tally.merge(&round_tally),
            None => tally = Some(round_tally),
        }
        if let (Some((expected, mirror_judge)), Some(mark)) = (&mut mirror, mark) {
            // A mirror that gets every request is complete at one copy per answer.
            let complete: Vec<Option<u64>> = expected
                .backends
                .iter()
                .map(|b| b.share.is_none().then_some(answered))
                .collect();
            let received = env
                .received_since(&mark, &complete, mirror_settle_bound(case))
                .await
                .map_err(|source| received_error(expected, source))?;
            mirror_judge.observe_round(answered, &received);
            stopped |= mirror_judge.decided() && !others_size_themselves;
        }
        if sent_nothing {
            break;
        }
    }
    let tally = tally.unwrap_or_else(Tally::new);

    let mut verdict = judge.conclude();
    if let Some((_, mirror_judge)) = mirror {
        mirror_judge.conclude(&mut verdict);
    }
    let outcome = if verdict.passed() {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    let message = verdict.message(tally.requests);
    Ok(result_from(
        suite,
        case,
        outcome,
        message,
        &tally,
        verdict.split,
    ))
}

/// How long the mirrors' copies may take to show in their records after a round:
/// as long as a request may take, and at least upstream's default request timeout
/// (kubernetes-sigs/gateway-api `conformance/utils/config/timeout.go`, 10s), which
/// is what upstream waits for a mirrored request's log line.
fn mirror_settle_bound(case: &Case) -> Duration {
    case.spec.traffic.timeout.max(Duration::from_secs(10))
}

fn received_error(
    expected: &crate::suite::expect::ExpectedMirror,
    source: crate::targets::TargetError,
) -> CaseError {
    CaseError::Received {
        services: expected
            .backends
            .iter()
            .map(|b| b.service.to_string())
            .collect(),
        source,
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
        message: CaseMessage::Verdict(message),
        warnings: Vec::new(),
        diagnostics: Vec::new(),
        diagnostic_dumps: Vec::new(),
    }
}
