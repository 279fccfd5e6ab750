//! The curl-style request engine.
//!
//! It reproduces `for i in {1..10}; do curl test.devopscube.com; done` as code: fire a
//! bounded number of requests at a gateway, with the hostname pinned to the gateway's
//! address (like `curl --resolve`), and tally which backend answered.
//!
//! Shape, borrowed from oha: every worker task owns one HTTP/1.1 connection (no shared
//! pool to contend on) and sends a small [`Sample`]-sized record per completed request
//! over a channel to a single collector, which calls the caller's `observe` callback
//! and folds the record into a [`Tally`] (counters plus a latency histogram, so memory
//! stays constant however many requests run).

pub mod fire;
mod identity;
mod run;
mod tally;
mod tls;
mod worker;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use url::Url;

pub use self::identity::echo_basic_identity;
pub(crate) use self::identity::{Response as IdentitySource, extract as extract_identity};
pub use self::run::run_load;
pub use self::tally::{IdentityShare, LatencySummary, Tally, TallySummary};

/// How many distinct identities a run keeps apart; the rest are counted under
/// [`OTHER_IDENTITY`], so a backend that echoes random text cannot grow memory.
///
/// The cap applies per worker (each interns at most this many) and overall (the
/// collector names at most this many), first come first kept: a real backend first
/// seen after the cap filled up with noise is counted as other too.
pub const MAX_IDENTITIES: usize = 64;

/// The bucket for identities beyond [`MAX_IDENTITIES`].
pub const OTHER_IDENTITY: &str = "(other)";

/// How much of a response body is kept for identity extraction and for the checks that
/// read the body ([`LoadSpec::response_body`]); the rest is read and discarded so the
/// connection can be reused.
pub const MAX_IDENTITY_BODY: usize = 64 * 1024;

/// Identities longer than this many bytes are cut, so that interning a few dozen of
/// them per worker stays small.
pub const MAX_IDENTITY_LEN: usize = 1024;

/// What to send. The URL keeps the real hostname (it goes into the `Host` header)
/// while the socket connects to `connect_to` when set.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// An `http://` or `https://` URL; its path and query become the request target,
    /// its host the TLS server name (SNI and the name the certificate must carry).
    pub url: Url,
    /// Where to connect instead of resolving the URL's host, like
    /// `curl --resolve HOST:PORT:ADDR`. `None` resolves the host once, up front.
    pub connect_to: Option<SocketAddr>,
    /// A `Host` header value to send instead of the URL's `host[:port]`.
    pub host_override: Option<String>,
    /// Extra request headers, in order. A `Host` header here replaces the default.
    pub headers: Vec<(String, String)>,
    /// The request method; requests carry no body.
    pub method: http::Method,
    /// How `https://` URLs are verified; ignored for `http://`.
    pub tls: TlsOptions,
    /// The HTTP version spoken to the server.
    pub version: HttpVersion,
    /// For `ws://` and `wss://` URLs: each request is a WebSocket session that sends
    /// these messages, one at a time, and reads one reply after each.
    pub websocket_messages: Vec<WebSocketMessage>,
}

/// Which HTTP version the engine speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 (for `https://`, offered as the only ALPN protocol).
    #[default]
    Http1,
    /// HTTP/2: with prior knowledge on cleartext (`h2c`, no upgrade, as RFC 9113
    /// section 3.3 has it), offered as the only ALPN protocol over TLS.
    Http2,
}

impl HttpVersion {
    /// As the request line or the Gateway API conformance suite names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }
}

/// One WebSocket data message, sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebSocketMessage {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl fmt::Display for WebSocketMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "text {text:?}"),
            Self::Binary(bytes) => write!(f, "binary {bytes:?}"),
        }
    }
}

/// Certificate verification for `https://` URLs. The default verifies against the
/// platform's trust store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates trusted in addition to the platform's.
    pub extra_ca_file: Option<PathBuf>,
    /// Accept any certificate for any name (`fire --insecure`). Callers must say so
    /// loudly: see [`INSECURE_WARNING`].
    pub insecure_skip_verify: bool,
}

/// The line printed to stderr on every run with verification off.
pub const INSECURE_WARNING: &str = "warning: TLS certificate verification is OFF (--insecure): \
     any certificate for any name is accepted, so responses may come from an impostor";

