//! Executes suites against a target and emits [`Event`]s; it never prints. Reporters
//! (terminal, JSON, JUnit, the cargo-test harness) consume the events.

mod case;
mod case_error;
mod environment;
mod events;
mod execute;
mod mesh_client;
mod policy;
mod source;

pub use environment::{LocalSettings, TargetSettings};
pub use events::{
    CaseResult, Event, LatencySummary, Outcome, Phase, PhaseDetail, RequestOrigin, RunEnvironment,
    RunSummary, TargetKind,
};
pub use execute::{CaseFilter, Interrupt, RunOptions, run};
