//! The cluster tier: the seed scenario on a real cluster (kind from `meshcheck cluster
//! up`, or EKS/GKE). It runs only with `MESHCHECK_E2E=1` and a kubeconfig; otherwise
//! every trial is reported ignored and the reason is printed, so a missing cluster is
//! never mistaken for a pass.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use libtest_mimic::{Arguments, Failed, Trial};
use meshcheck::manifest::{Manifest, ObjectKey, load_file};
use meshcheck::target::kube::{KubeEnvironment, KubeOptions, cluster_tier_configured};

const HOSTNAME: &str = "test.devopscube.com";
const REQUESTS: usize = 40;

fn fixtures() -> Result<Vec<Manifest>, Failed> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingress-canary");
    let mut all = Vec::new();
    for file in [
        "backends.yaml",
        "gateway.yaml",
        "httproute.yaml",
        "destinationrules.yaml",
    ] {
        all.extend(load_file(&dir.join(file)).map_err(|e| e.to_string())?);
    }
    Ok(all)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn preflight(options: KubeOptions) -> Result<(), Failed> {
    runtime().block_on(async {
        let env = KubeEnvironment::connect(options)
            .await
            .map_err(|e| e.to_string())?;
        let report = env.preflight().await.map_err(|e| e.to_string())?;
        if report.is_ready() {
            Ok(())
        } else {
            Err(format!("cluster is missing prerequisites:\n{report}").into())
        }
    })
}

/// One plain HTTP/1 GET to `addr` with the route's hostname, like the seed's curl loop
/// after pinning the hostname in /etc/hosts.
async fn get(addr: std::net::SocketAddr) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = http::Request::get("/")
        .header("host", HOSTNAME)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(String::from_utf8_lossy(&body).trim().to_owned())
}

async fn canary(env: &mut KubeEnvironment, manifests: &[Manifest]) -> Result<(), String> {
    env.apply(manifests).await.map_err(|e| e.to_string())?;
    env.wait_ready(manifests, &|line| eprintln!("  {line}"))
        .await
        .map_err(|e| e.to_string())?;
    let gateway = ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("istio-test".into()),
        name: "istio-gateway".into(),
    };
    let addr = env
        .gateway_address(&gateway, 80)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("  gateway address {addr}");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    // Routes are Accepted before every Envoy has its config; allow a short settle with a
    // bounded number of retries per request, as the runner's convergence step would.
    for _ in 0..REQUESTS {
        let mut last = String::new();
        let mut ok = false;
        for attempt in 0..20 {
            match get(addr).await {
                Ok(body) => {
                    *seen.entry(body).or_default() += 1;
                    ok = true;
                    break;
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(250 * (attempt + 1))).await;
        }
        if !ok {
            return Err(format!("request through {addr} kept failing: {last}"));
        }
    }
    eprintln!("  responses: {seen:?}");
    for backend in ["hello from backend v1", "hello from backend v2"] {
        if !seen.contains_key(backend) {
            return Err(format!(
                "no response from {backend:?} in {REQUESTS} requests: {seen:?}"
            ));
        }
    }
    let stats = env.proxy_stats(&gateway).await.map_err(|e| e.to_string())?;
    // Istio trims Envoy's stats to a default inclusion list; `server.live` is always in it.
    if !stats.lines().any(|l| l.starts_with("server.live: 1")) {
        return Err(format!(
            "gateway Envoy stats do not show a live server:\n{}",
            stats.lines().take(20).collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(())
}

fn ingress_canary(options: KubeOptions) -> Result<(), Failed> {
    runtime().block_on(async {
        let manifests = fixtures()?;
        let mut env = KubeEnvironment::connect(options)
            .await
            .map_err(|e| e.to_string())?;
        let result = canary(&mut env, &manifests).await;
        let mut message = String::new();
        if let Err(e) = &result {
            message.push_str(e);
            for section in env.diagnostics(&["istio-test".to_owned()]).await {
                message.push_str(&format!("\n--- {} ---\n{}", section.title, section.body));
            }
        }
        // Clean up whatever happened; a failure to clean up fails the trial too.
        let report = env.cleanup().await;
        eprintln!("  cleanup removed {:?}", report.removed);
        if !report.failed.is_empty() {
            message.push_str(&format!("\ncleanup failed: {:?}", report.failed));
        }
        if message.is_empty() {
            Ok(())
        } else {
            Err(message.into())
        }
    })
}

fn main() {
    let args = Arguments::from_args();
    let configured = cluster_tier_configured();
    let trial = |name: &'static str, run: fn(KubeOptions) -> Result<(), Failed>| {
        let options = configured.clone().ok();
        Trial::test(name, move || match options {
            Some(options) => run(options),
            None => Err("not configured".into()),
        })
        .with_ignored_flag(configured.is_err())
    };
    let trials = vec![
        trial("cluster::ingress_canary", ingress_canary),
        trial("cluster::preflight", preflight),
    ];
    if let Err(reason) = &configured {
        eprintln!("cluster tier skipped: {reason}");
    }
    libtest_mimic::run(&args, trials).exit();
}
