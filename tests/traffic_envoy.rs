//! The load engine against a real Envoy answering with a `direct_response`.
//! Runs when `MESHCHECK_ENVOY` names an Envoy binary; otherwise says so and passes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshcheck::traffic::{Flow, IdentityRule, LoadSpec, RequestTemplate, run_load};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

async fn start_envoy(binary: &Path) -> Envoy {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, BOOTSTRAP).unwrap();
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

fn envoy_binary() -> Option<PathBuf> {
    match std::env::var_os("MESHCHECK_ENVOY") {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            eprintln!("skipped: set MESHCHECK_ENVOY to an Envoy binary to run this test");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_direct_response_with_and_without_keep_alive() {
    let Some(binary) = envoy_binary() else {
        return;
    };
    let envoy = start_envoy(&binary).await;
    for keep_alive in [true, false] {
        let spec = LoadSpec {
            request: RequestTemplate::get("http://test.devopscube.com/".parse().unwrap())
                .connect_to(envoy.listener),
            requests: 2_000,
            concurrency: 10,
            timeout: Duration::from_secs(5),
            keep_alive,
            identity: IdentityRule::Body,
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
    };
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(tally.status_codes, BTreeMap::from([(404, 5)]));
}
