//! The embedded local target: fixtures as a real Envoy and echo processes.
