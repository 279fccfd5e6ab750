//! The statistics behind split verdicts: does traffic through an HTTPRoute land on
//! its backends in the proportions the weights promise?
//!
//! - [`binomial`]: exact fixed-sample inference (two-sided binomial p-values,
//!   Clopper–Pearson intervals, power and sample size of the exact test).
//! - [`split`]: the sequential split test the request loop feeds one response at a
//!   time, and the verdict it reports.
//!
//! The simulation tests (`simulation.rs`) check the promised error rates on
//! simulated traffic.

pub mod binomial;
mod error;
pub mod split;

#[cfg(test)]
mod simulation;

pub use error::StatsError;
pub use split::{
    BackendShare, Decision, ExpectedShare, SequentialSplitTest, SplitTestConfig, SplitVerdict,
    fixed_sample_size,
};
