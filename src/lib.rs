//! meshcheck: end-to-end conformance and smoke tests for Istio meshes driven by the
//! Kubernetes Gateway API.
//!
//! Layers, from the bottom up:
//! - [`manifest`]: Kubernetes objects read from fixture files, with positions.
//! - [`fixtures`]: the IO-free view of a suite's fixtures: objects decoded once, typed
//!   lookups (the pods behind a Service, the DestinationRule for a host), Istio's names.
//! - [`suite`]: the suite model (YAML), what to apply, wait for and assert.
//! - [`targets`]: where a suite runs: the embedded local target (real Envoy, echo
//!   processes) or a Kubernetes cluster.
//! - [`traffic`]: the curl-style request engine; [`echo`]: the http-echo backend.
//! - [`stats`]: the statistics behind split verdicts.
//! - [`runner`]: executes suites and emits events; [`report`] consumes them.
//! - [`cli`]: the command line.

pub mod cli;
pub mod cluster;
pub mod echo;
pub mod exit_codes;
pub mod fixtures;
pub mod manifest;
pub mod report;
pub mod runner;
pub mod stats;
pub mod suite;
pub mod targets;
pub mod traffic;
