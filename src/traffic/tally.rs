//! The run's aggregate: counters and a latency histogram, constant in memory.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use super::identity::IdentityMsg;
use super::worker::Record;
use super::{ErrorKind, Flow, MAX_IDENTITIES, OTHER_IDENTITY, ResponseHeaders, Sample};

/// Longest latency the histogram tells apart (one hour); longer ones saturate.
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// What a run observed. Serializes as its [`TallySummary`].
#[derive(Debug, Clone)]
pub struct Tally {
    /// Observed requests, failed ones included.
    pub requests: u64,
    /// Responses per backend identity (at most [`MAX_IDENTITIES`] keys plus
    /// [`OTHER_IDENTITY`]).
    pub identities: BTreeMap<String, u64>,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Failed requests per reason.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Responses that carried `x-envoy-overloaded: true`.
    pub envoy_overloaded: u64,
    /// Latency of successful requests, in microseconds. Failed requests are left out
    /// so timeouts do not masquerade as slow responses.
    pub latency: Histogram<u64>,
    /// From the start of the run until the last observed request.
    pub elapsed: Duration,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            requests: 0,
            identities: BTreeMap::new(),
            status_codes: BTreeMap::new(),
            errors: BTreeMap::new(),
            envoy_overloaded: 0,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3)
                .expect("constant histogram bounds are valid"),
            elapsed: Duration::ZERO,
        }
    }

    /// Folds in a sample that did not come from [`run_load`](super::run_load) (an
    /// in-cluster client's output), with the same identity cap as the engine.
    pub(crate) fn record(&mut self, sample: &Sample<'_>) {
        self.requests += 1;
        if let Some(status) = sample.status {
            *self.status_codes.entry(status).or_default() += 1;
        }
        match sample.error {
            Some(kind) => *self.errors.entry(kind).or_default() += 1,
            None => {
                let micros = u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(1));
            }
        }
        if sample.envoy_overloaded {
            self.envoy_overloaded += 1;
        }
        if let Some(identity) = sample.identity {
            let known = self.identities.contains_key(identity);
            let named =
                self.identities.len() - usize::from(self.identities.contains_key(OTHER_IDENTITY));
            let key = if known || named < MAX_IDENTITIES {
                identity
            } else {
                OTHER_IDENTITY
            };
            *self.identities.entry(key.to_owned()).or_default() += 1;
        }
    }

    /// Adds a later run's counts (a case's next round of traffic): the sum of both,
    /// with the same identity cap, and the time spent sending in both.
    pub(crate) fn merge(&mut self, later: &Tally) {
        self.requests += later.requests;
        for (identity, &count) in &later.identities {
            let known = self.identities.contains_key(identity);
            let named =
                self.identities.len() - usize::from(self.identities.contains_key(OTHER_IDENTITY));
            let key = if known || named < MAX_IDENTITIES {
                identity.as_str()
            } else {
                OTHER_IDENTITY
            };
            *self.identities.entry(key.to_owned()).or_default() += count;
        }
        for (status, &count) in &later.status_codes {
            *self.status_codes.entry(*status).or_default() += count;
        }
        for (kind, &count) in &later.errors {
            *self.errors.entry(*kind).or_default() += count;
        }
        self.envoy_overloaded += later.envoy_overloaded;
        // Same bounds on both sides, so adding cannot fail; saturate if it ever did.
        if self.latency.add(&later.latency).is_err() {
            self.latency.saturating_record(MAX_LATENCY_MICROS);
        }
        self.elapsed += later.elapsed;
    }

    /// Observed requests per second of elapsed time (0 for an empty run).
    pub fn requests_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.requests as f64 / seconds
        } else {
            0.0
        }
    }

    /// The latency at quantile `q` (0.0..=1.0) of successful requests; zero if none.
    pub fn latency_quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.latency.value_at_quantile(q))
    }

    /// Requests that got no complete response.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The serializable summary: counts, shares, latency quantiles, rate.
    pub fn summary(&self) -> TallySummary {
        let responses: u64 = self.identities.values().sum();
        let identities = self
            .identities
            .iter()
            .map(|(identity, &count)| IdentityShare {
                identity: identity.clone(),
                count,
                share: if responses > 0 {
                    count as f64 / responses as f64
                } else {
                    0.0
                },
            })
            .collect();
        let micros = |q: f64| self.latency.value_at_quantile(q);
        TallySummary {
            requests: self.requests,
            failed: self.failed(),
            elapsed_seconds: self.elapsed.as_secs_f64(),
            requests_per_second: self.requests_per_second(),
            identities,
            status_codes: self.status_codes.clone(),
            errors: self.errors.clone(),
            envoy_overloaded: self.envoy_overloaded,
            latency: LatencySummary {
                p50_us: micros(0.5),
                p90_us: micros(0.9),
                p99_us: micros(0.99),
                max_us: self.latency.max(),
                mean_us: self.latency.mean(),
            },
        }
    }
}

