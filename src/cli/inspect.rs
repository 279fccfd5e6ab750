//! `meshcheck list` and `meshcheck lint`: offline looks at suites, no target needed.

use std::path::PathBuf;

use crate::exit_codes;
use crate::manifest::SourceLocation;
use crate::runner::CaseFilter;
use crate::suite::{Entry, Suite, SuiteError};

#[derive(Debug, clap::Args)]
pub struct FilterArgs {
    /// Select cases whose `suite::case` name contains this (repeatable); the same
    /// matching as the cargo-test harness (`cargo test --test suites -- PATTERN`).
    #[arg(long = "filter", value_name = "PATTERN")]
    pub filters: Vec<String>,
    /// With --filter: match whole `suite::case` names only.
    #[arg(long)]
    pub exact: bool,
}

impl FilterArgs {
    pub fn to_filter(&self) -> CaseFilter {
        CaseFilter {
            patterns: self.filters.clone(),
            exact: self.exact,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Suite files or directories of them.
    #[arg(default_value = "suites")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Which target `lint` holds the fixtures to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LintTarget {
    /// What the local target refuses is a warning: the suite may be meant for a cluster.
    Any,
    /// What the local target refuses is an error, as `meshcheck run` would stop on it.
    Local,
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Suite files or directories of them.
    #[arg(default_value = "suites")]
    pub paths: Vec<PathBuf>,
    /// `local` turns the local target's refusals into errors.
    #[arg(long, value_enum, default_value_t = LintTarget::Any)]
    pub target: LintTarget,
}

pub fn list(args: &ListArgs) -> i32 {
    let suites = match crate::suite::load_all(&args.paths) {
        Ok(suites) => suites,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::BAD_INPUT;
        }
    };
    let filter = args.filter.to_filter();
    let mut shown = 0usize;
    for suite in &suites {
        let cases: Vec<_> = suite
            .cases
            .iter()
            .filter(|c| filter.matches(&format!("{}::{}", suite.name, c.name)))
            .collect();
        if cases.is_empty() {
            continue;
        }
        println!("{} ({})", suite.name, suite.file.display());
        for case in cases {
            shown += 1;
            let skip = case
                .spec
                .skip
                .as_deref()
                .map(|r| format!("  [skipped: {r}]"))
                .unwrap_or_default();
            println!("    {}::{}{skip}", suite.name, case.name);
        }
    }
    if shown == 0 {
        eprintln!("error: no case matches the filter");
        return exit_codes::BAD_INPUT;
    }
    exit_codes::SUCCESS
}

/// Loads every suite file on its own so one broken file does not hide the next, then
/// translates each suite's fixtures for the local target without starting anything.
pub fn lint(args: &LintArgs) -> i32 {
    let files = match crate::suite::discover(&args.paths) {
        Ok(files) => files,
        Err(err) => {
            super::print_error(&err);
            return exit_codes::BAD_INPUT;
        }
    };
    let mut errors = 0usize;
    let mut warnings = 0usize;
    let mut suites: Vec<Suite> = Vec::new();
    for file in files {
        match crate::suite::load_suite(&file) {
            Ok(suite) => {
                if let Some(first) = suites.iter().find(|s| s.name == suite.name) {
                    errors += 1;
                    super::print_error(&SuiteError::DuplicateSuite {
                        name: suite.name.clone(),
                        first: SourceLocation::file_start(&first.file),
                        second: SourceLocation::file_start(&suite.file),
                    });
                    continue;
                }
                suites.push(suite);
            }
            Err(err) => {
                errors += 1;
                super::print_error(&err);
            }
        }
    }
    for suite in &suites {
        for case in suite.cases.iter().filter(|c| c.tls.insecure_skip_verify) {
            warnings += 1;
            eprintln!(
                "warning: {}: case `{}::{}` turns TLS certificate verification off (request.tls.insecureSkipVerify)",
                case.location, suite.name, case.name
            );
        }
        // Istio applies these to no proxy and says nothing; a typo or a rule in the
        // wrong namespace must not pass as "policy configured".
        for ignored in suite.fixtures.ignored_destination_rules() {
            warnings += 1;
            eprintln!(
                "warning: {}: {} is ignored: {ignored}",
                ignored.rule.manifest.location_of("spec.host"),
                ignored.rule.key()
            );
        }
        // Istio accepts the route and answers these backends' share with 500.
        for unresolved in suite.fixtures.unresolved_backend_refs() {
            warnings += 1;
            eprintln!(
                "warning: {}: {} `{}`: {unresolved}",
                unresolved.route.manifest.location_of(&unresolved.field),
                unresolved.route.key(),
                unresolved.field
            );
        }
        // Parents Istio does not accept and listeners whose references do not resolve:
        // Istio says so only in their status. (A selector it would refuse is an
        // error of the plan below.)
        for warning in suite.fixtures.status_warnings().unwrap_or_default() {
            warnings += 1;
            eprintln!("warning: {}: {}", warning.location, warning.message);
        }
        // An error for `--target local`, a warning otherwise: the suite may still run
        // on a cluster.
        let mut local_refusal = |message: String| {
            let what = match args.target {
                LintTarget::Local => {
                    errors += 1;
                    "error"
                }
                LintTarget::Any => {
                    warnings += 1;
                    "warning"
                }
            };
            eprintln!("{what}: {message}");
        };
        let base_planned = match crate::targets::local::plan_fixtures(&suite.fixtures) {
            Ok(plan) => {
                for note in &plan.notes {
                    eprintln!("note: suite `{}`: {note}", suite.name);
                }
                // An east-west case to a port the local sidecar does not serve would
                // fail at run time; say so with the case's location now.
                for case in suite
                    .cases
                    .iter()
                    .filter(|c| c.spec.skip.is_none() && c.sends_traffic())
                {
                    let Entry::Service { service, .. } = &case.entry else {
                        continue;
                    };
                    if let Some(why) = plan.mesh_gaps.get(&(service.clone(), case.port)) {
                        local_refusal(format!(
                            "{}: case `{}::{}` cannot run on the local target: {why}",
                            case.location, suite.name, case.name
                        ));
                    }
                }
                true
            }
            // A suite whose every case is skipped is never brought up: saying why it
            // could not run is enough.
            Err(err) if suite.cases.iter().all(|c| c.spec.skip.is_some()) => {
                eprintln!(
                    "note: suite `{}` cannot run on the local target (every case is skipped): {err}",
                    suite.name
                );
                false
            }
            Err(err) => {
                local_refusal(format!(
                    "suite `{}` cannot run on the local target: {err}",
                    suite.name
                ));
                false
            }
        };
        // The local target holds an edit to what it holds the fixtures to when a case
        // applies it (`RunningTarget::apply`), so the same refusal shows here first;
        // fixtures it refuses already are not brought up, so their edits never run.
        for case in suite
            .cases
            .iter()
            .filter(|c| base_planned && !c.spec.apply.is_empty() && c.spec.skip.is_none())
        {
            if let Err(err) = crate::targets::local::plan_fixtures(case.fixtures(suite)) {
                local_refusal(format!(
                    "{}: case `{}::{}`: after its `apply`, the local target cannot run the fixtures: {err}",
                    case.location, suite.name, case.name
                ));
            }
        }
    }
    let cases: usize = suites.iter().map(|s| s.cases.len()).sum();
    let objects: usize = suites.iter().map(|s| s.manifests.len()).sum();
    let verdict = if errors == 0 { "ok" } else { "failed" };
    println!(
        "{verdict}: {} suite{}, {cases} cases, {objects} fixture objects; {errors} error{}, {warnings} warning{}",
        suites.len(),
        if suites.len() == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
    );
    if errors > 0 {
        exit_codes::BAD_INPUT
    } else {
        exit_codes::SUCCESS
    }
}
