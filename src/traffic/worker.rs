//! One worker: one connection, requests in a loop until the budget is spent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;

use super::identity::{self, IdentityMsg, Interner};
use super::{
    ErrorKind, IdentityRule, LoadSpec, MAX_IDENTITY_BODY, TrafficError, TrafficErrorKind, tls,
};

/// What every worker shares, read-only except for the request budget.
#[derive(Debug)]
pub(crate) struct Prepared {
    method: Method,
    /// Origin-form (`/path?query`): the host travels in the `Host` header.
    target: Uri,
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

type Sender = SendRequest<Empty<Bytes>>;

impl Prepared {
    /// Validates the spec and resolves the host (once, so DNS stays out of the loop).
    pub(crate) async fn new(spec: &LoadSpec) -> Result<Self, TrafficError> {
        let template = &spec.request;
        let url = &template.url;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
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
        let Some(host) = url.host_str() else {
            return Err(TrafficError::new(url, TrafficErrorKind::MissingHost));
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            Some((
                tls::client_config(url, &template.tls)?,
                tls::server_name(url)?,
            ))
        } else {
            None
        };

        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let target = Uri::try_from(target).map_err(|e| {
            TrafficError::new(url, TrafficErrorKind::InvalidTarget { source: e.into() })
        })?;

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
        if !spec.keep_alive {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
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
    };
    while prepared.claim() {
        scratch.body.clear();
        scratch.header = None;
        scratch.status = None;
        scratch.envoy_overloaded = false;
        scratch.headers = Box::default();
        let start = Instant::now();
        let outcome = tokio::time::timeout(
            prepared.timeout,
            exchange(&prepared, &mut connection, &mut scratch),
        )
        .await;
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

async fn connect(prepared: &Prepared) -> Result<Sender, Failure> {
    let stream = TcpStream::connect(prepared.addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    // Small requests must not wait for Nagle; failure here only costs latency.
    stream.set_nodelay(true).ok();
    let Some((config, server_name)) = &prepared.tls else {
        return Ok(handshake(stream).await?);
    };
    let stream = TlsConnector::from(Arc::clone(config))
        .connect(server_name.clone(), stream)
        .await
        .map_err(|error| Failure {
            kind: tls_error_kind(&error),
            // The io::Error wraps the rustls error, whose text names the reason.
            detail: Some(error.to_string().into_boxed_str()),
        })?;
    Ok(handshake(stream).await?)
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

async fn handshake<IO>(stream: IO) -> Result<Sender, ErrorKind>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| ErrorKind::Connect)?;
    // The driver's own error resurfaces through `send_request` or the body.
    tokio::spawn(async move { driver.await.ok() });
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
