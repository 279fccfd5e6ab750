//! Documented process exit codes (README.md, "Exit codes").

/// Every case passed.
pub const SUCCESS: i32 = 0;
/// At least one case failed.
pub const CASES_FAILED: i32 = 1;
/// Bad input: a suite, fixture or argument is invalid. Nothing ran.
pub const BAD_INPUT: i32 = 2;
/// The environment could not be set up: Envoy missing, a cluster unreachable, a tool
/// not installed.
pub const SETUP_FAILED: i32 = 3;
/// Interrupted by SIGINT or SIGTERM; what the run created was cleaned up.
pub const INTERRUPTED: i32 = 130;