impl RequestTemplate {
    /// A plain `GET url`, resolved normally.
    pub fn get(url: Url) -> Self {
        Self {
            url,
            connect_to: None,
            host_override: None,
            headers: Vec::new(),
            method: http::Method::GET,
            tls: TlsOptions::default(),
            version: HttpVersion::Http1,
            websocket_messages: Vec::new(),
        }
    }

    /// Pins the connection to `addr`, keeping the URL's host in the `Host` header.
    #[must_use]
    pub fn connect_to(mut self, addr: SocketAddr) -> Self {
        self.connect_to = Some(addr);
        self
    }
}

/// Which part of a response says which backend answered.
#[derive(Debug, Clone)]
pub enum IdentityRule {
    /// The body with surrounding whitespace trimmed, e.g. `hello from backend v1`.
    /// An empty body has no identity.
    Body,
    /// The value of this response header; a missing header gives no identity.
    Header(String),
    /// The first capture group of the first match in the body, else the whole match;
    /// no match gives no identity. A body that is not UTF-8 is matched up to its
    /// first invalid byte.
    BodyRegex(regex::Regex),
    /// The backend echo-basic names in its JSON body (`namespace/deployment`, from the
    /// JSON's `namespace` and `pod`; see [`echo_basic_identity`]). A body that is not
    /// echo-basic's JSON has no identity.
    EchoBasic,
}

impl IdentityRule {
    /// Whether this rule needs the body bytes, so the worker can skip copying them.
    fn needs_body(&self) -> bool {
        !matches!(self, Self::Header(_))
    }
}

/// `body`, `header:NAME`, `regex:RE` or `echo-basic`, as taken by
/// `meshcheck fire --identity`.
impl FromStr for IdentityRule {
    type Err = IdentityRuleParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "body" {
            return Ok(Self::Body);
        }
        if s == "echo-basic" {
            return Ok(Self::EchoBasic);
        }
        if let Some(name) = s.strip_prefix("header:") {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(IdentityRuleParseError::HeaderName {
                    name: name.to_owned(),
                });
            }
            return Ok(Self::Header(name.to_owned()));
        }
        if let Some(re) = s.strip_prefix("regex:") {
            return regex::Regex::new(re)
                .map(Self::BodyRegex)
                .map_err(|source| IdentityRuleParseError::Regex {
                    regex: re.to_owned(),
                    source,
                });
        }
        Err(IdentityRuleParseError::Unknown { rule: s.to_owned() })
    }
}

/// Why an `--identity` value was rejected.
#[derive(Debug, thiserror::Error)]
pub enum IdentityRuleParseError {
    /// Not one of the known forms.
    #[error(
        "unknown identity rule `{rule}` (expected `body`, `header:NAME`, `regex:RE` or `echo-basic`)"
    )]
    Unknown {
        /// The rejected text.
        rule: String,
    },
    /// `header:NAME` with an invalid header name.
    #[error("invalid header name `{name}` in identity rule")]
    HeaderName {
        /// The rejected name.
        name: String,
    },
    /// `regex:RE` with an invalid regular expression.
    #[error("invalid regular expression `{regex}` in identity rule")]
    Regex {
        /// The rejected expression.
        regex: String,
        /// What the regex crate said.
        #[source]
        source: regex::Error,
    },
}

/// One load run: what to send, how often, how many at once.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The request every worker sends.
    pub request: RequestTemplate,
    /// How many requests to send at most; `observe` can stop the run earlier.
    pub requests: u64,
    /// How many requests are in flight at once (one connection per worker). At
    /// least 1; more workers than requests are not started.
    pub concurrency: usize,
    /// Per request, connecting included.
    pub timeout: Duration,
    /// Reuse each worker's connection. Off: a new connection per request, which sends
    /// `Connection: close`, like the Gateway API conformance suite does.
    pub keep_alive: bool,
    /// Where the backend identity is read from.
    pub identity: IdentityRule,
    /// Response headers the observer judges: every sample carries their values.
    /// Only these are kept, so a run that needs none copies none.
    pub response_headers: Vec<http::HeaderName>,
    /// Every sample carries the response body (its first [`MAX_IDENTITY_BODY`] bytes),
    /// for an observer that judges it. Off, no body is copied beyond what the identity
    /// rule reads.
    pub response_body: bool,
}

