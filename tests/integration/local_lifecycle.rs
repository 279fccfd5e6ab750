//! No stray processes, however meshcheck ends: dropped without shutdown, or SIGKILLed
//! (no destructor runs; the kernel's parent-death signal has to do it).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::process::wait_exit;
use meshcheck::manifest::{Manifest, load_file};
use meshcheck::targets::local::{LocalEnvironment, LocalOptions, ensure_envoy, installing_message};

const HELPER_ENV: &str = "MESHCHECK_LIFECYCLE_HELPER";

fn seed() -> Vec<Manifest> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingress-canary");
    [
        "backends.yaml",
        "gateway.yaml",
        "httproute.yaml",
        "destinationrules.yaml",
    ]
    .iter()
    .flat_map(|f| load_file(&dir.join(f)).unwrap())
    .collect()
}

async fn options() -> LocalOptions {
    let envoy = ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap();
    LocalOptions::new(envoy, PathBuf::from(env!("CARGO_BIN_EXE_meshcheck")))
}

#[tokio::test]
async fn dropping_the_environment_kills_every_child() {
    let env = LocalEnvironment::start(&seed(), options().await)
        .await
        .unwrap();
    let pids = env.pids();
    let dir = env.temp_dir().to_path_buf();
    // The gateway's Envoy, the backends' server-side sidecars' Envoy (the seed's
    // DestinationRules limit injected pods) and five echo processes.
    assert_eq!(pids.len(), 7);
    drop(env);
    for pid in pids {
        assert!(
            wait_exit(pid, Duration::from_secs(10)),
            "pid {pid} survived the drop"
        );
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn children_die_when_meshcheck_is_sigkilled() {
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &helper_test_name(), "--ignored", "--nocapture"])
        .env(HELPER_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pids = None;
    let mut dir = None;
    for line in BufReader::new(helper.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(path) = line.strip_prefix("meshcheck-dir: ") {
            dir = Some(PathBuf::from(path));
        }
        if let Some(list) = line.strip_prefix("meshcheck-pids: ") {
            pids = Some(
                list.split(' ')
                    .map(|p| p.parse::<u32>().unwrap())
                    .collect::<Vec<_>>(),
            );
            break;
        }
    }
    let pids = pids.expect("the helper printed its children");
    let dir = dir.expect("the helper printed its temporary directory");
    assert_eq!(pids.len(), 7);
    helper.kill().unwrap();
    helper.wait().unwrap();
    for pid in pids {
        assert!(
            wait_exit(pid, Duration::from_secs(10)),
            "pid {pid} outlived a SIGKILLed parent"
        );
    }
    // Nothing runs in a SIGKILLed process, so its temporary directory stays; the
    // processes are what must not leak. Tidy up after the helper.
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The helper's name as the test harness knows it: its module path without the crate
/// (`local_lifecycle::helper_holding_an_environment`), so `--exact` finds it wherever
/// this module sits.
fn helper_test_name() -> String {
    let module = module_path!()
        .split_once("::")
        .map_or("", |(_crate, module)| module);
    format!("{module}::helper_holding_an_environment")
}

/// Run by `children_die_when_meshcheck_is_sigkilled` in a separate process: starts the
/// seed fixtures, reports the pids, and waits to be killed.
#[tokio::test]
#[ignore = "helper process for children_die_when_meshcheck_is_sigkilled"]
async fn helper_holding_an_environment() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let env = LocalEnvironment::start(&seed(), options().await)
        .await
        .unwrap();
    let pids: Vec<String> = env.pids().iter().map(u32::to_string).collect();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "meshcheck-dir: {}", env.temp_dir().display()).unwrap();
    writeln!(stdout, "meshcheck-pids: {}", pids.join(" ")).unwrap();
    stdout.flush().unwrap();
    std::future::pending::<()>().await;
}
