//! The load engine against real hyper servers on 127.0.0.1 (and a real Envoy when
//! `MESHCHECK_ENVOY` names its binary).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use meshcheck::traffic::fire::{FireArgs, run_with_output};
use meshcheck::traffic::{
    ErrorKind, Flow, HttpVersion, IdentityRule, LoadSpec, MAX_IDENTITIES, OTHER_IDENTITY,
    RequestTemplate, TrafficErrorKind, WebSocketMessage, run_load,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// What the test server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    host: Option<String>,
    target: String,
    connection: Option<String>,
    x_test: Option<String>,
}

/// A hyper server on 127.0.0.1:0 that counts connections and records requests.
struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

type Handler = dyn Fn(usize) -> Response<Full<Bytes>> + Send + Sync;

impl TestServer {
    /// `respond(i)` answers the server's i-th request (0-based, across connections).
    async fn start(
        respond: impl Fn(usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let respond: Arc<Handler> = Arc::new(respond);
        let counter = Arc::new(AtomicUsize::new(0));
        let (conns, log) = (Arc::clone(&connections), Arc::clone(&seen));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let (respond, counter, log) =
                    (Arc::clone(&respond), Arc::clone(&counter), Arc::clone(&log));
                let service = service_fn(move |request: Request<Incoming>| {
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                    };
                    log.lock().unwrap().push(Seen {
                        host: header("host"),
                        target: request.uri().to_string(),
                        connection: header("connection"),
                        x_test: header("x-test"),
                    });
                    let index = counter.fetch_add(1, Ordering::SeqCst);
                    let response = respond(index);
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Self {
            addr,
            connections,
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn text(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::new(Full::new(body.into()))
}

fn spec(addr: SocketAddr, requests: u64, concurrency: usize) -> LoadSpec {
    LoadSpec {
        request: RequestTemplate::get("http://test.devopscube.com/".parse().unwrap())
            .connect_to(addr),
        requests,
        concurrency,
        timeout: Duration::from_secs(5),
        keep_alive: true,
        identity: IdentityRule::Body,
        response_headers: Vec::new(),
        response_body: false,
    }
}

fn counts<const N: usize>(pairs: [(&str, u64); N]) -> BTreeMap<String, u64> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_requests_keep_host_target_and_headers() {
    let server = TestServer::start(|_| text("hello from backend v1\n")).await;
    let mut spec = spec(server.addr, 3, 1);
    spec.request.url = "http://test.devopscube.com/hello?x=1".parse().unwrap();
    spec.request.headers = vec![("X-Test".into(), "yes".into())];
    let mut observed = Vec::new();
    let tally = run_load(&spec, |sample| {
        observed.push((
            sample.status,
            sample.identity.map(str::to_owned),
            sample.error,
        ));
        Flow::Continue
    })
    .await
    .unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.host.as_deref(), Some("test.devopscube.com"));
        assert_eq!(request.target, "/hello?x=1");
        assert_eq!(request.x_test.as_deref(), Some("yes"));
    }
    assert_eq!(
        observed,
        vec![(Some(200), Some("hello from backend v1".to_owned()), None); 3]
    );
    assert_eq!(tally.requests, 3);
    assert_eq!(tally.identities, counts([("hello from backend v1", 3)]));
    assert_eq!(tally.status_codes, BTreeMap::from([(200, 3)]));
    assert!(tally.errors.is_empty());
    assert_eq!(tally.latency.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_default_port_goes_into_host_header_and_override_wins() {
    let server = TestServer::start(|_| text("ok")).await;
    let mut spec = spec(server.addr, 1, 1);
    spec.request.url = "http://test.devopscube.com:8080/".parse().unwrap();
    run_load(&spec, |_| Flow::Continue).await.unwrap();
    spec.request.host_override = Some("other.example".into());
    run_load(&spec, |_| Flow::Continue).await.unwrap();
    let hosts: Vec<_> = server.seen().into_iter().map(|s| s.host).collect();
    assert_eq!(
        hosts,
        [
            Some("test.devopscube.com:8080".into()),
            Some("other.example".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_uses_one_connection_per_worker() {
    let server = TestServer::start(|_| text("v1")).await;
    let tally = run_load(&spec(server.addr, 20, 2), |_| Flow::Continue)
        .await
        .unwrap();
    assert_eq!(tally.identities, counts([("v1", 20)]));
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    assert!(server.seen().iter().all(|s| s.connection.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keep_alive_opens_a_connection_per_request_and_says_close() {
    let server = TestServer::start(|_| text("v1")).await;
    let mut spec = spec(server.addr, 10, 2);
    spec.keep_alive = false;
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(tally.identities, counts([("v1", 10)]));
    assert_eq!(server.connections.load(Ordering::SeqCst), 10);
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.connection.as_deref() == Some("close"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reconnects_when_the_server_closes_after_each_response() {
    let server = TestServer::start(|_| {
        let mut response = text("v1");
        response
            .headers_mut()
            .insert("connection", "close".parse().unwrap());
        response
    })
    .await;
    let tally = run_load(&spec(server.addr, 50, 2), |_| Flow::Continue)
        .await
        .unwrap();
    assert_eq!(tally.errors, BTreeMap::new());
    assert_eq!(tally.identities, counts([("v1", 50)]));
    assert_eq!(server.connections.load(Ordering::SeqCst), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_between_backends_is_counted_exactly() {
    let server = TestServer::start(|i| {
        text(if i % 2 == 0 {
            "hello from backend v1\n"
        } else {
            "hello from backend v2\n"
        })
    })
    .await;
    let tally = run_load(&spec(server.addr, 100, 4), |_| Flow::Continue)
        .await
        .unwrap();
    assert_eq!(
        tally.identities,
        counts([("hello from backend v1", 50), ("hello from backend v2", 50)])
    );
    let summary = tally.summary();
    assert_eq!(summary.identities[0].share, 0.5);
    assert_eq!(summary.requests, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_regex_identity_rules() {
    let server = TestServer::start(|i| {
        let mut response = text(format!("{{\"pod\":\"echo-v{}-abc\"}}", i % 2 + 1));
        response
            .headers_mut()
            .insert("x-backend", format!("v{}", i % 3).parse().unwrap());
        response
    })
    .await;
    let mut spec = spec(server.addr, 30, 3);
    spec.identity = "header:x-backend".parse().unwrap();
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(
        tally.identities,
        counts([("v0", 10), ("v1", 10), ("v2", 10)])
    );

    spec.identity = r#"regex:"pod":"echo-(v\d)"#.parse().unwrap();
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(tally.identities, counts([("v1", 15), ("v2", 15)]));

    // A missing header gives responses without identity, not errors.
    spec.identity = IdentityRule::Header("x-missing".into());
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert!(tally.identities.is_empty());
    assert_eq!(tally.status_codes, BTreeMap::from([(200, 30)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_identities_beyond_the_cap_go_to_other() {
    let server = TestServer::start(|i| text(format!("random {i}"))).await;
    let extra = 30;
    let tally = run_load(
        &spec(server.addr, (MAX_IDENTITIES + extra) as u64, 1),
        |_| Flow::Continue,
    )
    .await
    .unwrap();
    assert_eq!(tally.identities.len(), MAX_IDENTITIES + 1);
    assert_eq!(tally.identities[OTHER_IDENTITY], extra as u64);
    assert_eq!(tally.identities["random 0"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_overloaded_header_is_counted() {
    let server = TestServer::start(|i| {
        if i % 2 == 0 {
            return text("v1");
        }
        let mut response = text("upstream connect error or disconnect/reset before headers");
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert("x-envoy-overloaded", "true".parse().unwrap());
        response
    })
    .await;
    let mut flagged = 0;
    let tally = run_load(&spec(server.addr, 10, 1), |sample| {
        if sample.envoy_overloaded {
            assert_eq!(sample.status, Some(503));
            flagged += 1;
        }
        Flow::Continue
    })
    .await
    .unwrap();
    assert_eq!(flagged, 5);
    assert_eq!(tally.envoy_overloaded, 5);
    assert_eq!(tally.status_codes, BTreeMap::from([(200, 5), (503, 5)]));
    // A 503 is a response, not a failed request.
    assert!(tally.errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_run_promptly_with_exactly_the_observed_requests() {
    let server = TestServer::start(|_| text("v1")).await;
    let mut observed = 0;
    let tally = run_load(&spec(server.addr, 1_000_000, 4), |_| {
        observed += 1;
        if observed == 50 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    })
    .await
    .unwrap();
    assert_eq!(observed, 50);
    assert_eq!(tally.requests, 50);
    assert_eq!(tally.identities, counts([("v1", 50)]));
    // Workers stop claiming requests once aborted; at most the channel's backlog and
    // the in-flight requests exceed what was observed.
    let served = server.seen().len();
    assert!(
        served < 1_000,
        "server answered {served} requests after a stop at 50"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_abandons_requests_in_flight() {
    // The first request is answered; later ones hang far beyond the test's deadline.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = TestServer::start(|_| text("v1")).await;
    let answered_addr = answered.addr;
    tokio::spawn(async move {
        let mut held = Vec::new();
        let mut first = true;
        while let Ok((mut stream, _)) = listener.accept().await {
            if std::mem::take(&mut first) {
                // Hand the first connection to the answering server.
                let mut upstream = tokio::net::TcpStream::connect(answered_addr).await.unwrap();
                tokio::spawn(async move {
                    tokio::io::copy_bidirectional(&mut stream, &mut upstream)
                        .await
                        .ok();
                });
            } else {
                held.push(stream);
            }
        }
    });
    let mut spec = spec(addr, 1_000, 3);
    spec.keep_alive = false;
    spec.timeout = Duration::from_secs(3600);
    let run = run_load(&spec, |sample| {
        assert_eq!(sample.identity, Some("v1"));
        Flow::Stop
    });
    let tally = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("run_load waited for hanging requests after Flow::Stop")
        .unwrap();
    assert_eq!(tally.requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_time_out_as_samples() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold connections without ever answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut spec = spec(addr, 3, 3);
    spec.timeout = Duration::from_millis(200);
    let mut latencies = Vec::new();
    let tally = run_load(&spec, |sample| {
        assert_eq!(sample.error, Some(ErrorKind::Timeout));
        assert_eq!(sample.status, None);
        latencies.push(sample.latency);
        Flow::Continue
    })
    .await
    .unwrap();
    assert_eq!(tally.errors, BTreeMap::from([(ErrorKind::Timeout, 3)]));
    assert!(latencies.iter().all(|l| *l >= Duration::from_millis(200)));
    assert!(
        tally.latency.is_empty(),
        "failed requests stay out of the histogram"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_connect_errors() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let tally = run_load(&spec(addr, 4, 2), |_| Flow::Continue)
        .await
        .unwrap();
    assert_eq!(tally.errors, BTreeMap::from([(ErrorKind::Connect, 4)]));
    assert_eq!(tally.failed(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_reset_connections_are_connection_closed() {
    for reset in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                // Read the whole request head so the client is waiting for the response.
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if reset {
                    // Linger 0 turns close into a TCP reset.
                    stream.set_zero_linger().unwrap();
                }
                drop(stream);
            }
        });
        let tally = run_load(&spec(addr, 3, 1), |_| Flow::Continue)
            .await
            .unwrap();
        assert_eq!(
            tally.errors,
            BTreeMap::from([(ErrorKind::ConnectionClosed, 3)]),
            "reset: {reset}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_name_the_url() {
    let mut spec = spec("127.0.0.1:1".parse().unwrap(), 1, 1);
    spec.request.url = "ftp://test.devopscube.com/".parse().unwrap();
    let error = run_load(&spec, |_| Flow::Continue).await.unwrap_err();
    assert!(matches!(
        error.kind,
        TrafficErrorKind::UnsupportedScheme { .. }
    ));
    assert!(error.to_string().contains("ftp://test.devopscube.com/"));

    spec.request.url = "http://test.devopscube.com/".parse().unwrap();
    spec.concurrency = 0;
    let error = run_load(&spec, |_| Flow::Continue).await.unwrap_err();
    assert!(matches!(error.kind, TrafficErrorKind::ZeroConcurrency));

    spec.request.connect_to = None;
    spec.concurrency = 1;
    spec.request.url = "http://nonexistent.invalid/".parse().unwrap();
    let error = run_load(&spec, |_| Flow::Continue).await.unwrap_err();
    assert!(
        matches!(error.kind, TrafficErrorKind::Resolve { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "resolve nonexistent.invalid:80 for http://nonexistent.invalid/"
    );

    spec.request.headers = vec![("bad header".into(), "x".into())];
    let error = run_load(&spec, |_| Flow::Continue).await.unwrap_err();
    assert!(error.to_string().contains("bad header"), "{error}");
}

fn fire_args(url: &str, extra: &[&str]) -> FireArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        fire: FireArgs,
    }
    let mut argv = vec!["fire", url];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap().fire
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_prints_a_line_per_response_then_a_summary() {
    let server = TestServer::start(|i| {
        text(if i % 2 == 0 {
            "hello from backend v1\n"
        } else {
            "hello from backend v2\n"
        })
    })
    .await;
    let port = server.addr.port();
    let url = format!("http://test.devopscube.com:{port}/");
    let resolve = format!("test.devopscube.com:{port}:127.0.0.1");
    let args = fire_args(&url, &["-n", "10", "--resolve", &resolve]);
    let mut out = Vec::new();
    let code = run_with_output(&args, &mut out, false).await.unwrap();
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(
        lines[..10]
            .iter()
            .filter(|l| **l == "hello from backend v1")
            .count(),
        5
    );
    assert_eq!(
        lines[..10]
            .iter()
            .filter(|l| **l == "hello from backend v2")
            .count(),
        5
    );
    assert!(out.contains("requests: 10 in "), "{out}");
    assert!(out.contains("status codes: 200 x10"), "{out}");
    let host = format!("test.devopscube.com:{port}");
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.host.as_deref() == Some(host.as_str()))
    );

    let args = fire_args(&url, &["-n", "4", "--resolve", &resolve, "--json"]);
    let mut out = Vec::new();
    run_with_output(&args, &mut out, false).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["requests"], 4);
    assert_eq!(json["status_codes"]["200"], 4);
    assert_eq!(json["identities"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_exits_1_when_requests_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let args = fire_args(
        &format!("http://127.0.0.1:{port}/"),
        &["-n", "2", "--quiet"],
    );
    let mut out = Vec::new();
    let code = run_with_output(&args, &mut out, false).await.unwrap();
    assert_eq!(code, 1);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("errors: connect x2"), "{out}");
    assert!(
        !out.contains("error: connect\n"),
        "--quiet prints no per-request lines"
    );
}

/// The response headers a load asks for reach the observer with every sample, in a
/// response that has them and as absent in one that does not; others are not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_response_headers_reach_the_observer() {
    let server = TestServer::start(|i| {
        let mut response = text("v1");
        if i % 2 == 0 {
            response
                .headers_mut()
                .insert("x-served-by", "pod-a".parse().unwrap());
        }
        response
            .headers_mut()
            .insert("x-other", "kept-out".parse().unwrap());
        response
    })
    .await;
    let mut spec = spec(server.addr, 4, 1);
    let served_by = http::HeaderName::from_static("x-served-by");
    let other = http::HeaderName::from_static("x-other");
    spec.response_headers = vec![served_by.clone()];
    let mut seen = Vec::new();
    run_load(&spec, |sample| {
        seen.push((
            sample
                .headers
                .get(&served_by)
                .map(|v| v.to_str().unwrap().to_owned()),
            sample.headers.get(&other).is_some(),
        ));
        Flow::Continue
    })
    .await
    .unwrap();
    assert_eq!(
        seen,
        [
            (Some("pod-a".to_owned()), false),
            (None, false),
            (Some("pod-a".to_owned()), false),
            (None, false)
        ]
    );
}

/// An HTTP/2-only server (prior knowledge, no upgrade) that answers each request with
/// its version, `:authority` and target.
async fn start_h2c_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|request: Request<Incoming>| async move {
                let authority = request
                    .uri()
                    .authority()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let answer = format!(
                    "{:?} {authority} {} host={:?}",
                    request.version(),
                    request.uri().path_and_query().unwrap(),
                    request.headers().get("host")
                );
                Ok::<_, Infallible>(text(answer))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_speaks_prior_knowledge_with_the_host_as_authority() {
    let addr = start_h2c_server().await;
    let mut spec = spec(addr, 3, 1);
    spec.request.url = "http://example.com:8080/h2?x=1".parse().unwrap();
    spec.request.version = HttpVersion::Http2;
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(tally.failed(), 0, "{:?}", tally.summary());
    assert_eq!(
        tally.identities,
        counts([("HTTP/2.0 example.com:8080 /h2?x=1 host=None", 3)])
    );

    // The Host override becomes the authority too.
    spec.request.host_override = Some("other.example".into());
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(
        tally.identities,
        counts([("HTTP/2.0 other.example /h2?x=1 host=None", 3)])
    );

    // An HTTP/1.1 client gets no answer from it: the version really is the load's.
    spec.request.version = HttpVersion::Http1;
    let tally = run_load(&spec, |_| Flow::Continue).await.unwrap();
    assert_eq!(tally.failed(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_needs_http1_and_messages_need_a_websocket_url() {
    let mut spec = spec("127.0.0.1:9".parse().unwrap(), 1, 1);
    spec.request.url = "ws://example.com/ws".parse().unwrap();
    spec.request.version = HttpVersion::Http2;
    let err = run_load(&spec, |_| Flow::Continue).await.unwrap_err();
    assert!(
        matches!(err.kind, TrafficErrorKind::WebSocketOverHttp2),
        "{err}"
    );
    spec.request.url = "http://example.com/".parse().unwrap();
    spec.request.version = HttpVersion::Http1;
    spec.request.websocket_messages = vec![WebSocketMessage::Text("hi".into())];
    let err = run_load(&spec, |_| Flow::Continue).await.unwrap_err();
    assert!(
        matches!(
            err.kind,
            TrafficErrorKind::WebSocketMessagesWithoutWebSocket
        ),
        "{err}"
    );
}