impl Serialize for Tally {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.summary().serialize(serializer)
    }
}

/// [`Tally`] in reporting form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TallySummary {
    /// Observed requests, failed ones included.
    pub requests: u64,
    /// Requests that got no complete response.
    pub failed: u64,
    /// Duration of the run.
    pub elapsed_seconds: f64,
    /// Observed requests per second.
    pub requests_per_second: f64,
    /// Per identity, sorted by identity; `share` is of responses with an identity.
    pub identities: Vec<IdentityShare>,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Failed requests per reason.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Responses with `x-envoy-overloaded: true`.
    pub envoy_overloaded: u64,
    /// Latency of successful requests.
    pub latency: LatencySummary,
}

/// One identity's count and share of identified responses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityShare {
    /// The identity text.
    pub identity: String,
    /// Responses with it.
    pub count: u64,
    /// `count` over all identified responses, 0.0..=1.0.
    pub share: f64,
}

/// Latency quantiles in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

/// Slot of [`OTHER_IDENTITY`] in worker tables.
const OTHER_SLOT: usize = usize::MAX;

/// The collector's state: the tally plus the identity tables that turn worker-local
/// identity numbers into names.
pub(crate) struct Aggregator {
    tally: Tally,
    names: Vec<Box<str>>,
    counts: Vec<u64>,
    other: u64,
    /// Per worker: its identity number -> slot in `names` (or [`OTHER_SLOT`]).
    slots: Vec<Vec<usize>>,
    /// The names of the response headers records carry, in their order.
    response_headers: Vec<http::HeaderName>,
    /// Whether records carry the response body.
    response_body: bool,
}

impl Aggregator {
    pub(crate) fn new(
        workers: usize,
        response_headers: Vec<http::HeaderName>,
        response_body: bool,
    ) -> Self {
        Self {
            response_headers,
            response_body,
            tally: Tally::new(),
            names: Vec::new(),
            counts: Vec::new(),
            other: 0,
            slots: vec![Vec::new(); workers],
        }
    }

