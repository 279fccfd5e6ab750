//! HTTPRoute matches, filters and timeouts on a real Envoy. What a client sees: a
//! regex, header, query or method match, a redirect's Location, response header edits
//! (rule and backendRef level), a route timeout. What the backend sees, through
//! echo-basic backends (their body is the request as received): request header edits
//! (rule and backendRef level), URL rewrites of host and path, a `Host` header set;
//! and mirrors, by Envoy's count of requests to the mirror's cluster.

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
    // The request's scheme and host, the port written, the full path replaced; 302 by
    // default (the CRD's default, which a cluster stores).
    let answer = send(address, "GET", "/moved/x", "").await;
    assert_eq!(answer.status, 302);
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
    // Envoy's timers may fire a millisecond or two early (298 ms was seen for 300 ms):
    // the point is that the gateway gave up near the route timeout, long before the
    // backend's 5 s answer.
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    let report = env.shutdown().await;
    assert!(report.failed.is_empty(), "{report:?}");
}

/// Three echo-basic backends (the conformance image, run as `meshcheck echo
/// -echo-basic`: the body is the request as received) behind a gateway, and a route
/// with request-side filters.
const REQUEST_SIDE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: infra}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: request-side, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [req.example.com]
  rules:
  - matches: [{path: {value: /headers}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: set-value}]
        add: [{name: X-Add, value: added}]
        remove: [X-Remove]
    backendRefs:
    - name: one
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          add: [{name: X-Backend, value: one}]
  - matches: [{path: {value: /full}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example.com, path: {type: ReplaceFullPath, replaceFullPath: /one}}
    backendRefs: [{name: one, port: 8080}]
  - matches: [{path: {value: /prefix}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /replaced}}
    backendRefs: [{name: one, port: 8080}]
  - matches: [{path: {value: /strip}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: one, port: 8080}]
  - matches: [{path: {value: /host-header}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: Host, value: by-header.example.com}]
    backendRefs: [{name: one, port: 8080}]
  - matches: [{path: {value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: mirror, port: 8080}}
    - type: RequestMirror
      requestMirror: {backendRef: {name: two, port: 8080}, percent: 0}
    backendRefs: [{name: one, port: 8080}]
"#;

fn echo_basic_backend(name: &str) -> String {
    format!(
        r#"
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: infra}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: {name}
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        env:
        - name: POD_NAME
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        - name: NAMESPACE
          valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: infra}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080, targetPort: 3000}}]
"#
    )
}

async fn echoed(address: SocketAddr, target: &str, extra: &str) -> meshcheck::echo::EchoedRequest {
    let answer = send_to(address, "req.example.com", target, extra).await;
    assert_eq!(answer.status, 200, "{target}: {}", answer.body);
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{target}: {e}: {}", answer.body))
}

async fn send_to(address: SocketAddr, host: &str, target: &str, extra: &str) -> Answer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

fn header<'a>(request: &'a meshcheck::echo::EchoedRequest, name: &str) -> Option<&'a [String]> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// `name`'s counter in Envoy's stats text, 0 when Envoy has not created it yet.
fn counter(stats: &str, name: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": ")?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn request_side_filters_as_the_backend_sees_them() {
    let mut yaml = REQUEST_SIDE.to_string();
    for name in ["one", "two", "mirror"] {
        yaml.push_str(&echo_basic_backend(name));
    }
    let manifests = load_str(&yaml, Path::new("tests/inline.yaml")).unwrap();
    let env = LocalEnvironment::start(&manifests, options().await)
        .await
        .unwrap();
    let gateway = ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("infra".into()),
        name: "gw".into(),
    };
    let address = env.gateway_address(&gateway, 80).unwrap();

    // Header edits: set overwrites, add appends, remove drops; the backendRef's own
    // edit joins the rule's.
    let seen = echoed(
        address,
        "/headers",
        "X-Set: from-client\r\nX-Add: from-client\r\nX-Remove: gone\r\n",
    )
    .await;
    assert_eq!(header(&seen, "x-set"), Some(&["set-value".to_string()][..]));
    let added = header(&seen, "x-add").unwrap().join(",");
    assert!(
        added.contains("from-client") && added.contains("added"),
        "{added}"
    );
    assert_eq!(header(&seen, "x-remove"), None, "{:?}", seen.headers);
    assert_eq!(header(&seen, "x-backend"), Some(&["one".to_string()][..]));

    // URL rewrites: the host and the full path; a prefix, keeping the rest and the
    // query; the prefix `/` dropping the matched prefix.
    let seen = echoed(address, "/full/a?q=1", "").await;
    assert_eq!(seen.host, "rewritten.example.com");
    assert_eq!(seen.path, "/one?q=1");
    let seen = echoed(address, "/prefix/a/b?q=1", "").await;
    assert_eq!(seen.path, "/replaced/a/b?q=1");
    assert_eq!(seen.host, "req.example.com");
    assert_eq!(echoed(address, "/strip/a", "").await.path, "/a");
    assert_eq!(echoed(address, "/strip", "").await.path, "/");
    // A Host header set is a host rewrite.
    assert_eq!(
        echoed(address, "/host-header", "").await.host,
        "by-header.example.com"
    );

    // Mirrors: every request reaches the mirror too (Envoy's own count of requests to
    // its cluster); the 0% mirror gets none.
    let mirrored = "cluster.outbound|8080||mirror.infra.svc.cluster.local.upstream_rq_total";
    let never = "cluster.outbound|8080||two.infra.svc.cluster.local.upstream_rq_total";
    let requests = 5;
    for _ in 0..requests {
        let seen = echoed(address, "/mirror", "").await;
        assert!(seen.pod.starts_with("one-"), "{}", seen.pod);
    }
    // The mirrored requests are sent beside the real ones; wait for Envoy to count
    // them, polling with backoff.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pause = Duration::from_millis(20);
    let stats = loop {
        let stats = env.envoy_stats().await.unwrap();
        if counter(&stats, mirrored) >= requests || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    };
    assert_eq!(counter(&stats, mirrored), requests, "{mirrored}");
    assert_eq!(counter(&stats, never), 0, "{never}");
    let report = env.shutdown().await;
    assert!(report.failed.is_empty(), "{report:?}");
}
