//! Minimal entry point so `meshcheck fire` can run; the integrator's CLI replaces it.

use clap::{Parser, Subcommand};
use meshcheck::exit_codes;
use meshcheck::traffic::fire;

#[derive(Parser)]
#[command(name = "meshcheck", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fire curl-style requests at a gateway and tally which backend answered.
    Fire(fire::FireArgs),
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            std::process::exit(exit_codes::SETUP_FAILED);
        }
    };
    let code = match cli.command {
        Command::Fire(args) => match runtime.block_on(fire::run(args)) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: failed to {error}");
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
                error.exit_code()
            }
        },
    };
    std::process::exit(code);
}
