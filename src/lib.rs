//! meshcheck: end-to-end conformance and smoke tests for Istio meshes driven by the
//! Kubernetes Gateway API.
//!
//! Layers, from the bottom up (each uses only those below it; the exceptions, and
//! how a suite file becomes a verdict, are in `docs/architecture.md`):
//! - [`manifest`]: Kubernetes objects read from fixture files, with positions and
//!   group-aware kinds.
//! - [`fixtures`]: the IO-free view of a suite's fixtures: objects decoded once, typed
//!   lookups (the pods behind a Service, the DestinationRule for a host, echo
//!   arguments, parsed HTTPRoutes), Istio's names.
//! - [`suite`]: the suite model (YAML) and its loader; [`suite::expect`]: what a case
//!   expects, one module per kind, each with its loader and judge.
//! - [`targets`]: where a suite runs, behind the `Target` and `RunningTarget` traits:
//!   the embedded local target (real Envoy, echo processes) or a Kubernetes cluster.
//! - [`runner`]: executes suites on any target and emits [`runner::Event`]s; it never
//!   prints.
//! - [`report`]: the reporters (terminal, JSON, JUnit, HTML), which consume the
//!   events and put them, typed failures included, into words.
//! - [`cli`]: the command line; [`cluster`]: `meshcheck cluster up`/`down` (kind).
//!
//! Used from any layer: [`traffic`] (the curl-style request engine and
//! `meshcheck fire`), [`stats`] (the statistics behind split verdicts), [`echo`] (the
//! http-echo and echo-basic backends), [`exit_codes`], [`error_chain`] (the one renderer of an error
//! and its causes; `report` re-exports it).

pub mod cli;
pub mod cluster;
pub mod echo;
pub mod error_chain;
pub mod exit_codes;
pub mod fixtures;
pub mod manifest;
pub mod report;
pub mod runner;
pub mod stats;
pub mod suite;
pub mod targets;
pub mod traffic;
