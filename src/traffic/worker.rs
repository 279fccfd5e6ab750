//! One worker: one connection, requests in a loop until the budget is spent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, HOST, HeaderName, HeaderValue, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE, USER_AGENT,
};
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, Message};

use super::identity::{self, IdentityMsg, Interner};
use super::{
    ErrorKind, HttpVersion, IdentityRule, LoadSpec, MAX_IDENTITY_BODY, TrafficError,
    TrafficErrorKind, WebSocketMessage, tls,
};

/// What every worker shares, read-only except for the request budget.
#[derive(Debug)]
pub(crate) struct Prepared {
    method: Method,
    /// Origin-form (`/path?query`) for HTTP/1.1, where the host travels in the `Host`
    /// header; absolute (`http://host/path?query`) for HTTP/2, whose `:authority`
    /// carries it.
    target: Uri,
    version: HttpVersion,
    /// For `ws://` and `wss://` URLs: each request is a WebSocket session sending
    /// these messages.
    websocket: Option<Vec<WebSocketMessage>>,
    /// Built once; each request gets a clone (values are shared `Bytes`).
    headers: HeaderMap,
    addr: SocketAddr,
    /// For `https://` URLs: one client configuration for the whole run, and the URL's
    /// host as the server name whatever address the socket connects to.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
    keep_alive: bool,
    rule: IdentityRule,
    identity_header: Option<HeaderName>,
    /// The response headers each record carries ([`LoadSpec::response_headers`]).
    response_headers: Vec<HeaderName>,
    /// Whether each record carries the body ([`LoadSpec::response_body`]).
    response_body: bool,
    limit: u64,
    issued: AtomicU64,
}

/// What a worker reports per completed request.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) worker: u32,
    pub(crate) status: Option<u16>,
    pub(crate) identity: IdentityMsg,
    pub(crate) latency: Duration,
    pub(crate) error: Option<ErrorKind>,
    pub(crate) error_detail: Option<Box<str>>,
    pub(crate) envoy_overloaded: bool,
    /// The values of [`LoadSpec::response_headers`], in that order; empty when none
    /// were asked for (no allocation).
    pub(crate) headers: Box<[Option<HeaderValue>]>,
    /// The kept body when [`LoadSpec::response_body`] asked for it; empty otherwise
    /// (no allocation).
    pub(crate) body: Box<[u8]>,
    /// A WebSocket session's replies, one per message sent; empty otherwise.
    pub(crate) websocket_replies: Box<[WebSocketMessage]>,
}

/// A failed request: the kind, and the reason when the kind alone hides it.
struct Failure {
    kind: ErrorKind,
    detail: Option<Box<str>>,
}

impl From<ErrorKind> for Failure {
    fn from(kind: ErrorKind) -> Self {
        Self { kind, detail: None }
    }
}

/// A connection's request side, in the HTTP version the load speaks.
enum Sender {
    Http1(http1::SendRequest<Empty<Bytes>>),
    Http2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::Http1(sender) => sender.ready().await,
            Sender::Http2(sender) => sender.ready().await,
        }
    }

    async fn send_request(
        &mut self,
        request: Request<Empty<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            Sender::Http1(sender) => sender.send_request(request).await,
            Sender::Http2(sender) => sender.send_request(request).await,
        }
    }
}

