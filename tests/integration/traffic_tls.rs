//! https in the load engine against a real rustls server on 127.0.0.1, with a
//! certificate for `test.devopscube.com` from a CA generated here.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use meshcheck::traffic::{
    ErrorKind, Flow, HttpVersion, IdentityRule, LoadSpec, RequestTemplate, TlsOptions, run_load,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

const HOST: &str = "test.devopscube.com";
const BODY: &str = "hello from backend over tls";

/// What the server saw of one request: the TLS layer's SNI and ALPN, the Host header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    sni: Option<String>,
    alpn: Option<String>,
    host: Option<String>,
}

/// A TLS server on 127.0.0.1:0 speaking the HTTP version ALPN agreed on (HTTP/1.1
/// unless h2), and the CA that signed its certificate.
struct TlsServer {
    addr: SocketAddr,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TlsServer {
    /// Offers h2 and http/1.1, as Envoy's gateway listeners do.
    async fn start() -> Self {
        Self::offering(&[b"h2", b"http/1.1"]).await
    }

    async fn offering(alpn: &[&[u8]]) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "meshcheck test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec![HOST.to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();

        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::from(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_server = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen = Arc::clone(&seen_by_server);
                tokio::spawn(async move {
                    // A client that rejects the certificate aborts the handshake here.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let (_, session) = stream.get_ref();
                    let sni = session.server_name().map(str::to_owned);
                    let alpn = session
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned());
                    let service = service_fn(move |request: Request<Incoming>| {
                        seen.lock().unwrap().push(Seen {
                            sni: sni.clone(),
                            alpn: alpn.clone(),
                            host: request
                                .headers()
                                .get(http::header::HOST)
                                .map(|v| v.to_str().unwrap().to_owned()),
                        });
                        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(BODY)))) }
                    });
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    if h2 {
                        hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                        .ok();
                    } else {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                            .ok();
                    }
                });
            }
        });
        Self {
            addr,
            ca_pem: ca_cert.pem(),
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// `https://HOST:PORT/` pinned to the server, like `curl --resolve`; the port is
/// in the URL, so the Host header carries it too.
fn spec(server: &TlsServer, host: &str, tls: TlsOptions) -> LoadSpec {
    let url = format!("https://{host}:{}/", server.addr.port());
    let mut request = RequestTemplate::get(url.parse().unwrap()).connect_to(server.addr);
    request.tls = tls;
    LoadSpec {
        request,
        requests: 6,
        concurrency: 2,
        timeout: Duration::from_secs(10),
        keep_alive: true,
        identity: IdentityRule::Body,
        response_headers: Vec::new(),
        response_body: false,
    }
}

fn write_ca(dir: &Path, pem: &str) -> std::path::PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

/// Runs the load and returns the tally with the first failure's detail.
async fn run(spec: &LoadSpec) -> (meshcheck::traffic::Tally, Option<String>) {
    let mut first_detail = None;
    let tally = run_load(spec, |sample| {
        if first_detail.is_none() {
            first_detail = sample.error_detail.map(str::to_owned);
        }
        Flow::Continue
    })
    .await
    .unwrap();
    (tally, first_detail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_extra_ca_requests_succeed_with_the_url_host_as_sni_and_host() {
    let server = TlsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsOptions {
        extra_ca_file: Some(write_ca(dir.path(), &server.ca_pem)),
        insecure_skip_verify: false,
    };
    let (tally, detail) = run(&spec(&server, HOST, tls)).await;
    assert_eq!(detail, None);
    assert_eq!(tally.requests, 6);
    assert_eq!(tally.status_codes, BTreeMap::from([(200, 6)]));
    assert_eq!(tally.identities, BTreeMap::from([(BODY.to_owned(), 6)]));
    let seen = server.seen();
    assert_eq!(seen.len(), 6);
    let expected = Seen {
        sni: Some(HOST.to_owned()),
        alpn: Some("http/1.1".to_owned()),
        host: Some(format!("{HOST}:{}", server.addr.port())),
    };
    assert!(seen.iter().all(|s| *s == expected), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_every_request_fails_with_a_certificate_error_and_its_reason() {
    let server = TlsServer::start().await;
    let (tally, detail) = run(&spec(&server, HOST, TlsOptions::default())).await;
    assert_eq!(tally.requests, 6);
    assert_eq!(tally.errors, BTreeMap::from([(ErrorKind::Certificate, 6)]));
    let detail = detail.expect("a certificate failure carries its reason");
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert!(server.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_fails_even_with_the_ca() {
    let server = TlsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsOptions {
        extra_ca_file: Some(write_ca(dir.path(), &server.ca_pem)),
        insecure_skip_verify: false,
    };
    let (tally, detail) = run(&spec(&server, "other.devopscube.com", tls)).await;
    assert_eq!(tally.errors, BTreeMap::from([(ErrorKind::Certificate, 6)]));
    let detail = detail.unwrap();
    assert!(detail.contains("not valid for name"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_accepts_the_unknown_certificate() {
    let server = TlsServer::start().await;
    let tls = TlsOptions {
        extra_ca_file: None,
        insecure_skip_verify: true,
    };
    let (tally, _) = run(&spec(&server, HOST, tls)).await;
    assert_eq!(tally.status_codes, BTreeMap::from([(200, 6)]));
    assert_eq!(server.seen().len(), 6);
}

fn fire(server: &TlsServer, extra: &[&str]) -> std::process::Output {
    let port = server.addr.port();
    Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .args(["fire", &format!("https://{HOST}:{port}/")])
        .args(["--resolve", &format!("{HOST}:{port}:127.0.0.1")])
        .args(["-n", "2", "--timeout", "10s"])
        .args(extra)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_insecure_warns_on_stderr_and_verified_runs_do_not() {
    let server = TlsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(dir.path(), &server.ca_pem);

    let insecure = fire(&server, &["--insecure", "--quiet"]);
    let stderr = String::from_utf8_lossy(&insecure.stderr);
    assert_eq!(insecure.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("TLS certificate verification is OFF"),
        "{stderr}"
    );

    let verified = fire(&server, &["--cacert", ca.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with(&format!("{BODY}\n{BODY}\n")), "{stdout}");
    assert!(!String::from_utf8_lossy(&verified.stderr).contains("OFF"));

    let unverified = fire(&server, &[]);
    let stdout = String::from_utf8_lossy(&unverified.stdout);
    assert_eq!(unverified.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error: certificate: invalid peer certificate: UnknownIssuer"),
        "{stdout}"
    );
    assert!(stdout.contains("errors: certificate x2"), "{stdout}");
}

#[test]
fn fire_refuses_an_unreadable_ca_file_as_bad_input() {
    let output = Command::new(env!("CARGO_BIN_EXE_meshcheck"))
        .args([
            "fire",
            "https://127.0.0.1:1/",
            "--cacert",
            "/nonexistent/ca.pem",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_is_negotiated_by_alpn_or_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = TlsServer::start().await;
    let tls = TlsOptions {
        extra_ca_file: Some(write_ca(dir.path(), &server.ca_pem)),
        insecure_skip_verify: false,
    };
    let mut load = spec(&server, HOST, tls.clone());
    load.request.version = HttpVersion::Http2;
    let (tally, detail) = run(&load).await;
    assert_eq!(detail, None);
    assert_eq!(tally.status_codes, BTreeMap::from([(200, 6)]));
    let seen = server.seen();
    assert!(
        seen.iter()
            .all(|s| s.alpn.as_deref() == Some("h2") && s.host.is_none()),
        "{seen:?}"
    );

    // A server that does not agree says so, whether it refuses the handshake (ALPN
    // with no protocol in common) or ignores ALPN: a TLS failure with its reason, never
    // an HTTP/2 preface sent to an HTTP/1.1 server.
    for (offers, reason) in [
        (&[b"http/1.1".as_slice()][..], "NoApplicationProtocol"),
        (&[][..], "did not agree to HTTP/2"),
    ] {
        let server = TlsServer::offering(offers).await;
        let tls = TlsOptions {
            extra_ca_file: Some(write_ca(dir.path(), &server.ca_pem)),
            insecure_skip_verify: false,
        };
        let mut load = spec(&server, HOST, tls);
        load.request.version = HttpVersion::Http2;
        let (tally, detail) = run(&load).await;
        assert_eq!(tally.errors, BTreeMap::from([(ErrorKind::Tls, 6)]));
        let detail = detail.expect("the refusal carries its reason");
        assert!(detail.contains(reason), "{detail}");
        assert!(server.seen().is_empty());
    }
}
