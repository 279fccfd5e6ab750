//! Helpers shared by several test modules.

pub mod fake_api;
pub mod process;
pub mod script;
