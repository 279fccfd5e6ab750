//! `meshcheck cleanup`: finds what earlier runs left on a cluster (a run killed with
//! SIGKILL, a cancelled CI job) by meshcheck's labels, and deletes it.

use std::path::PathBuf;
use std::time::Duration;

use crate::exit_codes;
use crate::targets::kube::leftovers::LeftoverQuery;
use crate::targets::kube::{KubeEnvironment, KubeOptions, RunId};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("selection").required(true).multiple(true).args(["run_id", "older_than"]))]
pub struct CleanupArgs {
    /// Kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// The objects of this run (its id is in the run's terminal header and reports).
    #[arg(long, value_name = "ID", value_parser = parse_run_id)]
    pub run_id: Option<RunId>,
    /// Every meshcheck-labelled object applied at least this long ago (`2h`, `30m`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<Duration>,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_run_id(value: &str) -> Result<RunId, String> {
    RunId::from_label_value(value).map_err(|e| e.to_string())
}

/// Exit codes: 0 when everything selected was deleted (or listed, with `--dry-run`),
/// including when nothing was found; 3 when the cluster is unreachable or a deletion or
/// a listing failed.
pub async fn cleanup(args: CleanupArgs) -> i32 {
    let options = KubeOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        // This command applies nothing.
        run_id: None,
        ..KubeOptions::default()
    };
    let env = match KubeEnvironment::connect(options).await {
        Ok(env) => env,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::SETUP_FAILED;
        }
    };
    let query = LeftoverQuery {
        run_id: args.run_id.clone(),
        older_than: args.older_than,
    };
    let found = match env.find_leftovers(&query).await {
        Ok(found) => found,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::SETUP_FAILED;
        }
    };
    for unlisted in &found.unlisted {
        eprintln!("warning: cannot list {unlisted}");
    }
    println!(
        "found {} meshcheck object{}{}",
        found.leftovers.len(),
        if found.leftovers.len() == 1 { "" } else { "s" },
        describe(&query)
    );
    for leftover in &found.leftovers {
        let age = leftover.age.map_or_else(
            || "age unknown".to_owned(),
            |age| humantime::format_duration(Duration::from_secs(age.as_secs())).to_string(),
        );
        println!("  {}  run {}  {age}", leftover.key, leftover.run_id);
    }
    let listing_failed = !found.unlisted.is_empty();
    if args.dry_run {
        println!("dry run: nothing deleted");
        return if listing_failed {
            exit_codes::SETUP_FAILED
        } else {
            exit_codes::SUCCESS
        };
    }
    let removal = env.delete_leftovers(&found.leftovers).await;
    for deleted in &removal.deleted {
        println!("deleted {deleted}");
    }
    for failed in &removal.failed {
        eprintln!("error: failed to delete {failed}");
    }
    println!(
        "deleted {}, failed {}",
        removal.deleted.len(),
        removal.failed.len()
    );
    if listing_failed || !removal.failed.is_empty() {
        exit_codes::SETUP_FAILED
    } else {
        exit_codes::SUCCESS
    }
}

fn describe(query: &LeftoverQuery) -> String {
    let mut parts = Vec::new();
    if let Some(run) = &query.run_id {
        parts.push(format!("of run {run}"));
    }
    if let Some(age) = query.older_than {
        parts.push(format!("older than {}", humantime::format_duration(age)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" {}", parts.join(", "))
    }
}