/// Why a request got no (complete) response. Failed requests are samples, not errors
/// of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The TCP connection or the HTTP handshake failed (e.g. connection refused).
    Connect,
    /// No complete response within the per-request timeout.
    Timeout,
    /// The peer closed or reset the connection before the response head arrived.
    ConnectionClosed,
    /// The response head was not valid HTTP (or the HTTP/2 peer broke the protocol).
    Protocol,
    /// The response head arrived but reading the body failed.
    Body,
    /// The TLS handshake failed for a reason other than the server's certificate
    /// (e.g. the peer closed it, or no protocol version in common).
    Tls,
    /// The server's certificate was rejected: an untrusted issuer, a name that is not
    /// the URL's host, an expired certificate. Unlike the other kinds this does not
    /// go away by waiting for the data plane.
    Certificate,
    /// A WebSocket upgrade was accepted, but sending a message or reading its reply
    /// failed (the connection closed, a protocol error, a close frame).
    WebSocket,
}

impl ErrorKind {
    /// The snake_case name used in output and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::ConnectionClosed => "connection_closed",
            Self::Protocol => "protocol",
            Self::Body => "body",
            Self::Tls => "tls",
            Self::Certificate => "certificate",
            Self::WebSocket => "websocket",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One completed request, as seen by `observe`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The response status, if a response head arrived.
    pub status: Option<u16>,
    /// The backend identity per the [`IdentityRule`]; [`OTHER_IDENTITY`] once
    /// [`MAX_IDENTITIES`] distinct ones were seen.
    pub identity: Option<&'a str>,
    /// From the start of the request (connecting included) to the end of the body.
    pub latency: Duration,
    /// Why the request failed, if it did.
    pub error: Option<ErrorKind>,
    /// What went wrong in more words, when the kind alone hides it (the TLS
    /// handshake's reason, e.g. `invalid peer certificate: UnknownIssuer`).
    pub error_detail: Option<&'a str>,
    /// The response carried `x-envoy-overloaded: true` (an Envoy circuit breaker
    /// tripped).
    pub envoy_overloaded: bool,
    /// The values of the [`LoadSpec::response_headers`] in this response.
    pub headers: ResponseHeaders<'a>,
    /// The response body, up to [`MAX_IDENTITY_BODY`] bytes, when the load asked for it
    /// ([`LoadSpec::response_body`]); `None` otherwise.
    pub body: Option<&'a [u8]>,
    /// For a WebSocket session: the replies read, one per message sent; empty
    /// otherwise.
    pub websocket_replies: &'a [WebSocketMessage],
}

/// The response headers a load asked for ([`LoadSpec::response_headers`]), as one
/// response carried them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ResponseHeaders<'a> {
    names: &'a [http::HeaderName],
    /// Aligned with `names`; `None` where the response lacked the header.
    values: &'a [Option<http::HeaderValue>],
}

impl<'a> ResponseHeaders<'a> {
    /// `values[i]` is the response's value of `names[i]`.
    pub fn new(
        names: &'a [http::HeaderName],
        values: &'a [Option<http::HeaderValue>],
    ) -> ResponseHeaders<'a> {
        debug_assert!(values.is_empty() || values.len() == names.len());
        ResponseHeaders { names, values }
    }

    /// The response's value of `name`; `None` when the response had no such header,
    /// or the load did not ask for it. A header sent on several lines reads as one
    /// value, the lines' values joined with `,` (as Go joins an `http.Header` list; the
    /// in-mesh client's curl joins them with `, `).
    pub fn get(&self, name: &http::HeaderName) -> Option<&'a http::HeaderValue> {
        let index = self.names.iter().position(|n| n == name)?;
        self.values.get(index)?.as_ref()
    }
}

/// What `observe` wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep sending.
    Continue,
    /// Stop now: no new requests are issued, and requests still in flight are
    /// abandoned (their connections dropped) and neither observed nor counted.
    Stop,
}

/// Setup failures: nothing was sent to `url`. Failed requests are [`Sample`]s instead.
#[derive(Debug)]
pub struct TrafficError {
    /// The URL given.
    pub url: Box<Url>,
    /// What is wrong with it, or with what it needs.
    pub kind: TrafficErrorKind,
}

