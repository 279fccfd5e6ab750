//! Reporters: each consumes runner events and nothing else.

mod display;
mod error_chain;
mod files;
mod html;
mod phase_detail;
mod terminal;

pub use display::DisplayConfig;
pub use error_chain::{caused_by, one_line};
pub use files::{JSON_SCHEMA_VERSION, ReportError, RunRecord, SetupFailure, report_schema};
pub use terminal::{TerminalReporter, failure_block, statistics_block};