    /// Folds one record in and shows it to `observe`.
    pub(crate) fn add(
        &mut self,
        record: Record,
        observe: &mut impl FnMut(&Sample<'_>) -> Flow,
    ) -> Flow {
        let worker = record.worker as usize;
        let slot = match record.identity {
            IdentityMsg::None => None,
            IdentityMsg::Other => Some(OTHER_SLOT),
            IdentityMsg::Known(id) => Some(
                self.slots[worker]
                    .get(id as usize)
                    .copied()
                    .unwrap_or(OTHER_SLOT),
            ),
            IdentityMsg::New(id, name) => {
                let slot = self.slot_for(name);
                let table = &mut self.slots[worker];
                debug_assert_eq!(
                    table.len(),
                    id as usize,
                    "worker identities arrive in order"
                );
                table.push(slot);
                Some(slot)
            }
        };
        let tally = &mut self.tally;
        tally.requests += 1;
        if let Some(status) = record.status {
            *tally.status_codes.entry(status).or_default() += 1;
        }
        match record.error {
            Some(kind) => *tally.errors.entry(kind).or_default() += 1,
            None => {
                let micros = u64::try_from(record.latency.as_micros()).unwrap_or(u64::MAX);
                tally.latency.saturating_record(micros.max(1));
            }
        }
        if record.envoy_overloaded {
            tally.envoy_overloaded += 1;
        }
        let identity = match slot {
            None => None,
            Some(OTHER_SLOT) => {
                self.other += 1;
                Some(OTHER_IDENTITY)
            }
            Some(slot) => {
                self.counts[slot] += 1;
                Some(&*self.names[slot])
            }
        };
        observe(&Sample {
            status: record.status,
            identity,
            latency: record.latency,
            error: record.error,
            error_detail: record.error_detail.as_deref(),
            envoy_overloaded: record.envoy_overloaded,
            headers: ResponseHeaders::new(&self.response_headers, &record.headers),
            body: self.response_body.then_some(&*record.body),
            websocket_replies: &record.websocket_replies,
        })
    }

    fn slot_for(&mut self, name: Box<str>) -> usize {
        // Called once per worker per identity, over at most MAX_IDENTITIES names.
        if let Some(slot) = self.names.iter().position(|known| *known == name) {
            return slot;
        }
        if self.names.len() >= MAX_IDENTITIES {
            return OTHER_SLOT;
        }
        self.names.push(name);
        self.counts.push(0);
        self.names.len() - 1
    }

    pub(crate) fn finish(mut self, elapsed: Duration) -> Tally {
        let mut identities: BTreeMap<String, u64> = self
            .names
            .into_iter()
            .zip(self.counts)
            .filter(|&(_, count)| count > 0)
            .map(|(name, count)| (name.into_string(), count))
            .collect();
        if self.other > 0 {
            *identities.entry(OTHER_IDENTITY.to_owned()).or_default() += self.other;
        }
        self.tally.identities = identities;
        self.tally.elapsed = elapsed;
        self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(worker: u32, identity: IdentityMsg, micros: u64, error: Option<ErrorKind>) -> Record {
        Record {
            worker,
            status: error.is_none().then_some(200),
            identity,
            latency: Duration::from_micros(micros),
            error,
            error_detail: None,
            envoy_overloaded: false,
            headers: Box::default(),
            body: Box::default(),
            websocket_replies: Box::default(),
        }
    }

    #[test]
    fn worker_numbers_map_to_shared_names() {
        let mut aggregator = Aggregator::new(2, Vec::new(), false);
        let mut seen = Vec::new();
        let mut observe = |sample: &Sample<'_>| {
            seen.push(sample.identity.map(str::to_owned));
            Flow::Continue
        };
        // Both workers number "v2" differently; the collector must merge them.
        let records = [
            record(0, IdentityMsg::New(0, "v1".into()), 100, None),
            record(1, IdentityMsg::New(0, "v2".into()), 200, None),
            record(0, IdentityMsg::New(1, "v2".into()), 300, None),
            record(1, IdentityMsg::Known(0), 400, None),
            record(0, IdentityMsg::Known(0), 500, None),
            record(1, IdentityMsg::None, 600, None),
            record(0, IdentityMsg::None, 5_000_000, Some(ErrorKind::Timeout)),
        ];
        for r in records {
            assert_eq!(aggregator.add(r, &mut observe), Flow::Continue);
        }
        let tally = aggregator.finish(Duration::from_secs(2));
        assert_eq!(
            seen,
            [
                Some("v1"),
                Some("v2"),
                Some("v2"),
                Some("v2"),
                Some("v1"),
                None,
                None
            ]
            .map(|s| s.map(str::to_owned))
        );
        assert_eq!(tally.requests, 7);
        assert_eq!(
            tally.identities,
            BTreeMap::from([("v1".to_owned(), 2), ("v2".to_owned(), 3)])
        );
        assert_eq!(tally.errors, BTreeMap::from([(ErrorKind::Timeout, 1)]));
        assert_eq!(tally.failed(), 1);
        assert_eq!(tally.requests_per_second(), 3.5);
        // The timeout stays out of the latency histogram.
        assert_eq!(tally.latency.len(), 6);
        let max = tally.latency_quantile(1.0);
        assert!(max >= Duration::from_micros(600) && max < Duration::from_micros(601));
        let summary = tally.summary();
        assert_eq!(summary.identities[1].identity, "v2");
        assert_eq!(summary.identities[1].share, 0.6);
        let json = serde_json::to_value(&tally).unwrap();
        assert_eq!(json["errors"]["timeout"], 1);
        assert_eq!(json["status_codes"]["200"], 6);
    }

    #[test]
    fn global_cap_lumps_late_names_into_other() {
        let workers = 2;
        let mut aggregator = Aggregator::new(workers, Vec::new(), false);
        let mut observe = |_: &Sample<'_>| Flow::Continue;
        for i in 0..MAX_IDENTITIES {
            let id = u32::try_from(i).unwrap();
            let name = format!("w0-{i}").into_boxed_str();
            aggregator.add(record(0, IdentityMsg::New(id, name), 1, None), &mut observe);
        }
        // Worker 1 has room in its own table, but the collector is full.
        aggregator.add(
            record(1, IdentityMsg::New(0, "late".into()), 1, None),
            &mut observe,
        );
        aggregator.add(record(1, IdentityMsg::Known(0), 1, None), &mut observe);
        aggregator.add(record(1, IdentityMsg::Other, 1, None), &mut observe);
        let tally = aggregator.finish(Duration::ZERO);
        assert_eq!(tally.identities.len(), MAX_IDENTITIES + 1);
        assert_eq!(tally.identities[OTHER_IDENTITY], 3);
        assert_eq!(tally.requests_per_second(), 0.0);
    }

    #[test]
    fn empty_tally_is_all_zero() {
        let tally = Aggregator::new(0, Vec::new(), false).finish(Duration::ZERO);
        assert_eq!(tally.latency_quantile(0.99), Duration::ZERO);
        assert_eq!(tally.summary().latency.max_us, 0);
    }
}