impl TrafficError {
    pub(crate) fn new(url: &Url, kind: TrafficErrorKind) -> Self {
        TrafficError {
            url: Box::new(url.clone()),
            kind,
        }
    }
}

impl fmt::Display for TrafficError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} for {}", self.kind, self.url)
    }
}

// The kind's text is part of this error's own Display, so its cause is the kind's
// cause, not the kind itself (which would repeat it).
impl std::error::Error for TrafficError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// Why the engine sent nothing; reads well after "failed to", and before "for URL".
#[derive(Debug, thiserror::Error)]
pub enum TrafficErrorKind {
    /// Only `http://`, `https://`, `ws://` and `wss://` URLs are supported.
    #[error("use scheme `{scheme}` (only http, https, ws and wss are supported)")]
    UnsupportedScheme {
        /// The URL's scheme.
        scheme: String,
    },
    /// The URL has no host to put in the `Host` header.
    #[error("find a host in the URL")]
    MissingHost,
    /// A `ws://` or `wss://` URL with [`HttpVersion::Http2`]: the engine upgrades to
    /// WebSocket over HTTP/1.1 only (RFC 6455), not over HTTP/2 (RFC 8441).
    #[error("open a WebSocket over HTTP/2 (WebSocket sessions are upgraded from HTTP/1.1)")]
    WebSocketOverHttp2,
    /// A `ws://` or `wss://` URL with another method than GET, which the opening
    /// handshake must use (RFC 6455 section 4.1).
    #[error("open a WebSocket with method {method} (the handshake is a GET)")]
    WebSocketMethod {
        /// The method given.
        method: String,
    },
    /// Messages to send over a WebSocket, with a URL that is not `ws://` or `wss://`.
    #[error("send WebSocket messages to a URL that is not ws:// or wss://")]
    WebSocketMessagesWithoutWebSocket,
    /// Resolving the URL's host failed.
    #[error("resolve {host}:{port}")]
    Resolve {
        /// The URL's host.
        host: String,
        /// Its port.
        port: u16,
        /// What the resolver said.
        #[source]
        source: std::io::Error,
    },
    /// The URL's host resolved to nothing.
    #[error("resolve {host}:{port} to any address")]
    NoAddresses {
        /// The URL's host.
        host: String,
        /// Its port.
        port: u16,
    },
    /// A request header (or the `Host` override) is not valid HTTP.
    #[error("build header `{name}`")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// Why it is invalid.
        #[source]
        source: http::Error,
    },
    /// The URL's path and query are not a valid request target.
    #[error("build the request target")]
    InvalidTarget {
        /// Why it is invalid.
        #[source]
        source: http::Error,
    },
    /// A header-identity rule with an invalid header name.
    #[error("read identities from header `{name}` (invalid header name)")]
    InvalidIdentityHeader {
        /// The header name.
        name: String,
    },
    /// The extra CA file could not be read.
    #[error("read the CA file {}", path.display())]
    ReadCaFile {
        /// The file given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The extra CA file holds no usable PEM certificate.
    #[error("use the CA file {} ({detail})", path.display())]
    InvalidCaFile {
        /// The file given.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The URL's host cannot be a TLS server name.
    #[error("use the URL's host as a TLS server name")]
    InvalidServerName,
    /// rustls refused the client configuration.
    #[error("configure TLS")]
    TlsConfig {
        /// What rustls said.
        #[source]
        source: tokio_rustls::rustls::Error,
    },
    /// Concurrency 0 would never send anything.
    #[error("load with concurrency 0 (at least 1 is needed)")]
    ZeroConcurrency,
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_traffic_error_names_the_url_once_and_keeps_its_cause() {
        let url: Url = "https://test.devopscube.com/".parse().unwrap();
        let err = TrafficError::new(
            &url,
            TrafficErrorKind::ReadCaFile {
                path: PathBuf::from("ca.pem"),
                source: std::io::Error::other("no such file"),
            },
        );
        assert_eq!(
            crate::error_chain::one_line(&err),
            "read the CA file ca.pem for https://test.devopscube.com/: no such file"
        );
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("no such file"));
    }
}
