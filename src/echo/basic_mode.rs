//! `meshcheck echo -echo-basic`: a backend that answers like the Gateway API
//! conformance image `gcr.io/k8s-staging-gateway-api/echo-basic` (kubernetes-sigs/
//! gateway-api `conformance/echo-basic/echo-basic.go`), as far as the conformance
//! tests rely on it.
//!
//! Selected by `-echo-basic` (or `--echo-basic`) as the first argument of
//! `meshcheck echo`; the only other argument it takes is meshcheck's
//! `-listen=ADDR`, which overrides the image's `:HTTP_PORT` (the local target passes
//! `-listen=127.0.0.1:0`). Everything else comes from the environment, read as the
//! image reads it:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HTTP_PORT` | the HTTP/1.1 port, on every interface | `3000` |
//! | `NAMESPACE`, `POD_NAME`, `SERVICE_NAME`, `INGRESS_NAME` | the body's `namespace`, `pod`, `service`, `ingress` | empty |
//! | `GRPC_ECHO_SERVER` | non-empty: the image runs its gRPC echo server instead | refused here |
//! | `TLS_SERVER_CERT` + `TLS_SERVER_PRIVKEY`, or `TLS_CLIENT_CERT` + `TLS_CLIENT_KEY` | the image adds an HTTPS server on `HTTPS_PORT` | refused here |
//!
//! The image also serves h2c on `H2C_PORT` (3001). This mode answers HTTP/2 with prior
//! knowledge (h2c) on its one port, next to HTTP/1.1 (hyper's `auto` connection reads
//! the preface), and the local target sends what a Service routes to `H2C_PORT` there:
//! the image's HTTP port would refuse h2c, this one does not, which no conformance
//! test relies on.
//!
//! What it answers, per path (after `//` is collapsed to `/`, as the image does before
//! routing):
//! - `/health`: 200 `OK`;
//! - `/ws`: a websocket that echoes every message (the handshake refused as the image's
//!   websocket package refuses it);
//! - `/status/NNN` (the whole request target, query included, must be that): status
//!   NNN with an empty body; any other `/status/...` 400; `/status` a 301 to
//!   `/status/`, as Go's `ServeMux` redirects to a subtree;
//! - anything else: the request as received, as JSON ([`EchoedRequest`], Go's
//!   `MarshalIndent` with a one-space indent), `Content-Type: application/json`,
//!   `X-Content-Type-Options: nosniff`. A `delay=DURATION` query parameter (Go duration
//!   syntax: `500ms`, `1.5s`, `1m30s`) waits that long first (an invalid one is a 500
//!   with `{"message": ...}`); each `X-Echo-Set-Header: Name:value, Other:value`
//!   request header sets those response headers (a repeated name joins the values
//!   with `,`). Each such request is logged on stdout as the image logs it:
//!   `Echoing back request made to /path?query to client (127.0.0.1:40000)`.
//!
//! Once bound it prints `listening on ADDR` (the local target's handshake, see
//! [`crate::echo`]), then the image's own `Starting server, listening on port N (http)`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, LOCATION};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;

use super::EchoError;
use super::basic::EchoedRequest;

/// The argument that selects this mode.
pub const MODE_FLAG: &str = "echo-basic";

/// The environment variables echo-basic reads: the only ones the local target hands
/// an echo-basic process (and clears otherwise, so meshcheck's own environment never
/// leaks into a pod's answer).
pub const ENV_VARS: &[&str] = &[
    "HTTP_PORT",
    "H2C_PORT",
    "HTTPS_PORT",
    "NAMESPACE",
    "INGRESS_NAME",
    "SERVICE_NAME",
    "POD_NAME",
    "GRPC_ECHO_SERVER",
    "TLS_SERVER_CERT",
    "TLS_SERVER_PRIVKEY",
    "TLS_CLIENT_CERT",
    "TLS_CLIENT_KEY",
    "TLS_CLIENT_CACERTS",
];

/// How the image's per-request log line starts (its `echoHandler`), on stdout:
/// `Echoing back request made to /path?query to client (127.0.0.1:40000)`.
pub const LOG_PREFIX: &str = "Echoing back request made to ";

/// The request target of one of the image's per-request log lines, `None` for any
/// other line.
pub fn logged_request_target(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(LOG_PREFIX)?;
    let (target, client) = rest.rsplit_once(" to client (")?;
    client.ends_with(')').then_some(target)
}

/// echo-basic's HTTP port when `HTTP_PORT` is unset or empty.
pub const DEFAULT_HTTP_PORT: u16 = 3000;

