//! The collector: starts the workers, observes and tallies their records.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::tally::{Aggregator, Tally};
use super::worker::{Prepared, run_worker};
use super::{Flow, LoadSpec, Sample, TrafficError};

/// Records taken off the channel per wake-up of the collector.
const BATCH: usize = 256;

/// Runs `spec` and returns what was observed.
///
/// `observe` is called once per completed request (failed ones included), in
/// completion order, on the calling task. Returning [`Flow::Stop`] stops the run at
/// once: no new requests are issued, requests in flight are abandoned (their worker
/// tasks are aborted and their connections dropped), and completed records not yet
/// observed are discarded, so the [`Tally`] holds exactly what `observe` saw.
///
/// Failed requests are samples with [`Sample::error`] set; an `Err` means nothing
/// could be sent (bad URL, unresolvable host).
///
/// Workers are spawned on the current tokio runtime (use a multi-thread one). Await
/// this from a task of that runtime rather than from `block_on` on an outside
/// thread: every record wakes the collector, and waking a thread outside the
/// runtime costs a futex call per request (about 20% of requests/s at -c 64).
pub async fn run_load(
    spec: &LoadSpec,
    mut observe: impl FnMut(&Sample<'_>) -> Flow,
) -> Result<Tally, TrafficError> {
    let prepared = Arc::new(Prepared::new(spec).await?);
    let workers = usize::try_from(spec.requests)
        .unwrap_or(usize::MAX)
        .min(spec.concurrency);
    let (sender, mut receiver) = mpsc::channel(workers.max(1) * 8);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let worker_id = u32::try_from(worker).unwrap_or(u32::MAX);
        tasks.spawn(run_worker(worker_id, Arc::clone(&prepared), sender.clone()));
    }
    // Only workers hold senders now, so the channel ends when the last one finishes.
    drop(sender);

    let mut aggregator =
        Aggregator::new(workers, spec.response_headers.clone(), spec.response_body);
    let mut batch = Vec::with_capacity(BATCH);
    'collect: while receiver.recv_many(&mut batch, BATCH).await > 0 {
        for record in batch.drain(..) {
            if aggregator.add(record, &mut observe) == Flow::Stop {
                tasks.abort_all();
                break 'collect;
            }
        }
    }
    let elapsed = start.elapsed();
    drop(receiver);
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    Ok(aggregator.finish(elapsed))
}
