//! Reporters: each consumes runner events and nothing else.

mod case_message;
mod conformance;
mod display;
mod files;
mod html;
mod phase_detail;
mod phase_properties;
mod terminal;

/// The error renderer lives below every layer (`crate::error_chain`); reporters and
/// callers keep this path.
pub use crate::error_chain::{caused_by, one_line};
pub use conformance::{ConformanceRecord, ConformanceReport, SCENARIOS_GATEWAY_API_VERSION};
pub use display::DisplayConfig;
pub use files::{JSON_SCHEMA_VERSION, ReportError, RunRecord, SetupFailure, report_schema};
pub use terminal::{TerminalReporter, failure_block, statistics_block};
