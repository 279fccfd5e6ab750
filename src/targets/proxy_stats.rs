//! Envoy's `/stats` text as numbers, so a failed case can say what changed while it
//! ran instead of dumping every counter since the proxy started.

use std::collections::BTreeMap;

/// The proxy's counters and gauges at one moment: `name -> value`. Histograms
/// (`P0(...)`, `No recorded values`) are left out: they are not numbers to subtract.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub values: BTreeMap<String, u64>,
}

impl StatsSnapshot {
    /// Reads Envoy's plain-text `/stats` (`name: value` a line).
    pub fn parse(text: &str) -> StatsSnapshot {
        let values = text
            .lines()
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(": ")?;
                Some((name.to_owned(), value.trim().parse::<u64>().ok()?))
            })
            .collect();
        StatsSnapshot { values }
    }

    /// How each stat moved since `before`: positive for counters that grew, negative
    /// for gauges that fell; stats that did not move are left out. A stat absent
    /// before counts from zero (Envoy creates some on first use).
    pub fn changes_since(&self, before: &StatsSnapshot) -> BTreeMap<String, i128> {
        self.values
            .iter()
            .filter_map(|(name, &now)| {
                let then = before.values.get(name).copied().unwrap_or(0);
                let change = i128::from(now) - i128::from(then);
                (change != 0).then(|| (name.clone(), change))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_numbers_and_skips_histograms() {
        let snapshot = StatsSnapshot::parse(
            "cluster.outbound|80||a.ns.svc.cluster.local.upstream_rq_200: 4\n\
             cluster.outbound|80||a.ns.svc.cluster.local.upstream_rq_time: P0(nan,1) P25(nan,2)\n\
             http.ingress.downstream_rq_time: No recorded values\n\
             server.live: 1\n",
        );
        assert_eq!(
            snapshot.values.keys().collect::<Vec<_>>(),
            [
                "cluster.outbound|80||a.ns.svc.cluster.local.upstream_rq_200",
                "server.live"
            ]
        );
    }

    #[test]
    fn changes_since_names_what_moved_either_way() {
        let before = StatsSnapshot::parse("a.total: 5\nb.active: 3\nc.same: 7\n");
        let after = StatsSnapshot::parse("a.total: 9\nb.active: 1\nc.same: 7\nd.new: 2\n");
        let changes = after.changes_since(&before);
        assert_eq!(
            changes.into_iter().collect::<Vec<_>>(),
            [
                ("a.total".to_owned(), 4),
                ("b.active".to_owned(), -2),
                ("d.new".to_owned(), 2)
            ]
        );
    }
}
