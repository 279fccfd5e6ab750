//! Executes suites against a target and emits [`Event`]s; it never prints. Reporters
//! (terminal, JSON, JUnit, the cargo-test harness) consume the events.

mod bring_up;
mod case;
mod case_error;
mod events;
mod execute;
mod interrupt;
mod phase_timer;
mod policy;
mod still_waiting;

pub use crate::targets::RequestOrigin;
/// Where the settings live now; re-exported so callers keep one import for a run.
pub use crate::targets::{LocalSettings, TargetSettings};
pub(crate) use bring_up::BringUp;
pub use case_error::CaseError;
pub use events::{
    CaseMessage, CaseResult, Event, KindReady, LatencySummary, Milestone, Outcome, Pending, Phase,
    PhaseDetail, RunEnvironment, RunSummary, TargetKind, UnknownVersion,
};
pub use execute::{CaseFilter, RunOptions, run};
pub use interrupt::Interrupt;
pub use phase_timer::{DataPlaneTiming, PhaseTiming};
