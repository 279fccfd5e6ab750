//! The load engine against a real Envoy answering with a `direct_response`.
//! Envoy comes from `ensure_envoy` (`MESHCHECK_ENVOY`, else the cache, installing it
//! on first use), so these tests always run.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use meshcheck::traffic::{Flow, IdentityRule, LoadSpec, RequestTemplate, run_load};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const BOOTSTRAP: &str = r#"
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: devopscube
              domains: ["test.devopscube.com", "test.devopscube.com:*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "hello from envoy" } }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
"#;

/// A running Envoy, killed on drop.
struct Envoy {
    child: Child,
    listener: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

async fn start_envoy(binary: &Path, bootstrap: &str) -> Envoy {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, bootstrap).unwrap();
    let admin_path = dir.path().join("admin-address");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&config)
        .arg("--admin-address-path")
        .arg(&admin_path)
        .args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut envoy = Envoy {
        child,
        listener: "0.0.0.0:0".parse().unwrap(),
        _dir: dir,
    };
    // Envoy writes the admin address once it listens, and reports listeners with
    // their bound ports; poll for both within a deadline (no fixed sleeps).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "envoy did not come up in time");
        assert!(
            envoy.child.try_wait().unwrap().is_none(),
            "envoy exited early"
        );
        let admin = std::fs::read_to_string(&admin_path).unwrap_or_default();
        if !admin.trim().is_empty()
            && let Ok(response) = http_get(admin.trim(), "/listeners?format=json").await
            // The admin answers HTTP/1.1 with a chunked body: the JSON object sits
            // between the chunk size and the terminating chunk.
            && let (Some(start), Some(end)) = (response.find('{'), response.rfind('}'))
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&response[start..=end])
            && let Some(port) =
                json["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                    .as_u64()
        {
            envoy.listener = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).unwrap()));
            return envoy;
        }
        tokio::task::yield_now().await;
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

async fn envoy_binary() -> PathBuf {
    meshcheck::targets::local::ensure_envoy(|dir| {
        eprintln!("installing Envoy into {} (first use)", dir.display());
    })
    .await
    .expect("Envoy is needed for these tests and could not be installed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_direct_response_with_and_without_keep_alive() {
    let binary = envoy_binary().await;
    let envoy = start_envoy(&binary, BOOTSTRAP).await;
    for keep_alive in [true, false] {
        let spec = LoadSpec {
            request: RequestTemplate::get("http://test.devopscube.com/".parse().unwrap())
                .connect_to(envoy.listener),
            requests: 2_000,
            concurrency: 10,
            timeout: Duration::from_secs(5),
            keep_alive,
            identity: IdentityRule::Body,
            response_headers: Vec::new(),
            response_body: false,
        };
        let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
        assert_eq!(tally.errors, BTreeMap::new(), "keep_alive: {keep_alive}");
        assert_eq!(tally.status_codes, BTreeMap::from([(200, 2_000)]));
        assert_eq!(
            tally.identities,
            BTreeMap::from([("hello from envoy".to_owned(), 2_000)])
        );
    }

    // The virtual host only matches the pinned hostname: another Host gets a 404,
    // which proves the Host header, not the address, picked the route.
    let spec = LoadSpec {
        request: RequestTemplate::get("http://elsewhere.example/".parse().unwrap())
            .connect_to(envoy.listener),
        requests: 5,
        concurrency: 1,
        timeout: Duration::from_secs(5),
        keep_alive: true,
        identity: IdentityRule::Body,
        response_headers: Vec::new(),
        response_body: false,
    };
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(tally.status_codes, BTreeMap::from([(404, 5)]));
}

/// A proxy to one upstream, with circuit breakers so tight that at most one request
/// is upstream and one pending: further concurrent requests overflow.
fn breaker_bootstrap(upstream: SocketAddr) -> String {
    let port = upstream.port();
    format!(
        r#"
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: devopscube
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: backend, timeout: 0s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 5s
    circuit_breakers:
      thresholds:
      - {{ max_connections: 1, max_pending_requests: 1, max_requests: 1, max_retries: 0 }}
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_circuit_breaker_overflow_is_flagged() {
    let binary = envoy_binary().await;
    // The backend holds every request until the test hands out permits.
    let gate = Arc::new(Semaphore::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let backend_gate = Arc::clone(&gate);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let gate = Arc::clone(&backend_gate);
            let service = service_fn(move |_request: Request<Incoming>| {
                let gate = Arc::clone(&gate);
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"hello from backend v1",
                    ))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    let envoy = start_envoy(&binary, &breaker_bootstrap(upstream)).await;

    let spec = LoadSpec {
        request: RequestTemplate::get("http://test.devopscube.com/".parse().unwrap())
            .connect_to(envoy.listener),
        requests: 5,
        concurrency: 5,
        timeout: Duration::from_secs(30),
        keep_alive: true,
        identity: IdentityRule::Body,
        response_headers: Vec::new(),
        response_body: false,
    };
    let mut overloaded = 0;
    let tally = run_load(&spec, |sample| {
        if sample.envoy_overloaded {
            assert_eq!(sample.status, Some(503));
            overloaded += 1;
            // Nothing upstream completes before the first overflow (at most one
            // request upstream and one pending fit), so an overflow is certain; then
            // let the held requests finish.
            if overloaded == 1 {
                gate.add_permits(5);
            }
        } else {
            assert_eq!(sample.status, Some(200));
        }
        Flow::Continue
    })
    .await
    .unwrap();
    assert!(tally.envoy_overloaded >= 1);
    let ok = tally.status_codes.get(&200).copied().unwrap_or(0);
    assert!(ok >= 1, "{:?}", tally.status_codes);
    assert_eq!(tally.status_codes.get(&503), Some(&tally.envoy_overloaded));
    assert_eq!(ok + tally.envoy_overloaded, 5);
    assert_eq!(tally.identities["hello from backend v1"], ok);
    assert!(tally.errors.is_empty());
}