impl Prepared {
    /// Validates the spec and resolves the host (once, so DNS stays out of the loop).
    pub(crate) async fn new(spec: &LoadSpec) -> Result<Self, TrafficError> {
        let template = &spec.request;
        let url = &template.url;
        let (https, websocket) = match url.scheme() {
            "http" => (false, false),
            "https" => (true, false),
            "ws" => (false, true),
            "wss" => (true, true),
            _ => {
                return Err(TrafficError::new(
                    url,
                    TrafficErrorKind::UnsupportedScheme {
                        scheme: url.scheme().to_owned(),
                    },
                ));
            }
        };
        if spec.concurrency == 0 {
            return Err(TrafficError::new(url, TrafficErrorKind::ZeroConcurrency));
        }
        if websocket && template.version == HttpVersion::Http2 {
            return Err(TrafficError::new(url, TrafficErrorKind::WebSocketOverHttp2));
        }
        // The opening handshake is a GET (RFC 6455 section 4.1).
        if websocket && template.method != Method::GET {
            return Err(TrafficError::new(
                url,
                TrafficErrorKind::WebSocketMethod {
                    method: template.method.to_string(),
                },
            ));
        }
        if !websocket && !template.websocket_messages.is_empty() {
            return Err(TrafficError::new(
                url,
                TrafficErrorKind::WebSocketMessagesWithoutWebSocket,
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(TrafficError::new(url, TrafficErrorKind::MissingHost));
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            Some((
                tls::client_config(url, &template.tls, template.version)?,
                tls::server_name(url)?,
            ))
        } else {
            None
        };

        let origin_form = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };

        let invalid = |name: &str, source: http::Error| {
            TrafficError::new(
                url,
                TrafficErrorKind::InvalidHeader {
                    name: name.to_owned(),
                    source,
                },
            )
        };
        let mut headers = HeaderMap::new();
        let host_value = match (&template.host_override, url.port()) {
            (Some(host), _) => host.clone(),
            (None, Some(port)) => format!("{host}:{port}"),
            (None, None) => host.to_owned(),
        };
        headers.insert(
            HOST,
            HeaderValue::try_from(host_value).map_err(|e| invalid("host", e.into()))?,
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("meshcheck/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in &template.headers {
            let header =
                HeaderName::try_from(name.as_str()).map_err(|e| invalid(name, e.into()))?;
            let value =
                HeaderValue::try_from(value.as_str()).map_err(|e| invalid(name, e.into()))?;
            // Like curl -H: a given Host or User-Agent replaces ours, others add up.
            if header == HOST || header == USER_AGENT {
                headers.insert(header, value);
            } else {
                headers.append(header, value);
            }
        }
        let target = match template.version {
            HttpVersion::Http1 => origin_form,
            // HTTP/2 has no Host header: the authority travels as `:authority`, taken
            // from the request's URI (RFC 9113 section 8.3.1).
            HttpVersion::Http2 => {
                let scheme = if https { "https" } else { "http" };
                let authority = headers.remove(HOST).map(|value| value.as_bytes().to_vec());
                let authority =
                    String::from_utf8_lossy(authority.as_deref().unwrap_or_default()).into_owned();
                format!("{scheme}://{authority}{origin_form}")
            }
        };
        let target = Uri::try_from(target).map_err(|e| {
            TrafficError::new(url, TrafficErrorKind::InvalidTarget { source: e.into() })
        })?;
        // HTTP/2 forbids connection-specific headers (RFC 9113 section 8.2.2): without
        // keep-alive each request simply gets a connection of its own.
        if !spec.keep_alive && template.version == HttpVersion::Http1 && !websocket {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if websocket {
            // The Origin a browser would send for a page of the host the request names;
            // echo-basic's websocket package refuses a handshake without one, and
            // servers that check same-origin compare it with the Host.
            if !headers.contains_key(ORIGIN) {
                let host = headers
                    .get(HOST)
                    .map(HeaderValue::as_bytes)
                    .unwrap_or_default();
                let origin = format!(
                    "{}://{}",
                    if https { "https" } else { "http" },
                    String::from_utf8_lossy(host)
                );
                headers.insert(
                    ORIGIN,
                    HeaderValue::try_from(origin).map_err(|e| invalid("origin", e.into()))?,
                );
            }
            headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }

        let identity_header = match &spec.identity {
            IdentityRule::Header(name) => {
                Some(HeaderName::try_from(name.as_str()).map_err(|_| {
                    TrafficError::new(
                        url,
                        TrafficErrorKind::InvalidIdentityHeader { name: name.clone() },
                    )
                })?)
            }
            IdentityRule::Body | IdentityRule::BodyRegex(_) | IdentityRule::EchoBasic => None,
        };

        let addr = match template.connect_to {
            Some(addr) => addr,
            None => resolve(url, host, port).await?,
        };

        Ok(Self {
            method: template.method.clone(),
            target,
            version: template.version,
            websocket: websocket.then(|| template.websocket_messages.clone()),
            headers,
            addr,
            tls,
            timeout: spec.timeout,
            keep_alive: spec.keep_alive,
            rule: spec.identity.clone(),
            identity_header,
            response_headers: spec.response_headers.clone(),
            response_body: spec.response_body,
            limit: spec.requests,
            issued: AtomicU64::new(0),
        })
    }

    /// Takes one request from the budget; false once it is spent.
    fn claim(&self) -> bool {
        // Relaxed is enough: the counter only hands out tickets, it orders nothing.
        self.issued.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

async fn resolve(url: &url::Url, host: &str, port: u16) -> Result<SocketAddr, TrafficError> {
    // url keeps IPv6 hosts in brackets, which the resolver does not accept.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|source| {
            TrafficError::new(
                url,
                TrafficErrorKind::Resolve {
                    host: host.to_owned(),
                    port,
                    source,
                },
            )
        })?;
    addrs.next().ok_or_else(|| {
        TrafficError::new(
            url,
            TrafficErrorKind::NoAddresses {
                host: host.to_owned(),
                port,
            },
        )
    })
}

/// Per-worker reusable buffers, so steady-state requests allocate nothing of ours.
struct Scratch {
    body: Vec<u8>,
    header: Option<HeaderValue>,
    status: Option<u16>,
    envoy_overloaded: bool,
    headers: Box<[Option<HeaderValue>]>,
    websocket_replies: Vec<WebSocketMessage>,
}

/// Sends requests until the budget is spent or the collector hangs up.
pub(crate) async fn run_worker(
    worker: u32,
    prepared: Arc<Prepared>,
    records: mpsc::Sender<Record>,
) {
    let mut connection: Option<Sender> = None;
    let mut interner = Interner::default();
    let mut locations = None;
    let mut scratch = Scratch {
        body: Vec::new(),
        header: None,
        status: None,
        envoy_overloaded: false,
        headers: Box::default(),
        websocket_replies: Vec::new(),
    };
    while prepared.claim() {
        scratch.body.clear();
        scratch.header = None;
        scratch.status = None;
        scratch.envoy_overloaded = false;
        scratch.headers = Box::default();
        scratch.websocket_replies.clear();
        let start = Instant::now();
        let outcome = match &prepared.websocket {
            None => {
                tokio::time::timeout(
                    prepared.timeout,
                    exchange(&prepared, &mut connection, &mut scratch),
                )
                .await
            }
            Some(messages) => {
                tokio::time::timeout(
                    prepared.timeout,
                    websocket_session(&prepared, messages, &mut scratch),
                )
                .await
            }
        };
        let latency = start.elapsed();
        let (error, error_detail) = match outcome {
            Ok(Ok(())) => (None, None),
            Ok(Err(failure)) => (Some(failure.kind), failure.detail),
            Err(_elapsed) => (Some(ErrorKind::Timeout), None),
        };
        if error.is_some() || !prepared.keep_alive {
            // A failed connection is in an unknown state; never reuse it.
            connection = None;
        }
        let identity = if error.is_none() {
            let response = identity::Response {
                body: &scratch.body,
                header: scratch.header.as_ref().map(HeaderValue::as_bytes),
            };
            interner.intern(identity::extract(&prepared.rule, &response, &mut locations).as_deref())
        } else {
            IdentityMsg::None
        };
        let record = Record {
            worker,
            status: scratch.status,
            identity,
            latency,
            error,
            error_detail,
            envoy_overloaded: scratch.envoy_overloaded,
            headers: std::mem::take(&mut scratch.headers),
            body: if prepared.response_body && error.is_none() {
                scratch.body.as_slice().into()
            } else {
                Box::default()
            },
            websocket_replies: std::mem::take(&mut scratch.websocket_replies).into(),
        };
        if records.send(record).await.is_err() {
            // The collector stopped listening (Flow::Stop): nothing more to do.
            break;
        }
    }
}

/// One request/response on the worker's connection, opening it if needed.
async fn exchange(
    prepared: &Prepared,
    connection: &mut Option<Sender>,
    scratch: &mut Scratch,
) -> Result<(), Failure> {
    let sender = match connection {
        Some(sender) if !sender.is_closed() => sender,
        _ => connection.insert(connect(prepared).await?),
    };
    if sender.ready().await.is_err() {
        // The server closed an idle keep-alive connection between requests; that is
        // not this request's failure, so reconnect once.
        *sender = connect(prepared).await?;
        sender.ready().await.map_err(|_| ErrorKind::Connect)?;
    }

    let mut request = Request::new(Empty::<Bytes>::new());
    *request.method_mut() = prepared.method.clone();
    *request.uri_mut() = prepared.target.clone();
    *request.headers_mut() = prepared.headers.clone();

    let response = sender.send_request(request).await.map_err(classify)?;
    read_response(prepared, response, scratch).await
}

/// Keeps what the load asks for of a response, and reads its body to the end.
async fn read_response(
    prepared: &Prepared,
    response: Response<Incoming>,
    scratch: &mut Scratch,
) -> Result<(), Failure> {
    scratch.status = Some(response.status().as_u16());
    scratch.envoy_overloaded = response
        .headers()
        .get("x-envoy-overloaded")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
    if let Some(name) = &prepared.identity_header {
        scratch.header = response.headers().get(name).cloned();
    }
    if !prepared.response_headers.is_empty() {
        scratch.headers = prepared
            .response_headers
            .iter()
            .map(|name| joined_values(response.headers(), name))
            .collect();
    }

    let keep_body = prepared.response_body || prepared.rule.needs_body();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ErrorKind::Body)?;
        if let (true, Ok(data)) = (keep_body, frame.into_data()) {
            let room = MAX_IDENTITY_BODY - scratch.body.len();
            scratch
                .body
                .extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(())
}

/// A header's values as one: several lines joined with `,`, as Go joins an
/// `http.Header` list (what the Gateway API conformance suite compares; kubernetes-sigs/
/// gateway-api `conformance/utils/http/http.go`, `CompareRequest`). One line is kept
/// as it is, without copying its bytes.
fn joined_values(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        joined.push(b',');
        joined.extend_from_slice(value.as_bytes());
    }
    // Joining valid values with a comma keeps them valid.
    HeaderValue::from_bytes(&joined).ok()
}

/// One WebSocket session on a connection of its own: the upgrade (RFC 6455 section
/// 4.1), then each message sent and one data message read back as its reply. A
/// refused upgrade is a response like any other, judged by its status.
async fn websocket_session(
    prepared: &Prepared,
    messages: &[WebSocketMessage],
    scratch: &mut Scratch,
) -> Result<(), Failure> {
    let tcp = open_tcp(prepared).await?;
    let mut sender = match &prepared.tls {
        None => upgradable_handshake(tcp).await?,
        Some(tls) => upgradable_handshake(open_tls(tls, tcp).await?).await?,
    };
    let key = generate_key();
    let mut request = Request::new(Empty::<Bytes>::new());
    *request.method_mut() = prepared.method.clone();
    *request.uri_mut() = prepared.target.clone();
    *request.headers_mut() = prepared.headers.clone();
    request.headers_mut().insert(
        SEC_WEBSOCKET_KEY,
        HeaderValue::try_from(key.as_str()).map_err(|_| ErrorKind::Protocol)?,
    );
    let mut response = sender.send_request(request).await.map_err(classify)?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return read_response(prepared, response, scratch).await;
    }
    // A client must fail the connection unless the 101 upgrades to websocket and
    // carries the accept value that proves the server read this very handshake, not a
    // cache's or a proxy's canned answer (RFC 6455 section 4.1, client requirements).
    let headers = response.headers();
    let refusal = if !has_token(headers, &UPGRADE, "websocket") {
        Some("the 101 response does not say `Upgrade: websocket`")
    } else if !has_token(headers, &CONNECTION, "upgrade") {
        Some("the 101 response does not say `Connection: upgrade`")
    } else if headers
        .get(SEC_WEBSOCKET_ACCEPT)
        .is_none_or(|value| value.as_bytes() != derive_accept_key(key.as_bytes()).as_bytes())
    {
        Some("the 101 response's Sec-WebSocket-Accept does not match the key sent")
    } else {
        None
    };
    let upgraded = hyper::upgrade::on(&mut response);
    read_response(prepared, response, scratch).await?;
    if let Some(refusal) = refusal {
        return Err(websocket_failure(refusal.into()));
    }
    let upgraded = upgraded.await.map_err(|error| {
        websocket_failure(format!("take over the upgraded connection: {error}"))
    })?;
    let mut session = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Client,
        None,
    )
    .await;
    for message in messages {
        let frame = match message {
            WebSocketMessage::Text(text) => Message::text(text.as_str()),
            WebSocketMessage::Binary(bytes) => Message::binary(bytes.clone()),
        };
        session
            .send(frame)
            .await
            .map_err(|error| websocket_failure(format!("send {message}: {error}")))?;
        scratch
            .websocket_replies
            .push(next_data_message(&mut session, message).await?);
    }
    // A polite close; the server's answer does not change what was observed.
    session.close(None).await.ok();
    Ok(())
}

