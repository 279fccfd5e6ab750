//! The command line: argument parsing and dispatch. Each command lives in its own
//! module; errors are printed with their cause chain and mapped to documented exit
//! codes (see [`crate::exit_codes`]).

mod local_target;
mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit_codes;

#[derive(Debug, Parser)]
#[command(
    name = "meshcheck",
    version,
    about = "End-to-end conformance and smoke tests for Istio meshes driven by the Gateway API",
    after_help = "Exit codes: 0 all passed, 1 some case failed, 2 bad input, 3 environment/setup error, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run suites (default: `suites/`) on a target (default: local).
    Run(run::RunArgs),
    /// List suites and their cases.
    List(PathsArgs),
    /// Validate suites and their fixtures offline; exit 2 on errors.
    Lint(PathsArgs),
    /// The seed's curl loop as a command: fire requests with the host pinned to an
    /// address and tally which backend answered.
    Fire(crate::traffic::fire::FireArgs),
    /// An http-echo compatible backend (`-text=X -listen=ADDR -status-code=N`).
    Echo(EchoCommand),
    /// Bring a kind cluster with the Gateway API CRDs and Istio up or down.
    Cluster(crate::cluster::ClusterArgs),
    /// Bring a suite's fixtures up on the local target and keep them until killed
    /// (for `scripts/bench.sh`).
    #[command(hide = true)]
    LocalTarget(local_target::LocalTargetArgs),
}

#[derive(Debug, clap::Args)]
pub struct EchoCommand {
    /// http-echo flags, Go style: `-text=hello`, `-listen=:5678`, `-status-code=200`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct PathsArgs {
    /// Suite files or directories of them.
    #[arg(default_value = "suites")]
    pub paths: Vec<PathBuf>,
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::List(args) => list(&args),
        Command::Lint(args) => lint(&args),
        Command::Fire(args) => with_runtime(|| async move {
            crate::traffic::fire::run(args).await.unwrap_or_else(|err| {
                print_error(&err);
                err.exit_code()
            })
        }),
        Command::Echo(command) => match crate::echo::EchoArgs::parse(command.args) {
            Ok(args) => with_runtime(|| async move {
                match crate::echo::serve(args).await {
                    Ok(()) => exit_codes::SUCCESS,
                    Err(err) => {
                        print_error(&err);
                        exit_codes::SETUP_FAILED
                    }
                }
            }),
            Err(err) => {
                print_error(&err);
                exit_codes::BAD_INPUT
            }
        },
        Command::LocalTarget(args) => with_runtime(|| local_target::run(args)),
        Command::Cluster(args) => with_runtime(|| async move {
            crate::cluster::run_cluster(args)
                .await
                .unwrap_or_else(|err| {
                    print_error(&err);
                    err.exit_code()
                })
        }),
    }
}

/// Runs a command's future on a multi-thread runtime sized to the machine (the traffic
/// engine wants every core).
fn with_runtime<F, Fut>(command: F) -> i32
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command()),
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            exit_codes::SETUP_FAILED
        }
    }
}

/// Prints an error the way every command does: the message, then each cause.
pub fn print_error(err: &dyn std::error::Error) {
    eprintln!("error: {err}");
    let mut source = err.source();
    if source.is_some() {
        eprintln!("\nCaused by:");
    }
    while let Some(cause) = source {
        eprintln!("    {cause}");
        source = cause.source();
    }
}

fn list(args: &PathsArgs) -> i32 {
    match crate::suite::load_all(&args.paths) {
        Ok(suites) => {
            for suite in &suites {
                println!("{} ({})", suite.name, suite.file.display());
                for case in &suite.cases {
                    let skip = case
                        .spec
                        .skip
                        .as_deref()
                        .map(|r| format!("  [skipped: {r}]"))
                        .unwrap_or_default();
                    println!("    {}::{}{skip}", suite.name, case.name);
                }
            }
            exit_codes::SUCCESS
        }
        Err(err) => {
            print_error(&err);
            exit_codes::BAD_INPUT
        }
    }
}

fn lint(args: &PathsArgs) -> i32 {
    match crate::suite::load_all(&args.paths) {
        Ok(suites) => {
            let cases: usize = suites.iter().map(|s| s.cases.len()).sum();
            let objects: usize = suites.iter().map(|s| s.manifests.len()).sum();
            println!(
                "ok: {} suites, {cases} cases, {objects} fixture objects",
                suites.len()
            );
            exit_codes::SUCCESS
        }
        Err(err) => {
            print_error(&err);
            exit_codes::BAD_INPUT
        }
    }
}
