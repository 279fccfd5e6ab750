//! Reporters: each consumes runner events and nothing else.

mod display;
mod files;
mod terminal;

pub use display::DisplayConfig;
pub use files::{JSON_SCHEMA_VERSION, ReportError, RunRecord, SetupFailure};
pub use terminal::{TerminalReporter, failure_block};
