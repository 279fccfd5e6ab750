//! The integration tests: one test binary, one module per area, so the crate and its
//! dependencies are linked once rather than once per file. Test names carry the module
//! (`cargo test --test integration kube_api::`). The suites harness (`tests/suites.rs`)
//! is a separate binary because it has its own `main` (libtest-mimic).
//!
//! Every test here shares one process with the others, on libtest's threads: a test
//! must not change process-wide state (environment variables, the current directory,
//! the umask, signal dispositions); it passes such settings to the child processes it
//! starts instead. The file descriptor table is shared too: a program a test writes
//! and then runs goes through `support::script`.

mod support;

mod bad_input;
mod cli;
mod expect_checks;
mod istio_oracle;
mod kube_api;
mod kube_cleanup;
mod kube_cluster;
mod kube_dns;
mod kube_run;
mod kube_scripts;
mod kube_tier;
mod local_attach;
mod local_behaviour;
mod local_conditions;
mod local_echo;
mod local_echo_basic;
mod local_https;
mod local_install;
mod local_lifecycle;
mod local_route_rules;
mod local_target;
mod local_translate;
mod policy_suites;
mod reliability_bad_input;
mod reliability_faults;
mod reliability_interrupt;
mod reliability_kube;
mod reports;
mod run_options;
mod suite_from;
mod suite_tls;
mod traffic_engine;
mod traffic_envoy;
mod traffic_tls;