/// The next text or binary message, skipping control frames (tungstenite answers
/// pings itself).
async fn next_data_message<S>(
    session: &mut tokio_tungstenite::WebSocketStream<S>,
    sent: &WebSocketMessage,
) -> Result<WebSocketMessage, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match session.next().await {
            Some(Ok(Message::Text(text))) => return Ok(WebSocketMessage::Text(text.to_string())),
            Some(Ok(Message::Binary(bytes))) => {
                return Ok(WebSocketMessage::Binary(bytes.to_vec()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map_or_else(
                    || "no close code".to_owned(),
                    |frame| format!("code {}: {:?}", frame.code, frame.reason.as_str()),
                );
                return Err(websocket_failure(format!(
                    "the server closed the session instead of replying to {sent} ({why})"
                )));
            }
            Some(Err(error)) => return Err(websocket_failure(websocket_error(sent, &error))),
            None => {
                return Err(websocket_failure(format!(
                    "the connection closed before a reply to {sent}"
                )));
            }
        }
    }
}

/// Whether one of the header's comma-separated values is `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

fn websocket_error(sent: &WebSocketMessage, error: &tungstenite::Error) -> String {
    format!("read the reply to {sent}: {error}")
}

fn websocket_failure(detail: String) -> Failure {
    Failure {
        kind: ErrorKind::WebSocket,
        detail: Some(detail.into_boxed_str()),
    }
}