/// Where the pod runs, as the body reports it (upstream `Context`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodContext {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
    pub pod: String,
}

/// The echo-basic mode's configuration: the address and the pod's context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicArgs {
    pub listen: SocketAddr,
    pub context: PodContext,
}

/// What in an echo-basic environment this mode cannot do: the variable that asks for
/// it and why, for the planner's located messages too.
pub fn unsupported_feature(
    env: impl Fn(&str) -> Option<String>,
) -> Option<(&'static str, &'static str)> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("GRPC_ECHO_SERVER") {
        return Some((
            "GRPC_ECHO_SERVER",
            "echo-basic then runs its gRPC echo server instead, which meshcheck's echo does not have",
        ));
    }
    // The image's condition for starting its HTTPS server (echo-basic.go `main`).
    if set("TLS_SERVER_CERT") && set("TLS_SERVER_PRIVKEY") {
        return Some((
            "TLS_SERVER_CERT",
            "echo-basic then also serves HTTPS from the mounted certificate files, which meshcheck's echo does not",
        ));
    }
    if set("TLS_CLIENT_CERT") && set("TLS_CLIENT_KEY") {
        return Some((
            "TLS_CLIENT_CERT",
            "echo-basic then also serves HTTPS with client certificates, which meshcheck's echo does not",
        ));
    }
    None
}

/// The HTTP port as `HTTP_PORT` gives it (Go listens on `:HTTP_PORT`).
pub fn http_port(value: Option<&str>) -> Result<u16, EchoError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_HTTP_PORT),
        Some(value) => value.parse().map_err(|_| EchoError::InvalidHttpPort {
            value: value.to_string(),
        }),
    }
}

impl BasicArgs {
    /// The mode's arguments (after the mode flag) and environment.
    pub fn parse(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BasicArgs, EchoError> {
        if let Some((variable, why)) = unsupported_feature(&env) {
            return Err(EchoError::EchoBasicUnsupported { variable, why });
        }
        let mut listen = None;
        for arg in args {
            let value = arg
                .strip_prefix("--listen=")
                .or_else(|| arg.strip_prefix("-listen="))
                .ok_or_else(|| EchoError::EchoBasicArgument { arg: arg.clone() })?;
            listen = Some(super::parse_listen(value)?);
        }
        let listen = match listen {
            Some(listen) => listen,
            None => SocketAddr::from(([0, 0, 0, 0], http_port(env("HTTP_PORT").as_deref())?)),
        };
        let var = |name: &str| env(name).unwrap_or_default();
        Ok(BasicArgs {
            listen,
            context: PodContext {
                namespace: var("NAMESPACE"),
                ingress: var("INGRESS_NAME"),
                service: var("SERVICE_NAME"),
                pod: var("POD_NAME"),
            },
        })
    }
}

/// Binds, announces the address on stdout, and serves until SIGTERM or SIGINT.
pub async fn serve_basic(args: BasicArgs) -> Result<(), EchoError> {
    let mut listening = super::Listening::bind(args.listen, |address| {
        vec![format!(
            "Starting server, listening on port {} (http)",
            address.port()
        )]
    })
    .await?;
    let context = Arc::new(args.context);
    while let Some((stream, remote)) = listening.next().await? {
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let context = Arc::clone(&context);
                async move {
                    if req.uri().path().replace("//", "/") == "/ws" {
                        return Ok(websocket(req));
                    }
                    answer(&req, remote, &context).await
                }
            });
            // A client that goes away mid-request is its own business.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
    Ok(())
}

/// A status the image cannot write either (Go's `WriteHeader` panics below 100 and
/// the server drops the connection).
#[derive(Debug, thiserror::Error)]
#[error("status {0} cannot be written")]
struct Unwritable(u16);

type Answer = Result<Response<Full<Bytes>>, Unwritable>;

async fn answer(req: &Request<impl Sized>, remote: SocketAddr, context: &PodContext) -> Answer {
    // The image collapses `//` before routing (its `preserveSlashes` handler), but
    // echoes and matches `/status/` on the request target as sent.
    let routed = req.uri().path().replace("//", "/");
    let target = request_target(req);
    match routed.as_str() {
        "/health" => {
            let mut response = plain(StatusCode::OK, Bytes::from_static(b"OK"));
            // What Go's content sniffing gives the image's bare `OK`.
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(response)
        }
        "/status" => {
            let location = match req.uri().query() {
                Some(query) => format!("/status/?{query}"),
                None => "/status/".to_string(),
            };
            let mut response = plain(StatusCode::MOVED_PERMANENTLY, Bytes::new());
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(LOCATION, value);
            }
            Ok(response)
        }
        path if path.starts_with("/status/") => status(&target),
        _ => Ok(echo(req, &target, remote, context).await),
    }
}

