//! The command line: argument parsing and dispatch. Each command lives in its own
//! module; errors are printed with their cause chain and mapped to documented exit
//! codes (see [`crate::exit_codes`]).

mod cleanup;
mod inspect;
mod local_target;
mod run;

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
    List(inspect::ListArgs),
    /// Validate suites and their fixtures offline, including the local target's
    /// translation; exit 2 on errors.
    Lint(inspect::LintArgs),
    /// Print a JSON Schema: `meshcheck schema report` is the `--json` report's.
    Schema {
        #[arg(value_enum)]
        which: SchemaKind,
    },
    /// The seed's curl loop as a command: fire requests with the host pinned to an
    /// address and tally which backend answered.
    Fire(crate::traffic::fire::FireArgs),
    /// An http-echo compatible backend (`-text=X -listen=ADDR -status-code=N`), or with
    /// `-echo-basic` one that answers like the Gateway API conformance image echo-basic
    /// (settings from its environment: HTTP_PORT, NAMESPACE, POD_NAME, ...).
    Echo(EchoCommand),
    /// Delete what earlier kube runs left on the cluster (by run id or age); only
    /// objects carrying meshcheck's labels.
    Cleanup(cleanup::CleanupArgs),
    /// Bring a kind cluster with the Gateway API CRDs and Istio up or down.
    Cluster(crate::cluster::ClusterArgs),
    /// Bring a suite's fixtures up on the local target and keep them until killed
    /// (for `scripts/bench.sh`).
    #[command(hide = true)]
    LocalTarget(local_target::LocalTargetArgs),
}

#[derive(Debug, clap::Args)]
pub struct EchoCommand {
    /// http-echo flags, Go style: `-text=hello`, `-listen=:5678`, `-status-code=200`;
    /// or `-echo-basic [-listen=ADDR]`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// The JSON report written by `meshcheck run --json FILE`.
    Report,
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::List(args) => inspect::list(&args),
        Command::Lint(args) => inspect::lint(&args),
        Command::Schema {
            which: SchemaKind::Report,
        } => match serde_json::to_string_pretty(&crate::report::report_schema()) {
            Ok(text) => {
                println!("{text}");
                exit_codes::SUCCESS
            }
            Err(err) => {
                print_error(&err);
                exit_codes::SETUP_FAILED
            }
        },
        Command::Fire(args) => with_load_runtime(|| async move {
            crate::traffic::fire::run(args).await.unwrap_or_else(|err| {
                print_error(&err);
                err.exit_code()
            })
        }),
        Command::Echo(command) => {
            match crate::echo::EchoMode::parse(command.args, |name| std::env::var(name).ok()) {
                Ok(mode) => with_runtime(|| async move {
                    match mode.serve().await {
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
            }
        }
        Command::Cleanup(args) => with_runtime(|| cleanup::cleanup(args)),
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

/// Like [`with_runtime`], but on a single core (e.g. pinned with `taskset`) a
/// current-thread runtime: the request loop then runs without the multi-thread
/// scheduler's cross-thread wake-ups, as oha does per core.
fn with_load_runtime<F, Fut>(command: F) -> i32
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    if !one_core {
        return with_runtime(command);
    }
    run_on(tokio::runtime::Builder::new_current_thread(), command)
}

/// Runs a command's future on a multi-thread runtime sized to the machine (the traffic
/// engine wants every core).
fn with_runtime<F, Fut>(command: F) -> i32
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    run_on(tokio::runtime::Builder::new_multi_thread(), command)
}

fn run_on<F, Fut>(mut builder: tokio::runtime::Builder, command: F) -> i32
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(command()),
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            exit_codes::SETUP_FAILED
        }
    }
}

/// Prints an error the way every command does: the message, then each cause.
pub fn print_error(err: &dyn std::error::Error) {
    eprint!("{}", crate::report::caused_by(err));
}