async fn connect(prepared: &Prepared) -> Result<Sender, Failure> {
    let tcp = open_tcp(prepared).await?;
    let Some(tls) = &prepared.tls else {
        return Ok(handshake(tcp, prepared.version).await?);
    };
    let stream = open_tls(tls, tcp).await?;
    // A server that does not pick h2 would read our HTTP/2 preface as garbage and the
    // request would fail without a reason; say it here.
    if prepared.version == HttpVersion::Http2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(Failure {
            kind: ErrorKind::Tls,
            detail: Some("the server did not agree to HTTP/2 (ALPN h2)".into()),
        });
    }
    Ok(handshake(stream, prepared.version).await?)
}

async fn open_tcp(prepared: &Prepared) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect(prepared.addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    // Small requests must not wait for Nagle; failure here only costs latency.
    stream.set_nodelay(true).ok();
    Ok(stream)
}

async fn open_tls(
    (config, server_name): &(Arc<ClientConfig>, ServerName<'static>),
    stream: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    TlsConnector::from(Arc::clone(config))
        .connect(server_name.clone(), stream)
        .await
        .map_err(|error| Failure {
            kind: tls_error_kind(&error),
            // The io::Error wraps the rustls error, whose text names the reason.
            detail: Some(error.to_string().into_boxed_str()),
        })
}

/// Whether a failed handshake was our verifier rejecting the server's certificate.
fn tls_error_kind(error: &std::io::Error) -> ErrorKind {
    let rejected = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
        .is_some_and(|e| matches!(e, tokio_rustls::rustls::Error::InvalidCertificate(_)));
    if rejected {
        ErrorKind::Certificate
    } else {
        ErrorKind::Tls
    }
}

async fn handshake<IO>(stream: IO, version: HttpVersion) -> Result<Sender, ErrorKind>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // The driver's own error resurfaces through `send_request` or the body.
    match version {
        HttpVersion::Http1 => {
            let (sender, driver) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|_| ErrorKind::Connect)?;
            tokio::spawn(async move { driver.await.ok() });
            Ok(Sender::Http1(sender))
        }
        HttpVersion::Http2 => {
            let (sender, driver) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|_| ErrorKind::Connect)?;
            tokio::spawn(async move { driver.await.ok() });
            Ok(Sender::Http2(sender))
        }
    }
}

