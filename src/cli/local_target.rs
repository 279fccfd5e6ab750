//! `meshcheck local-target` (hidden): brings a suite's fixtures up on the local target,
//! prints where each case's requests go (gateway or in-mesh client listener), and
//! keeps everything running until SIGINT or SIGTERM. `scripts/bench.sh` loads this
//! environment with `meshcheck fire` and oha side by side; it is not part of the
//! user-facing interface.

use std::path::PathBuf;

use crate::exit_codes;
use crate::suite::Entry;
use crate::targets::local::{self, LocalEnvironment, LocalOptions};

#[derive(Debug, clap::Args)]
pub struct LocalTargetArgs {
    /// The suite whose fixtures to bring up.
    #[arg(default_value = "suites/ingress-canary.yaml")]
    pub suite: PathBuf,
    /// Envoy binary (default: installed into the cache on first use).
    #[arg(long, env = "MESHCHECK_ENVOY")]
    pub envoy: Option<PathBuf>,
    /// Envoy worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub envoy_concurrency: Option<u32>,
    /// Only make sure Envoy is installed, print its path and exit (the bench runs a
    /// bare `direct_response` Envoy with it).
    #[arg(long)]
    pub print_envoy: bool,
}

pub async fn run(args: LocalTargetArgs) -> i32 {
    let suite = match crate::suite::load_suite(&args.suite) {
        Ok(suite) => suite,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::BAD_INPUT;
        }
    };
    let envoy = match args.envoy {
        Some(path) => Ok(path),
        None => local::ensure_envoy(|dir| eprintln!("{}", local::installing_message(dir))).await,
    };
    if args.print_envoy {
        return match envoy {
            Ok(path) => {
                println!("{}", path.display());
                exit_codes::SUCCESS
            }
            Err(err) => {
                super::print_error(&err);
                exit_codes::SETUP_FAILED
            }
        };
    }
    let echo_program = std::env::current_exe();
    let (envoy, echo_program) = match (envoy, echo_program) {
        (Ok(envoy), Ok(echo)) => (envoy, echo),
        (Err(err), _) => {
            super::print_error(&err);
            return exit_codes::SETUP_FAILED;
        }
        (_, Err(err)) => {
            super::print_error(&err);
            return exit_codes::SETUP_FAILED;
        }
    };
    let mut options = LocalOptions::new(envoy, echo_program);
    options.envoy_concurrency = args.envoy_concurrency;
    let env = match LocalEnvironment::start_fixtures(&suite.fixtures, options).await {
        Ok(env) => env,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::SETUP_FAILED;
        }
    };
    // One line per case, `suite::case URL ADDRESS`, then `ready`: the caller reads
    // stdout up to `ready` and knows everything listens.
    for case in &suite.cases {
        let address = match &case.entry {
            Entry::Gateway(gateway) => env.gateway_address(gateway, case.port),
            Entry::Service { service, from } => env.mesh_address(from, service, case.port),
            Entry::Pod { deployment, .. } => env
                .pod_address(deployment, case.port)
                .ok()
                .map(|(address, _)| address),
        };
        match address {
            Some(addr) => println!("{}::{} {} {addr}", suite.name, case.name, case.url),
            None => println!(
                "{}::{} {} (no listener for {} on port {})",
                suite.name, case.name, case.url, case.entry, case.port
            ),
        }
    }
    println!("ready");

    let code = wait_for_signal().await;
    let report = env.shutdown().await;
    for failed in &report.failed {
        eprintln!("error: cleanup: {failed}");
    }
    code
}

/// Waits for SIGINT or SIGTERM; either is the normal way to stop this command.
async fn wait_for_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            exit_codes::SUCCESS
        }
        (Err(err), _) | (_, Err(err)) => {
            super::print_error(&err);
            exit_codes::SETUP_FAILED
        }
    }
}
