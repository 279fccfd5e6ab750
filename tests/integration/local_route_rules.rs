//! HTTPRoute matches, filters and timeouts on a real Envoy: what a client sees of a
//! regex, header, query or method match, a redirect's Location, response header edits
//! (rule and backendRef level), and a route timeout. Request-side edits (request
//! headers, rewrites, mirrors) are checked as configuration here and against Istio by
//! `istio_oracle.rs`: the http-echo backends do not show the request they received.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshcheck::manifest::{Manifest, ObjectKey, load_file, load_str};
use meshcheck::targets::local::{LocalEnvironment, LocalOptions, ensure_envoy, installing_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn options() -> LocalOptions {
    let envoy = ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap();
    LocalOptions::new(envoy, PathBuf::from(env!("CARGO_BIN_EXE_meshcheck")))
}

/// The seed's backends and gateway plus `yaml`.
fn with_seed(yaml: &str) -> Vec<Manifest> {
    let mut manifests = load_file(&root().join("fixtures/ingress-canary/backends.yaml")).unwrap();
    manifests.extend(load_file(&root().join("fixtures/ingress-canary/gateway.yaml")).unwrap());
    manifests.extend(load_str(yaml, Path::new("tests/inline.yaml")).unwrap());
    manifests
}

fn gateway() -> ObjectKey {
    ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("istio-test".into()),
        name: "istio-gateway".into(),
    }
}

struct Answer {
    status: u16,
    /// Header lines, names lowercased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn send(address: SocketAddr, method: &str, target: &str, extra: &str) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: rules.example.com\r\n{extra}Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

const RULES: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: slow, namespace: istio-test}
spec:
  replicas: 1
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      containers:
      - name: echo
        image: hashicorp/http-echo
        args: ["-text=slow", "-delay=5s"]
---
apiVersion: v1
kind: Service
metadata: {name: slow, namespace: istio-test}
spec:
  selector: {app: slow}
  ports: [{name: http, port: 80, targetPort: 5678}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rules, namespace: istio-test}
spec:
  parentRefs: [{name: istio-gateway}]
  hostnames: [rules.example.com]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/v[0-9]+/items"}}]
    backendRefs: [{name: backend-v2, port: 80}]
  - matches:
    - path: {value: /api}
      headers: [{name: X-Tier, type: RegularExpression, value: "gold|platinum"}]
    - path: {value: /api}
      queryParams: [{name: tier, value: gold}]
    - path: {value: /api}
      method: DELETE
    backendRefs: [{name: backend-v2, port: 80}]
  - matches: [{path: {value: /api}}]
    backendRefs: [{name: backend-v1, port: 80}]
  - matches: [{path: {value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        hostname: new.example.com
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        statusCode: 302
  - matches: [{path: {value: /moved}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {port: 8080, path: {type: ReplaceFullPath, replaceFullPath: /elsewhere}}
  - matches: [{path: {value: /headers}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Set, value: set-value}]
        add: [{name: X-Added, value: added}]
        remove: [X-App-Name]
    backendRefs:
    - name: backend-v1
      port: 80
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          add: [{name: X-Backend, value: v1}]
  - matches: [{path: {value: /split-headers}}]
    backendRefs:
    - name: backend-v1
      port: 80
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          set: [{name: X-Backend, value: v1}]
    - name: backend-v2
      port: 80
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          set: [{name: X-Backend, value: v2}]
  - matches: [{path: {value: /slow}}]
    timeouts: {request: 300ms}
    backendRefs: [{name: slow, port: 80}]
"#;

#[tokio::test]
async fn matches_filters_and_timeouts_as_a_client_sees_them() {
    let env = LocalEnvironment::start(&with_seed(RULES), options().await)
        .await
        .unwrap();
    let address = env.gateway_address(&gateway(), 80).unwrap();
    let v1 = "hello from backend v1\n";
    let v2 = "hello from backend v2\n";

    // Matches: a regex path must match the whole path (nothing else on the host
    // takes `/v12/items/more`: 404).
    for (method, target, extra, status, body) in [
        ("GET", "/v12/items", "", 200, v2),
        ("GET", "/v12/items/more", "", 404, ""),
        ("GET", "/vx/items", "", 404, ""),
        ("GET", "/api", "X-Tier: platinum\r\n", 200, v2),
        // A regex header match is on the whole value.
        ("GET", "/api", "X-Tier: golden\r\n", 200, v1),
        ("GET", "/api?tier=gold", "", 200, v2),
        ("GET", "/api?tier=silver", "", 200, v1),
        ("DELETE", "/api", "", 200, v2),
        ("GET", "/api", "", 200, v1),
    ] {
        let answer = send(address, method, target, extra).await;
        assert_eq!(answer.status, status, "{method} {target} {extra:?}");
        if status == 200 {
            assert_eq!(answer.body, body, "{method} {target} {extra:?}");
        }
    }

    // A redirect changing scheme, host and path prefix: no port (the scheme's default).
    let answer = send(address, "GET", "/old/page", "").await;
    assert_eq!(answer.status, 302);
    assert_eq!(
        answer.header("location"),
        Some("https://new.example.com/new/page")
    );
    // The request's scheme and host, the port written, the full path replaced; 301 by
    // default.
    let answer = send(address, "GET", "/moved/x", "").await;
    assert_eq!(answer.status, 301);
    assert_eq!(
        answer.header("location"),
        Some("http://rules.example.com:8080/elsewhere")
    );

    // Response headers: set, added, removed, and the backendRef's own.
    let answer = send(address, "GET", "/headers", "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, v1);
    assert_eq!(answer.header("x-set"), Some("set-value"));
    assert_eq!(answer.header("x-added"), Some("added"));
    assert_eq!(answer.header("x-backend"), Some("v1"));
    assert_eq!(answer.header("x-app-name"), None, "{:?}", answer.headers);
    // Without the filter the backend's header reaches the client.
    let plain = send(address, "GET", "/api", "").await;
    assert_eq!(plain.header("x-app-name"), Some("http-echo"));
    // Weighted backends: each response carries the header of the backend that sent it.
    for _ in 0..6 {
        let answer = send(address, "GET", "/split-headers", "").await;
        let expected = if answer.body == v1 { "v1" } else { "v2" };
        assert_eq!(
            answer.header("x-backend"),
            Some(expected),
            "{}",
            answer.body
        );
    }

    // A route timeout: the backend answers after 5s, the gateway gives up with a 504.
    let started = Instant::now();
    let answer = send(address, "GET", "/slow", "").await;
    let took = started.elapsed();
    assert_eq!(answer.status, 504, "{}", answer.body);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    let report = env.shutdown().await;
    assert!(report.failed.is_empty(), "{report:?}");
}