/// `/ws`: the image's websocket echo (golang.org/x/net/websocket's `Handler` around
/// `io.Copy(ws, ws)`): the handshake refused as that package refuses it (400 for a
/// request that is not a version-13 upgrade, 426 for another version, 403 without an
/// `Origin`), then every message echoed back until the client closes. The image
/// sends every reply as a text frame; this echoes each in the frame type it came in.
fn websocket(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let headers = req.headers();
    let has = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let upgrade =
        has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket");
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (upgrade, key) else {
        return plain(StatusCode::BAD_REQUEST, Bytes::new());
    };
    if headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = plain(StatusCode::UPGRADE_REQUIRED, Bytes::new());
        response.headers_mut().insert(
            http::header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(origin) = headers.get(http::header::ORIGIN).cloned() else {
        return plain(StatusCode::FORBIDDEN, Bytes::new());
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgraded = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::protocol::Role;
        let Ok(upgraded) = upgraded.await else {
            return;
        };
        // x/net/websocket's server Conn reports the client's Origin as its address.
        println!(
            "established websocket connection {}",
            String::from_utf8_lossy(origin.as_bytes())
        );
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            let echo = match message {
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                // tungstenite answers pings itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            if ws.send(echo).await.is_err() {
                break;
            }
        }
    });
    let mut response = plain(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let out = response.headers_mut();
    out.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    out.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        out.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// `/status/NNN`: exactly three digits and nothing after them, else 400.
fn status(target: &str) -> Answer {
    let digits = target
        .strip_prefix("/status/")
        .filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()));
    let Some(digits) = digits else {
        return Ok(plain(StatusCode::BAD_REQUEST, Bytes::new()));
    };
    let code: u16 = digits.parse().map_err(|_| Unwritable(0))?;
    let status = StatusCode::from_u16(code)
        .ok()
        .filter(|s| !s.is_informational())
        .ok_or(Unwritable(code))?;
    Ok(plain(status, Bytes::new()))
}

