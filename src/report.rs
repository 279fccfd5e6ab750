//! Reporters: each consumes runner events and nothing else.

mod display;
mod files;
mod html;
mod terminal;

pub use display::DisplayConfig;
pub use files::{JSON_SCHEMA_VERSION, ReportError, RunRecord, SetupFailure, report_schema};
pub use terminal::{TerminalReporter, failure_block, statistics_block};
