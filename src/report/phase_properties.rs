//! A suite's phase timings as JUnit `<property>` pairs: CI servers show suite
//! properties beside the test results, so where a slow run spent its time is there
//! without opening the JSON report.

use crate::runner::PhaseTiming;

/// `(name, value)` pairs, in the order the phases first ran (a phase's details right
/// after it), the seconds as `1.234s`:
/// - `phase.<phase>`: a suite phase (`apply`, `wait`, `cleanup`, ...), its runs added
///   up (the apply phase is several steps);
/// - `phase.<phase>.<case>`: a case's phase (`address`, `converge`, `traffic`);
/// - `phase.wait.ready.<Kind>`: from the start of the readiness wait until the last
///   object of that kind was ready;
/// - `phase.converge.<case>.first-good` and `.in-a-row`: from the suite's last apply to
///   the case's first good response and to its N good in a row.
pub(super) fn phase_properties(phases: &[PhaseTiming]) -> Vec<(String, String)> {
    let mut properties: Vec<(String, f64)> = Vec::new();
    for timing in phases {
        let name = match &timing.case {
            Some(case) => format!("phase.{}.{case}", timing.phase),
            None => format!("phase.{}", timing.phase),
        };
        match properties.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += timing.seconds,
            None => properties.push((name.clone(), timing.seconds)),
        }
        let mut details: Vec<(String, f64)> = timing
            .ready_by_kind
            .iter()
            .map(|kind| (format!("{name}.ready.{}", kind.kind), kind.seconds))
            .collect();
        if let Some(data_plane) = &timing.since_config_applied {
            let moments = [
                ("first-good", data_plane.first_good_seconds),
                ("in-a-row", data_plane.in_a_row_seconds),
            ];
            details.extend(
                moments
                    .into_iter()
                    .filter_map(|(moment, s)| s.map(|s| (format!("{name}.{moment}"), s))),
            );
        }
        // A detail is said once: the first phase of its name that had it.
        for (detail, seconds) in details {
            if !properties.iter().any(|(n, _)| *n == detail) {
                properties.push((detail, seconds));
            }
        }
    }
    properties
        .into_iter()
        .map(|(name, seconds)| (name, format!("{seconds:.3}s")))
        .collect()
}
