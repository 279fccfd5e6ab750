//! The local target end to end: the seed fixtures on a real Envoy 1.40 (installed by
//! `ensure_envoy` on first use) and real `meshcheck echo` processes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meshcheck::manifest::{Manifest, ObjectKey, load_file};
use meshcheck::targets::local::{
    LocalEnvironment, LocalError, LocalOptions, ensure_envoy, installing_message, plan,
    validate_config,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MESHCHECK: &str = env!("CARGO_BIN_EXE_meshcheck");

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingress-canary")
}

fn seed() -> Vec<Manifest> {
    [
        "backends.yaml",
        "gateway.yaml",
        "httproute.yaml",
        "destinationrules.yaml",
    ]
    .iter()
    .flat_map(|f| load_file(&fixture_dir().join(f)).unwrap())
    .collect()
}

async fn envoy() -> PathBuf {
    ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap()
}

async fn options() -> LocalOptions {
    LocalOptions::new(envoy().await, PathBuf::from(MESHCHECK))
}

fn gateway() -> ObjectKey {
    ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("istio-test".into()),
        name: "istio-gateway".into(),
    }
}

/// A plain HTTP/1.1 GET with the given Host header; status and body.
async fn get(address: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// An executable shell script standing in for a program that fails, written so that no
/// handle open for writing makes its exec fail with ETXTBSY (see `support::script`).
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake");
    crate::support::script::write_executable(&path, &format!("#!/bin/sh\n{body}\n"));
    path
}

fn alive(pid: u32) -> bool {
    // A reaped child has no /proc entry; a zombie would still be "alive" here, which is
    // what we want to catch too.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn seed_fixtures_split_traffic_and_shut_down_cleanly() {
    let options = options().await;
    let started = std::time::Instant::now();
    let env = LocalEnvironment::start(&seed(), options).await.unwrap();
    eprintln!(
        "bring-up: {:?} in all, Envoy start to LIVE {:?}; backends: {:?}",
        started.elapsed(),
        env.envoy_startup(),
        env.backends()
    );
    assert_eq!(env.backends().len(), 5);
    let address = env
        .gateway_address(&gateway(), 80)
        .expect("listener for port 80");
    assert!(env.gateway_address(&gateway(), 443).is_none());

    let mut bodies: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..200 {
        let (status, body) = get(address, "test.devopscube.com", "/").await;
        assert_eq!(status, 200, "{body}");
        *bodies.entry(body).or_default() += 1;
    }
    let v1 = bodies.get("hello from backend v1\n").copied().unwrap_or(0);
    let v2 = bodies.get("hello from backend v2\n").copied().unwrap_or(0);
    assert_eq!(v1 + v2, 200, "{bodies:?}");
    // 50/50 over 200 requests: below 40 on either side has probability ~1e-18.
    assert!(v1 > 40 && v2 > 40, "{bodies:?}");

    // A Host with a port still matches (`host:*`); an unknown Host has no virtual host.
    let (status, _) = get(address, "test.devopscube.com:8080", "/x").await;
    assert_eq!(status, 200);
    let (status, _) = get(address, "other.example.com", "/").await;
    assert_eq!(status, 404);

    let stats = env.envoy_stats().await.unwrap();
    let v1_stat = stats
        .lines()
        .find(|l| {
            l.starts_with(
                "cluster.outbound|80||backend-v1.istio-test.svc.cluster.local.upstream_rq_200: ",
            )
        })
        .unwrap_or_else(|| panic!("no v1 upstream_rq_200 stat"));
    let counted: u32 = v1_stat.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted >= v1, "{v1_stat} vs {v1} bodies");
    let diagnostics = env.diagnostics().await;
    let titles: Vec<_> = diagnostics.iter().map(|d| d.title.as_str()).collect();
    assert!(titles.contains(&"local processes"), "{titles:?}");
    assert!(
        diagnostics[0]
            .body
            .contains("backend-v2.istio-test.svc.cluster.local.upstream_rq_200"),
        "{}",
        diagnostics[0].body
    );

    let pids = env.pids();
    let dir = env.temp_dir().to_path_buf();
    assert!(pids.iter().all(|p| alive(*p)));
    assert!(dir.join("envoy.json").is_file());
    let report = env.shutdown().await;
    assert!(report.failed.is_empty(), "{report:?}");
    // Two Envoys (the gateway's and the server-side sidecars'), five echoes, the
    // temporary directory.
    assert_eq!(report.removed.len(), 8, "{report:?}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} is still there after shutdown");
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test]
async fn generated_configs_pass_envoy_validation() {
    let envoy = envoy().await;
    let seed_plan = plan(&seed()).unwrap();
    let pods: Vec<Vec<SocketAddr>> = seed_plan
        .workloads
        .iter()
        .enumerate()
        .map(|(w, workload)| {
            (0..workload.replicas)
                .map(|r| SocketAddr::from(([127, 0, 0, 1], 20000 + 10 * w as u16 + r as u16)))
                .collect()
        })
        .collect();
    let config = meshcheck::targets::local::bootstrap(&seed_plan, &pods);
    validate_config(&envoy, &config).await.unwrap();

    let mut manifests = seed();
    manifests.retain(|m| m.kind != "DestinationRule");
    manifests.extend(
        load_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/local/everything.yaml"))
            .unwrap(),
    );
    let full = plan(&manifests).unwrap();
    let config = meshcheck::targets::local::bootstrap(&full, &pods);
    validate_config(&envoy, &config).await.unwrap();

    // And the check can fail: Envoy refuses a broken config.
    let mut broken = config.clone();
    broken["static_resources"]["clusters"][0]["lb_policy"] = "NOT_A_POLICY".into();
    let err = validate_config(&envoy, &broken).await.unwrap_err();
    assert!(matches!(err, LocalError::InvalidConfig { .. }), "{err}");
}

#[tokio::test]
async fn an_echo_that_dies_at_startup_is_named_with_its_output() {
    let mut options = options().await;
    // A backend that prints to stderr and exits non-zero, as a crashing one would.
    let dir = tempfile::tempdir().unwrap();
    options.echo_program = script(dir.path(), "echo 'boom: cannot bind' >&2\nexit 3");
    options.startup_timeout = Duration::from_secs(20);
    let err = LocalEnvironment::start(&seed(), options).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("echo istio-test/backend-v1-0 exited during start-up"),
        "{text}"
    );
    assert!(text.contains("boom: cannot bind"), "{text}");
}

#[tokio::test]
async fn an_envoy_that_rejects_its_config_is_reported() {
    let mut options = options().await;
    let dir = tempfile::tempdir().unwrap();
    options.envoy = script(
        dir.path(),
        "echo 'error initializing configuration' >&2\nexit 1",
    );
    let err = LocalEnvironment::start(&seed(), options).await.unwrap_err();
    let text = err.to_string();
    // The first Envoy to start is the server-side sidecars' (the gateway's needs their
    // addresses): the error names it.
    assert!(
        text.starts_with("inbound sidecars Envoy exited during start-up"),
        "{text}"
    );
    assert!(text.contains("error initializing configuration"), "{text}");
}