fn plain(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

async fn echo(
    req: &Request<impl Sized>,
    target: &str,
    remote: SocketAddr,
    context: &PodContext,
) -> Response<Full<Bytes>> {
    println!("{LOG_PREFIX}{target} to client ({remote})");
    if let Some(value) = query_value(req.uri().query(), "delay") {
        match parse_go_duration(&value) {
            Ok(delay) => tokio::time::sleep(delay).await,
            Err(err) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
        }
    }
    let echoed = EchoedRequest {
        path: target.to_string(),
        host: request_host(req),
        method: req.method().to_string(),
        proto: proto(req.version()).to_string(),
        headers: go_headers(req.headers()),
        namespace: context.namespace.clone(),
        ingress: context.ingress.clone(),
        service: context.service.clone(),
        pod: context.pod.clone(),
        tls: None,
        sni: String::new(),
    };
    let body = match go_indented_json(&echoed) {
        Ok(body) => body,
        Err(err) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
    };
    let mut response = plain(StatusCode::OK, Bytes::from(body));
    let headers = response.headers_mut();
    for (name, value) in echo_set_headers(req.headers()) {
        headers.append(name, value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = plain(status, Bytes::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Go's `RequestURI`: the request target as sent (`/path?query`, or the absolute
/// form when a client sent that).
fn request_target<B>(req: &Request<B>) -> String {
    // Over HTTP/2 hyper gives the URI from `:scheme`, `:authority` and `:path`; Go's
    // HTTP/2 server sets `RequestURI` to `:path` alone (golang.org/x/net/http2
    // `server.go`, `newWriterAndRequestNoBody`).
    if req.version() == Version::HTTP_2 {
        return req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_string(), ToString::to_string);
    }
    req.uri().to_string()
}

/// Go's `Request.Host`: the URI's authority when the target was absolute, else the
/// `Host` header.
fn request_host<B>(req: &Request<B>) -> String {
    if let Some(authority) = req.uri().authority() {
        return authority.to_string();
    }
    req.headers()
        .get(HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default()
}

fn proto(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The headers as Go's `http.Request.Header` holds them: canonical names, values in
/// the order received, `Host` taken out.
fn go_headers(headers: &http::HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if name == HOST {
            continue;
        }
        out.entry(canonical_header_key(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: the first letter and every letter after a
/// `-` upper case, the rest lower case; a name with a byte Go does not accept in a
/// header name stays as it is.
pub fn canonical_header_key(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The response headers `X-Echo-Set-Header` asks for: each of its values is a
/// comma-separated list of `Name:value`; a name given again joins its values with
/// `,`, as the image's `writeEchoResponseHeaders` does. Names or values no HTTP
/// header can carry are skipped.
fn echo_set_headers(headers: &http::HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut wanted: Vec<(String, String)> = Vec::new();
    for list in headers.get_all("x-echo-set-header") {
        let list = String::from_utf8_lossy(list.as_bytes());
        for pair in list.split(',') {
            let (name, value) = pair.trim().split_once(':').unwrap_or((pair.trim(), ""));
            // Go writes header values trimmed.
            let value = value.trim();
            match wanted.iter_mut().find(|(n, _)| n == name) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(value);
                }
                None => wanted.push((name.to_string(), value.to_string())),
            }
        }
    }
    wanted
        .into_iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect()
}

/// The first value of a query parameter, decoded (Go's `FormValue` on the query).
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Go's `time.ParseDuration`: an optional sign, then one or more decimal numbers
/// (with an optional fraction), each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`,
/// `h`); `0` alone needs none. A negative duration is zero: Go's `time.Sleep` returns
/// at once.
pub fn parse_go_duration(text: &str) -> Result<Duration, InvalidDuration> {
    parse_duration_parts(text).map_err(|()| InvalidDuration(text.to_string()))
}

/// A `delay` Go's `time.ParseDuration` refuses; the message is Go's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("time: invalid duration \"{0}\"")]
pub struct InvalidDuration(pub String);

/// [`parse_go_duration`] without the error's text, which the caller adds.
fn parse_duration_parts(text: &str) -> Result<Duration, ()> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(());
        }
        let value: f64 = number.parse().map_err(|_| ())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(()),
        };
        total += value * nanos_per_unit;
        rest = &rest[unit_end..];
    }
    // Go's durations are int64 nanoseconds.
    if total > i64::MAX as f64 {
        return Err(());
    }
    Ok(if negative {
        Duration::ZERO
    } else {
        Duration::from_nanos(total as u64)
    })
}

/// Go's `json.MarshalIndent(v, "", " ")`, which the image answers with.
fn go_indented_json(value: &EchoedRequest) -> Result<Vec<u8>, serde_json::Error> {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn environment_as_the_image_reads_it() {
        let args = BasicArgs::parse(
            &[],
            env(&[
                ("POD_NAME", "infra-backend-v1-abc-defgh"),
                ("NAMESPACE", "ns"),
            ]),
        )
        .unwrap();
        assert_eq!(args.listen, "0.0.0.0:3000".parse().unwrap());
        assert_eq!(args.context.pod, "infra-backend-v1-abc-defgh");
        assert_eq!(args.context.namespace, "ns");
        assert_eq!(args.context.service, "");
        let args = BasicArgs::parse(&[], env(&[("HTTP_PORT", "8080")])).unwrap();
        assert_eq!(args.listen, "0.0.0.0:8080".parse().unwrap());
        let args = BasicArgs::parse(
            &["-listen=127.0.0.1:0".to_string()],
            env(&[("HTTP_PORT", "8080")]),
        )
        .unwrap();
        assert_eq!(args.listen, "127.0.0.1:0".parse().unwrap());
        // An empty variable is unset, as os.Getenv sees it.
        assert_eq!(
            BasicArgs::parse(&[], env(&[("HTTP_PORT", "")]))
                .unwrap()
                .listen
                .port(),
            3000
        );
    }

    #[test]
    fn what_the_mode_cannot_do_is_refused() {
        assert!(matches!(
            BasicArgs::parse(&[], env(&[("HTTP_PORT", "web")])),
            Err(EchoError::InvalidHttpPort { .. })
        ));
        assert!(matches!(
            BasicArgs::parse(&[], env(&[("GRPC_ECHO_SERVER", "1")])),
            Err(EchoError::EchoBasicUnsupported { .. })
        ));
        assert!(matches!(
            BasicArgs::parse(
                &[],
                env(&[("TLS_SERVER_CERT", "/c"), ("TLS_SERVER_PRIVKEY", "/k")])
            ),
            Err(EchoError::EchoBasicUnsupported { .. })
        ));
        // Only one half of a pair: the image serves plain HTTP only.
        assert!(BasicArgs::parse(&[], env(&[("TLS_SERVER_CERT", "/c")])).is_ok());
        assert!(matches!(
            BasicArgs::parse(&["-text=a".to_string()], env(&[])),
            Err(EchoError::EchoBasicArgument { .. })
        ));
    }

    #[test]
    fn log_lines_give_the_request_target_back() {
        assert_eq!(
            logged_request_target("Echoing back request made to /a?b=1 to client (127.0.0.1:4000)"),
            Some("/a?b=1")
        );
        assert_eq!(
            logged_request_target(
                "Echoing back request made to /x to client (y) to client (127.0.0.1:1)"
            ),
            Some("/x to client (y)")
        );
        assert_eq!(
            logged_request_target("Starting server, listening on port 1 (http)"),
            None
        );
    }

    #[test]
    fn go_canonical_header_names() {
        assert_eq!(
            canonical_header_key("x-echo-set-header"),
            "X-Echo-Set-Header"
        );
        assert_eq!(canonical_header_key("user-agent"), "User-Agent");
        assert_eq!(canonical_header_key("x_weird"), "X_weird");
        assert_eq!(canonical_header_key("dnt"), "Dnt");
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_go_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_go_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("-1s"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("10us"), Ok(Duration::from_micros(10)));
        for bad in ["", "1", "s", "1x", "1..5s", "soon", "-"] {
            assert_eq!(
                parse_go_duration(bad),
                Err(InvalidDuration(bad.to_string())),
                "{bad}"
            );
        }
        assert_eq!(
            parse_go_duration("soon").unwrap_err().to_string(),
            "time: invalid duration \"soon\""
        );
    }

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/a//b?x=1");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn echo_set_header_sets_and_joins() {
        let req = request(&[
            ("X-Echo-Set-Header", "X-Foo: bar, X-Baz:1"),
            ("X-Echo-Set-Header", "X-Foo:again"),
        ]);
        let set = echo_set_headers(req.headers());
        let pairs: Vec<(String, String)> = set
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("x-foo".to_string(), "bar,again".to_string()),
                ("x-baz".to_string(), "1".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn routes_like_the_image() {
        let remote: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let context = PodContext::default();
        let get = |target: &str| Request::get(target).body(()).unwrap();
        let status_of = |answer: Answer| answer.unwrap().status();
        assert_eq!(
            status_of(answer(&get("/health"), remote, &context).await),
            200
        );
        assert_eq!(
            status_of(answer(&get("//health"), remote, &context).await),
            200
        );
        assert_eq!(
            status_of(answer(&get("/status/418"), remote, &context).await),
            418
        );
        assert_eq!(
            status_of(answer(&get("/status/418?x=1"), remote, &context).await),
            400
        );
        assert_eq!(
            status_of(answer(&get("/status/abc"), remote, &context).await),
            400
        );
        assert!(answer(&get("/status/042"), remote, &context).await.is_err());
        let moved = answer(&get("/status?x=1"), remote, &context).await.unwrap();
        assert_eq!(moved.status(), 301);
        assert_eq!(moved.headers()[LOCATION], "/status/?x=1");
        let bad_delay = answer(&get("/?delay=soon"), remote, &context)
            .await
            .unwrap();
        assert_eq!(bad_delay.status(), 500);
    }

    #[tokio::test]
    async fn echoes_the_request_in_the_images_json() {
        use http_body_util::BodyExt;
        let context = PodContext {
            namespace: "ns".into(),
            pod: "web-abc-defgh".into(),
            ..PodContext::default()
        };
        let req = request(&[
            ("Host", "example.com"),
            ("x-multi", "a"),
            ("x-multi", "b"),
            ("X-Echo-Set-Header", "X-Out:yes"),
        ]);
        let response = answer(&req, "127.0.0.1:1".parse().unwrap(), &context)
            .await
            .unwrap();
        assert_eq!(response.headers()["x-out"], "yes");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&body).unwrap();
        // Go's MarshalIndent: one-space indent, the struct's field order.
        assert!(text.starts_with("{\n \"path\": \"/a//b?x=1\",\n \"host\": \"example.com\",\n \"method\": \"GET\",\n \"proto\": \"HTTP/1.1\",\n \"headers\": {\n  \"X-Echo-Set-Header\": [\n"), "{text}");
        let echoed: EchoedRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            echoed.header("X-Multi"),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(echoed.header("host"), None);
        assert_eq!(echoed.namespace, "ns");
        assert_eq!(echoed.pod, "web-abc-defgh");
        assert!(!text.contains("\"tls\""));
    }
}
