//! Policy checks: what a DestinationRule's circuit breakers and outlier detection do to
//! the traffic a client sees, cross-checked with the proxy's own counters.

mod circuit;
mod outlier;
mod proxy;

pub(crate) use circuit::run_circuit_breaking;
pub(crate) use outlier::run_outlier_detection;