/// An HTTP/1.1 connection whose driver hands the connection over after a 101.
async fn upgradable_handshake<IO>(stream: IO) -> Result<http1::SendRequest<Empty<Bytes>>, ErrorKind>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, driver) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ErrorKind::Connect)?;
    tokio::spawn(async move { driver.with_upgrades().await.ok() });
    Ok(sender)
}

fn classify(error: hyper::Error) -> ErrorKind {
    if error.is_parse() || error.is_parse_status() || error.is_parse_too_large() {
        ErrorKind::Protocol
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        // Incomplete messages, canceled requests on a dead connection and I/O errors
        // (reset, broken pipe) all mean the peer went away.
        ErrorKind::ConnectionClosed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::RequestTemplate;

    fn load(url: &str) -> LoadSpec {
        LoadSpec {
            request: RequestTemplate::get(url.parse().unwrap())
                .connect_to(SocketAddr::from(([127, 0, 0, 1], 9))),
            requests: 1,
            concurrency: 1,
            timeout: Duration::from_secs(1),
            keep_alive: true,
            identity: IdentityRule::Body,
            response_headers: Vec::new(),
            response_body: false,
        }
    }

    async fn prepared(load: &LoadSpec) -> Prepared {
        Prepared::new(load).await.unwrap()
    }

    #[tokio::test]
    async fn a_websocket_handshake_names_the_host_sent_as_its_origin() {
        let ws = prepared(&load("ws://example.com:8080/ws")).await;
        assert_eq!(ws.headers[ORIGIN], "http://example.com:8080");
        assert_eq!(ws.headers[UPGRADE], "websocket");
        assert_eq!(ws.headers[SEC_WEBSOCKET_VERSION], "13");
        let mut spec = load("wss://example.com/ws");
        spec.request.host_override = Some("routed.example".into());
        assert_eq!(
            prepared(&spec).await.headers[ORIGIN],
            "https://routed.example"
        );
        // One given by the suite is kept.
        spec.request.headers = vec![("Origin".into(), "ws://gateway/test".into())];
        assert_eq!(prepared(&spec).await.headers[ORIGIN], "ws://gateway/test");
        // A handshake is a GET.
        spec.request.method = Method::POST;
        let err = Prepared::new(&spec).await.unwrap_err();
        assert!(
            matches!(err.kind, TrafficErrorKind::WebSocketMethod { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn http2_carries_the_host_in_the_target_and_no_connection_header() {
        let mut spec = load("http://example.com/a?b=1");
        spec.request.version = HttpVersion::Http2;
        spec.keep_alive = false;
        let h2 = prepared(&spec).await;
        assert_eq!(h2.target.to_string(), "http://example.com/a?b=1");
        assert!(!h2.headers.contains_key(HOST));
        assert!(!h2.headers.contains_key(CONNECTION));
        spec.request.version = HttpVersion::Http1;
        let h1 = prepared(&spec).await;
        assert_eq!(h1.target.to_string(), "/a?b=1");
        assert_eq!(h1.headers[HOST], "example.com");
        assert_eq!(h1.headers[CONNECTION], "close");
    }

    #[test]
    fn a_header_on_several_lines_reads_as_its_values_joined() {
        let name = HeaderName::from_static("x-multi");
        let mut headers = HeaderMap::new();
        assert_eq!(joined_values(&headers, &name), None);
        headers.append(&name, HeaderValue::from_static("a"));
        assert_eq!(
            joined_values(&headers, &name),
            Some(HeaderValue::from_static("a"))
        );
        headers.append(&name, HeaderValue::from_static("b, c"));
        headers.append(&name, HeaderValue::from_static("d"));
        assert_eq!(
            joined_values(&headers, &name),
            Some(HeaderValue::from_static("a,b, c,d"))
        );
    }
}
