//! echo-basic backends (the Gateway API conformance image) on the local target: the
//! `meshcheck echo -echo-basic` process itself, the planner on the v1.3.0 conformance
//! manifests (`tests/data/gateway-api-v1.3.0/`), and a request through real Envoy that
//! names the pod and namespace that answered.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use meshcheck::echo::{EchoedRequest, deployment_of_pod};
use meshcheck::manifest::{Manifest, ObjectKey, load_file, load_str};
use meshcheck::targets::local::{
    LocalEnvironment, LocalOptions, ensure_envoy, installing_message, plan,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESHCHECK: &str = env!("CARGO_BIN_EXE_meshcheck");

fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/gateway-api-v1.3.0")
        .join(file)
}

/// A running `meshcheck echo -echo-basic`, killed on drop; its stdout after the
/// announcement stays readable for the log lines.
struct EchoBasic {
    child: Child,
    address: SocketAddr,
    stdout: BufReader<ChildStdout>,
}

impl Drop for EchoBasic {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EchoBasic {
    fn start(env: &[(&str, &str)]) -> EchoBasic {
        let mut command = Command::new(MESHCHECK);
        command
            .args(["echo", "-echo-basic", "-listen=127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The test process's own environment must not reach the answer.
        for name in meshcheck::echo::basic_mode::ENV_VARS {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        EchoBasic {
            child,
            address,
            stdout,
        }
    }

    fn next_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }
}

/// One raw HTTP/1.1 request (`head` without the final blank line); status, lowercased
/// head, body.
fn request(address: SocketAddr, head: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "{head}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn echo_basic_mode_answers_with_the_request_and_the_pod() {
    let mut echo = EchoBasic::start(&[
        ("POD_NAME", "infra-backend-v1-7d9b8f5c6-x2x4z"),
        ("NAMESPACE", "gateway-conformance-infra"),
        ("SERVICE_NAME", "infra-backend-v1"),
    ]);
    assert_eq!(
        echo.next_line(),
        format!(
            "Starting server, listening on port {} (http)",
            echo.address.port()
        )
    );
    let (status, head, body) = request(
        echo.address,
        "GET /prefix/foo?query=1&delay=5ms HTTP/1.1\r\nHost: example.com\r\nX-Multi: a\r\nx-multi: b\r\nX-Echo-Set-Header: X-Header-Set: set-value, X-Two:1\r\nX-Echo-Set-Header: X-Two:2",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    assert!(
        head.contains("\r\nx-content-type-options: nosniff"),
        "{head}"
    );
    assert!(head.contains("\r\nx-header-set: set-value"), "{head}");
    assert!(head.contains("\r\nx-two: 1,2"), "{head}");
    let echoed: EchoedRequest = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed.path, "/prefix/foo?query=1&delay=5ms");
    assert_eq!(echoed.path_without_query(), "/prefix/foo");
    assert_eq!(echoed.host, "example.com");
    assert_eq!(echoed.method, "GET");
    assert_eq!(echoed.proto, "HTTP/1.1");
    assert_eq!(
        echoed.headers.get("X-Multi"),
        Some(&vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(echoed.header("host"), None);
    assert_eq!(echoed.namespace, "gateway-conformance-infra");
    assert_eq!(echoed.pod, "infra-backend-v1-7d9b8f5c6-x2x4z");
    assert_eq!(echoed.service, "infra-backend-v1");
    assert_eq!(echoed.ingress, "");
    assert_eq!(echoed.deployment(), Some("infra-backend-v1"));
    // The image's per-request log line, which mirror checks read.
    assert_eq!(
        echo.next_line()
            .split(" to client (")
            .next()
            .unwrap_or_default(),
        "Echoing back request made to /prefix/foo?query=1&delay=5ms"
    );

    let (status, _, body) = request(echo.address, "POST /status/503 HTTP/1.1\r\nHost: x");
    assert_eq!((status, body.as_str()), (503, ""));
    let (status, _, body) = request(echo.address, "GET /health HTTP/1.1\r\nHost: x");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, _, body) = request(echo.address, "GET /?delay=soon HTTP/1.1\r\nHost: x");
    assert_eq!(status, 500);
    assert!(body.contains("invalid duration"), "{body}");
}

#[test]
fn echo_basic_mode_refuses_what_it_cannot_serve() {
    for (env, expected) in [
        (vec![("GRPC_ECHO_SERVER", "1")], "GRPC_ECHO_SERVER is set"),
        (
            vec![("TLS_SERVER_CERT", "/c"), ("TLS_SERVER_PRIVKEY", "/k")],
            "TLS_SERVER_CERT is set",
        ),
        (vec![("HTTP_PORT", "web")], "invalid HTTP_PORT `web`"),
    ] {
        let mut command = Command::new(MESHCHECK);
        command.args(["echo", "-echo-basic"]);
        for name in meshcheck::echo::basic_mode::ENV_VARS {
            command.env_remove(name);
        }
        let output = command.envs(env).output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let output = Command::new(MESHCHECK)
        .args(["echo", "-echo-basic", "-text=hi"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

fn base_manifests() -> Vec<Manifest> {
    load_file(&data("base-manifests.yaml")).unwrap()
}

/// The base manifests' objects of these kinds and names (and every Namespace).
fn pick(manifests: &[Manifest], kinds: &[&str], names: &[&str]) -> Vec<Manifest> {
    manifests
        .iter()
        .filter(|m| {
            m.kind == "Namespace"
                || (kinds.contains(&m.kind.as_str()) && names.contains(&m.name.as_str()))
        })
        .cloned()
        .collect()
}

const HTTP_BACKENDS: &[&str] = &[
    "infra-backend-v1",
    "infra-backend-v2",
    "infra-backend-v3",
    "app-backend-v1",
    "app-backend-v2",
    "web-backend",
];

#[test]
fn the_http_echo_basic_backends_of_the_base_manifests_plan() {
    let manifests = pick(&base_manifests(), &["Deployment", "Service"], HTTP_BACKENDS);
    let planned = plan(&manifests).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(planned.workloads.len(), 6);
    for workload in &planned.workloads {
        assert_eq!(workload.echo_args, ["-echo-basic"]);
        assert_eq!(workload.pod_port, 3000);
        assert_eq!(workload.pods.len(), workload.replicas as usize);
        let names: BTreeSet<&str> = workload.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), workload.pods.len(), "pod names are distinct");
        for pod in &workload.pods {
            assert_eq!(
                deployment_of_pod(&pod.name),
                Some(workload.deployment.name.as_str())
            );
            // Exactly the downward-API variables the manifests set.
            assert_eq!(
                pod.env.keys().map(String::as_str).collect::<Vec<_>>(),
                ["NAMESPACE", "POD_NAME"]
            );
            assert_eq!(pod.env["POD_NAME"], pod.name);
            assert_eq!(pod.env["NAMESPACE"], workload.namespace);
        }
    }
    let v1 = planned
        .workloads
        .iter()
        .position(|w| w.deployment.name == "infra-backend-v1")
        .unwrap();
    assert_eq!(planned.workloads[v1].replicas, 2);
    assert_eq!(planned.workloads[v1].namespace, "gateway-conformance-infra");
    // Its Service's ports: 8080 and 8082 reach the pods' HTTP port 3000; 8081 targets
    // echo-basic's h2c port 3001, which is not served, so it has no endpoints.
    let endpoints = |port: u16| {
        planned
            .clusters
            .iter()
            .find(|c| c.service.name == "infra-backend-v1" && c.port == port)
            .unwrap()
            .workloads
            .clone()
    };
    assert_eq!(endpoints(8080), [v1]);
    // The image's h2c port: meshcheck's echo-basic answers h2c on its HTTP port.
    assert_eq!(endpoints(8081), [v1]);
    assert_eq!(endpoints(8082), [v1]);
    // Deterministic: the same names on every plan.
    assert_eq!(plan(&manifests).unwrap().workloads, planned.workloads);
}

/// The Gateway `same-namespace` and a route from it to infra-backend-v1 port PORT.
const GATEWAY_ROUTE_TO_PORT: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: same-namespace
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: h2c
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: PORT
"#;

/// The image's h2c port (the Service's port 8081, appProtocol kubernetes.io/h2c)
/// reaches echo-basic over HTTP/2 with prior knowledge, its HTTP port over HTTP/1.1,
/// and both echo the request as the image does (`/` as the target, not the URI
/// HTTP/2's pseudo-headers make).
#[tokio::test]
async fn through_envoy_the_h2c_port_is_answered_over_http2() {
    let envoy = ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap();
    for (port, proto) in [("8081", "HTTP/2.0"), ("8080", "HTTP/1.1")] {
        let mut manifests = pick(
            &base_manifests(),
            &["Deployment", "Service"],
            &["infra-backend-v1"],
        );
        manifests.extend(
            load_str(
                &GATEWAY_ROUTE_TO_PORT.replace("PORT", port),
                Path::new("fixtures/h2c.yaml"),
            )
            .unwrap(),
        );
        let env = LocalEnvironment::start(
            &manifests,
            LocalOptions::new(envoy.clone(), PathBuf::from(MESHCHECK)),
        )
        .await
        .unwrap_or_else(|err| panic!("{err}"));
        let gateway = ObjectKey {
            kind: "Gateway".into(),
            namespace: Some("gateway-conformance-infra".into()),
            name: "same-namespace".into(),
        };
        let address = env.gateway_address(&gateway, 80).unwrap();
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "port {port}: {response}");
        let echoed: EchoedRequest = serde_json::from_str(body).unwrap();
        assert_eq!(echoed.proto, proto, "port {port}: {body}");
        assert_eq!(echoed.path, "/?x=1", "port {port}: {body}");
        assert_eq!(echoed.host, "example.com", "port {port}: {body}");
        env.shutdown().await;
    }
}

#[test]
fn grpc_and_tls_echo_basic_backends_are_refused_with_the_reason() {
    for (name, line, reason) in [
        ("grpc-infra-backend-v1", 567, "GRPC_ECHO_SERVER is set"),
        ("tls-backend", 293, "TLS_SERVER_CERT is set"),
    ] {
        let manifests = pick(&base_manifests(), &["Deployment"], &[name]);
        let err = plan(&manifests).unwrap_err().to_string();
        assert!(
            err.contains(&format!("base-manifests.yaml:{line}:")) && err.contains(reason),
            "{name}: {err}"
        );
    }
}

#[test]
fn the_mesh_manifests_plan_with_echo_advanced_on_its_http_port() {
    let manifests = load_file(&data("mesh-manifests.yaml")).unwrap();
    let planned = plan(&manifests).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(planned.workloads.len(), 3);
    for workload in &planned.workloads {
        assert_eq!(workload.echo_args[0], "-echo-advanced");
        assert_eq!(workload.pod_port, 8080);
        // The consumer namespace's pod runs with the image's defaults: no TLS port.
        let unserved: &[u16] = if workload.namespace == "gateway-conformance-mesh" {
            &[7070, 8443, 9090]
        } else {
            &[7070, 9090]
        };
        assert_eq!(
            workload.unserved_ports.keys().copied().collect::<Vec<_>>(),
            unserved
        );
        for pod in &workload.pods {
            assert_eq!(pod.env["HOSTNAME"], pod.name);
            assert_eq!(
                deployment_of_pod(&pod.name),
                Some(workload.deployment.name.as_str())
            );
        }
    }
    // Service echo selects both versions in gateway-conformance-mesh: ports 80 and 8080
    // reach their HTTP port; https, tcp and grpc have no endpoints here.
    let echo = |port: u16| {
        planned
            .clusters
            .iter()
            .find(|c| {
                c.service.name == "echo"
                    && c.service.namespace.as_deref() == Some("gateway-conformance-mesh")
                    && c.port == port
            })
            .unwrap()
            .workloads
            .len()
    };
    assert_eq!((echo(80), echo(8080)), (2, 2));
    assert_eq!((echo(443), echo(9090), echo(7070)), (0, 0, 0));
}

#[test]
fn echo_advanced_mode_answers_in_istio_echo_text() {
    let mut child = Command::new(MESHCHECK)
        .args([
            "echo",
            "-echo-advanced",
            "--port=8080",
            "--grpc=7070",
            "--version=v1",
            "-listen=127.0.0.1:0",
        ])
        .env("HOSTNAME", "echo-v1-7d9b8f5c6-x2x4z")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let (status, head, body) = request(
        address,
        "GET /mesh?headers=X-Out:yes HTTP/1.1\r\nHost: echo:80\r\nX-Multi: a\r\nX-Multi: b",
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("\r\nx-out: yes"), "{head}");
    assert!(
        body.contains("ServiceVersion=v1\nServicePort=8080\n"),
        "{body}"
    );
    let echoed = EchoedRequest::parse_body(body.as_bytes()).unwrap();
    assert_eq!(echoed.path, "/mesh?headers=X-Out:yes");
    assert_eq!(echoed.host, "echo:80");
    assert_eq!(echoed.pod, "echo-v1-7d9b8f5c6-x2x4z");
    assert_eq!(
        echoed.header("x-multi"),
        Some(&["a".to_string(), "b".to_string()][..])
    );
}

#[test]
fn echo_advanced_flags_it_cannot_honour_are_located() {
    let manifests = load_str(
        &deployment("        - name: X\n          value: y\n")
            .replace("echo-basic:v20240412", "echo-advanced:v20240412")
            .replace(
                "        env:\n        - name: X\n          value: y\n",
                "        args: [--port=8080, --hbone=15008]\n",
            ),
        Path::new("fixtures/adv.yaml"),
    )
    .unwrap();
    let err = plan(&manifests).map(|_| ()).unwrap_err().to_string();
    assert!(
        err.starts_with("fixtures/adv.yaml:16:") && err.contains("unknown flag `--hbone=15008`"),
        "{err}"
    );
}

fn deployment(env: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: infra
spec:
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        env:
{env}"#
    )
}

fn refused(env: &str) -> String {
    let manifests = load_str(&deployment(env), Path::new("fixtures/web.yaml")).unwrap();
    plan(&manifests).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn bad_environment_is_a_located_error() {
    let err = refused(
        "        - name: POD_IP\n          valueFrom:\n            fieldRef:\n              fieldPath: status.podIP\n",
    );
    assert!(
        err.starts_with("fixtures/web.yaml:20:") && err.contains("fieldPath `status.podIP`"),
        "{err}"
    );
    let err = refused("        - name: HTTP_PORT\n          value: web\n");
    assert!(
        err.starts_with("fixtures/web.yaml:17:")
            && err.contains("HTTP_PORT `web` is not a TCP port"),
        "{err}"
    );
    let err = refused(
        "        - name: NAMESPACE\n          valueFrom:\n            secretKeyRef: {name: s, key: k}\n",
    );
    assert!(
        err.starts_with("fixtures/web.yaml:19:") && err.contains("secretKeyRef"),
        "{err}"
    );
    let err = refused(
        "        - name: NAMESPACE\n          valueFrom:\n            fieldRef: {apiVersion: v2, fieldPath: metadata.namespace}\n",
    );
    assert!(
        err.starts_with("fixtures/web.yaml:19:") && err.contains("apiVersion v1"),
        "{err}"
    );
}

#[test]
fn environment_resolves_as_the_kubelet_does() {
    let text = deployment(
        "        - name: NAMESPACE\n          valueFrom:\n            fieldRef: {fieldPath: metadata.namespace}\n        - name: SERVICE_NAME\n          value: svc-$(NAMESPACE)-$$(NAMESPACE)\n        - name: INGRESS_NAME\n          valueFrom:\n            fieldRef: {fieldPath: \"metadata.labels['app']\"}\n        - name: HTTP_PORT\n          value: \"8080\"\n        - name: UNREAD\n          value: x\n",
    );
    let manifests = load_str(&text, Path::new("fixtures/web.yaml")).unwrap();
    let planned = plan(&manifests).unwrap_or_else(|err| panic!("{err}"));
    let workload = &planned.workloads[0];
    assert_eq!(workload.pod_port, 8080);
    let env = &workload.pods[0].env;
    assert_eq!(env["SERVICE_NAME"], "svc-infra-$(NAMESPACE)");
    assert_eq!(env["INGRESS_NAME"], "web");
    assert_eq!(env["HTTP_PORT"], "8080");
    // Only what echo-basic reads reaches the process.
    assert!(!env.contains_key("UNREAD"));
}

const THROUGH_ENVOY: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: gateway-conformance-infra
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: infra-backend-v1
  namespace: gateway-conformance-infra
spec:
  replicas: 2
  selector:
    matchLabels: {app: infra-backend-v1}
  template:
    metadata:
      labels: {app: infra-backend-v1}
    spec:
      containers:
      - name: infra-backend-v1
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        resources:
          requests:
            cpu: 10m
---
apiVersion: v1
kind: Service
metadata:
  name: infra-backend-v1
  namespace: gateway-conformance-infra
spec:
  selector: {app: infra-backend-v1}
  ports:
  - name: first-port
    protocol: TCP
    port: 8080
    targetPort: 3000
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: same-namespace
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"#;

#[tokio::test]
async fn through_envoy_the_body_names_the_pod_that_answered() {
    let manifests = load_str(THROUGH_ENVOY, Path::new("fixtures/echo-basic.yaml")).unwrap();
    let envoy = ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap();
    let env = LocalEnvironment::start(
        &manifests,
        LocalOptions::new(envoy, PathBuf::from(MESHCHECK)),
    )
    .await
    .unwrap();
    let pods: BTreeSet<String> = env.backends().iter().map(|b| b.pod.clone()).collect();
    assert_eq!(pods.len(), 2);
    let gateway = ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("gateway-conformance-infra".into()),
        name: "same-namespace".into(),
    };
    let address = env.gateway_address(&gateway, 80).unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                b"GET /some/path?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Multi: a\r\nX-Multi: b\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{response}");
        let echoed: EchoedRequest = serde_json::from_str(body).unwrap();
        assert_eq!(echoed.namespace, "gateway-conformance-infra");
        assert!(pods.contains(&echoed.pod), "{} not in {pods:?}", echoed.pod);
        assert_eq!(echoed.deployment(), Some("infra-backend-v1"));
        assert_eq!(echoed.path, "/some/path?x=1");
        assert_eq!(echoed.host, "example.com");
        // Envoy forwards both values, and adds its own headers.
        assert_eq!(
            echoed.header("x-multi").map(<[String]>::to_vec),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert!(echoed.header("x-request-id").is_some(), "{body}");
        seen.insert(echoed.pod);
    }
    // Both pods answer: with two endpoints, 30 requests all to one has probability
    // about 2e-9.
    assert_eq!(seen, pods);
    // Each pod's log lines are its record of what it received: 30 in all, each the
    // request target as sent. The lines reach us through a pipe, so wait for them (a
    // bounded wait on the condition, not a fixed sleep).
    let logged = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let received = env.received_requests();
            if received.iter().map(|r| r.total).sum::<u64>() >= 30 {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the pods log every request they answer");
    assert_eq!(logged.len(), 2);
    assert_eq!(logged.iter().map(|r| r.total).sum::<u64>(), 30);
    for pod in &logged {
        assert!(pods.contains(&pod.pod));
        assert_eq!(pod.targets.len() as u64, pod.total);
        assert!(pod.targets.iter().all(|t| t == "/some/path?x=1"), "{pod:?}");
    }
    env.shutdown().await;
}

/// A suite on [`THROUGH_ENVOY`]'s fixtures (with `replace` applied to them), in a
/// temporary directory.
fn suite_dir(replace: (&str, &str)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fixtures.yaml"),
        THROUGH_ENVOY.replace(replace.0, replace.1),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("echo-basic.yaml"),
        "name: echo-basic\nfixtures: [fixtures.yaml]\ncases:\n  - name: ok\n    request: {gateway: gateway-conformance-infra/same-namespace, url: 'http://example.com/'}\n    traffic: {requests: 5}\n    expect: {status: 200}\n",
    )
    .unwrap();
    dir
}

fn meshcheck(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(MESHCHECK)
        .args(args)
        .arg(dir.join("echo-basic.yaml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn lint_and_run_take_echo_basic_fixtures_and_locate_bad_env() {
    let good = suite_dir(("", ""));
    let (code, text) = meshcheck(&["lint", "--target", "local"], good.path());
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = meshcheck(&["run"], good.path());
    assert_eq!(code, Some(0), "{text}");

    let bad = suite_dir(("fieldPath: metadata.namespace", "fieldPath: spec.nodeName"));
    let (code, text) = meshcheck(&["lint", "--target", "local"], bad.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("fixtures.yaml:30:") && text.contains("fieldPath `spec.nodeName`"),
        "{text}"
    );
}

#[tokio::test]
async fn through_envoy_echo_advanced_names_the_pod_that_answered() {
    let env_block = "        env:\n        - name: POD_NAME\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.name\n        - name: NAMESPACE\n          valueFrom:\n            fieldRef:\n              fieldPath: metadata.namespace\n";
    assert!(THROUGH_ENVOY.contains(env_block));
    let text = THROUGH_ENVOY
        .replace(env_block, "        args: [--port=3000, --grpc=7070]\n")
        .replace("/echo-basic:", "/echo-advanced:");
    let manifests = load_str(&text, Path::new("fixtures/echo-advanced.yaml")).unwrap();
    let envoy = ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap();
    let env = LocalEnvironment::start(
        &manifests,
        LocalOptions::new(envoy, PathBuf::from(MESHCHECK)),
    )
    .await
    .unwrap();
    let pods: BTreeSet<String> = env.backends().iter().map(|b| b.pod.clone()).collect();
    let gateway = ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("gateway-conformance-infra".into()),
        name: "same-namespace".into(),
    };
    let address = env.gateway_address(&gateway, 80).unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /mesh HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    assert!(body.contains("ServicePort=3000\n"), "{body}");
    let echoed = EchoedRequest::parse_body(body.as_bytes()).unwrap();
    assert!(pods.contains(&echoed.pod), "{} not in {pods:?}", echoed.pod);
    assert_eq!(echoed.deployment(), Some("infra-backend-v1"));
    assert_eq!(echoed.path, "/mesh");
    env.shutdown().await;
}

#[test]
fn what_no_image_here_gets_is_refused_at_its_line() {
    // http-echo reads no environment here: env is refused rather than dropped.
    let http_echo = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: infra}\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: hashicorp/http-echo\n        args: [-text=hi]\n        env:\n        - {name: ECHO_TEXT, value: hello}\n";
    let manifests = load_str(http_echo, Path::new("fixtures/http-echo.yaml")).unwrap();
    let err = plan(&manifests).map(|_| ()).unwrap_err().to_string();
    assert!(
        err.starts_with("fixtures/http-echo.yaml:15:")
            && err.contains("passes no environment to hashicorp/http-echo"),
        "{err}"
    );
    // A volume without the TLS variables: refused at the volume, nothing is mounted.
    let with_volume = deployment("        - {name: NAMESPACE, value: x}\n")
        + "        volumeMounts:\n        - {name: v, mountPath: /v}\n      volumes:\n      - name: v\n        emptyDir: {}\n";
    let manifests = load_str(&with_volume, Path::new("fixtures/volume.yaml")).unwrap();
    let err = plan(&manifests).map(|_| ()).unwrap_err().to_string();
    assert!(
        err.starts_with("fixtures/volume.yaml:18:") && err.contains("mounts no volumes"),
        "{err}"
    );
}

#[tokio::test]
async fn through_envoy_the_ws_path_echoes_websocket_messages() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let manifests = load_str(THROUGH_ENVOY, Path::new("fixtures/echo-basic.yaml")).unwrap();
    let envoy = ensure_envoy(|dir| eprintln!("{}", installing_message(dir)))
        .await
        .unwrap();
    let env = LocalEnvironment::start(
        &manifests,
        LocalOptions::new(envoy, PathBuf::from(MESHCHECK)),
    )
    .await
    .unwrap();
    let gateway = ObjectKey {
        kind: "Gateway".into(),
        namespace: Some("gateway-conformance-infra".into()),
        name: "same-namespace".into(),
    };
    let address = env.gateway_address(&gateway, 80).unwrap();
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = "ws://example.com/ws".into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "ws://gateway/test".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("Websocket Support!")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("Websocket Support!")
    );
    let bytes = vec![1u8, 2, 3, 4, 5, 6, 7];
    ws.send(Message::binary(bytes.clone())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().to_vec(),
        bytes
    );
    ws.close(None).await.unwrap();

    // Without an Origin the image's websocket package refuses the handshake.
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let refused = tokio_tungstenite::client_async("ws://example.com/ws", stream).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    env.shutdown().await;
}
