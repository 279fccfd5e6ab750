//! `meshcheck echo -echo-advanced`: a backend that answers like the Gateway API
//! conformance mesh image `gcr.io/k8s-staging-gateway-api/echo-advanced`, which is
//! Istio's echo server (istio/istio `pkg/test/echo/server/endpoint/http.go`), on its
//! plain HTTP port.
//!
//! Selected by `-echo-advanced` as the first argument of `meshcheck echo`, followed by
//! the image's own flags, pflag style (`--port=8080`, `--port 8080`, comma lists):
//! `--port` (HTTP ports, default 8080), `--tls` (which of them are TLS), `--grpc`
//! (default 7070), `--tcp` (default 9090), `--crt`,
//! `--key`, `--version`, `--cluster`, `--istio-version`; and meshcheck's
//! `-listen=ADDR`, where the first `--port` that is not `--tls` is served (the local
//! target passes `-listen=127.0.0.1:0`). TLS, gRPC and TCP ports are not served. The
//! answer's `Hostname` is `HOSTNAME` from the environment (the local target sets the
//! pod's name, which is a pod's kernel hostname on a cluster), else this machine's.
//!
//! Every request (websocket upgrades aside, answered 501) gets Istio's echo text, one
//! `Field=value` line each: `ServiceVersion`, `ServicePort` (the declared port),
//! `Host`, `URL` (the request target as sent), `Cluster`, `IstioVersion`, `Method`,
//! `Proto`, `IP` (the caller's), `Alpn`, a `RequestHeader=Name:value` line per header
//! value (names sorted, Go-canonical, `Host` not among them), `Hostname`;
//! `Content-Type: application/text`. Query parameters as the image reads them:
//! `delay=DURATION` waits first, `headers=Name:value,...` sets response headers,
//! `codes=CODE` answers with that status (a weighted list of several codes, which the
//! image picks from at random, is answered 501). A bad value is reported in the body
//! and the request still answered, as the image does.
//! [`crate::echo::EchoedRequest::from_istio_echo`] reads the answer back.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::EchoError;
use super::basic_mode::{canonical_header_key, parse_go_duration};

/// The argument that selects this mode.
pub const MODE_FLAG: &str = "echo-advanced";

/// The ports the image's flags open, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdvancedPorts {
    /// `--port` values that are not `--tls`: plain HTTP (and h2c, on the image).
    pub http: Vec<u16>,
    /// `--port` values that are also `--tls`.
    pub https: Vec<u16>,
    pub grpc: Vec<u16>,
    pub tcp: Vec<u16>,
}

/// The echo-advanced mode's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvancedArgs {
    pub listen: SocketAddr,
    pub ports: AdvancedPorts,
    pub version: String,
    pub cluster: String,
    pub istio_version: String,
    pub hostname: String,
}

fn port_list(flag: &str, value: &str) -> Result<Vec<u16>, EchoError> {
    value
        .split(',')
        .map(|p| {
            p.trim()
                .parse()
                .map_err(|_| EchoError::InvalidAdvancedFlag {
                    flag: flag.to_string(),
                    value: value.to_string(),
                })
        })
        .collect()
}

/// The image's flags (without meshcheck's `-listen`), split into its ports and
/// settings; refuses a flag the image has that this mode cannot honour.
pub fn parse_flags(args: &[String]) -> Result<(AdvancedPorts, Vec<(String, String)>), EchoError> {
    // pflag's int slices: the first use of a flag replaces its default, later ones
    // append (istio/istio `pkg/test/echo/cmd/server/main.go`: `--port` 8080, `--grpc`
    // 7070, `--tcp` 9090, `--tls` none).
    let mut declared: Option<Vec<u16>> = None;
    let mut grpc: Option<Vec<u16>> = None;
    let mut tcp: Option<Vec<u16>> = None;
    let mut tls = Vec::new();
    let mut settings = Vec::new();
    let mut at = 0;
    while let Some(arg) = args.get(at) {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(EchoError::UnexpectedArgument { arg: arg.clone() });
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name, value.to_string()),
            None => {
                at += 1;
                let value = args.get(at).ok_or_else(|| EchoError::MissingValue {
                    flag: flag.to_string(),
                })?;
                (flag, value.clone())
            }
        };
        at += 1;
        match name {
            "port" => declared
                .get_or_insert_default()
                .extend(port_list(name, &value)?),
            "tls" => tls.extend(port_list(name, &value)?),
            "grpc" => grpc
                .get_or_insert_default()
                .extend(port_list(name, &value)?),
            "tcp" => tcp.get_or_insert_default().extend(port_list(name, &value)?),
            "crt" | "key" | "version" | "cluster" | "istio-version" | "listen" => {
                settings.push((name.to_string(), value));
            }
            _ => {
                return Err(EchoError::UnknownAdvancedFlag { flag: arg.clone() });
            }
        }
    }
    let mut ports = AdvancedPorts {
        grpc: grpc.unwrap_or_else(|| vec![7070]),
        tcp: tcp.unwrap_or_else(|| vec![9090]),
        ..AdvancedPorts::default()
    };
    for port in declared.unwrap_or_else(|| vec![8080]) {
        if tls.contains(&port) {
            ports.https.push(port);
        } else {
            ports.http.push(port);
        }
    }
    Ok((ports, settings))
}

impl AdvancedArgs {
    /// The mode's arguments (after the mode flag) and environment.
    pub fn parse(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AdvancedArgs, EchoError> {
        let (ports, settings) = parse_flags(args)?;
        let setting = |name: &str| {
            settings
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let Some(&port) = ports.http.first() else {
            return Err(EchoError::NoAdvancedHttpPort);
        };
        let listen = match setting("listen") {
            Some(value) => super::parse_listen(&value)?,
            None => SocketAddr::from(([0, 0, 0, 0], port)),
        };
        let hostname = env("HOSTNAME")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(machine_hostname);
        Ok(AdvancedArgs {
            listen,
            ports,
            version: setting("version").unwrap_or_default(),
            cluster: setting("cluster").unwrap_or_default(),
            istio_version: setting("istio-version").unwrap_or_default(),
            hostname,
        })
    }
}

fn machine_hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// Binds, announces the address on stdout, and serves until SIGTERM or SIGINT.
pub async fn serve_advanced(args: AdvancedArgs) -> Result<(), EchoError> {
    let mut listening = super::Listening::bind(args.listen, |_| Vec::new()).await?;
    let args = Arc::new(args);
    while let Some((stream, remote)) = listening.next().await? {
        let args = Arc::clone(&args);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let args = Arc::clone(&args);
                async move { Ok::<_, std::convert::Infallible>(answer(&req, remote, &args).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    Ok(())
}

fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn answer(
    req: &Request<impl Sized>,
    remote: SocketAddr,
    args: &AdvancedArgs,
) -> Response<Full<Bytes>> {
    let is_websocket = req
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if is_websocket {
        let mut response = Response::new(Full::new(Bytes::from_static(
            b"meshcheck echo -echo-advanced does not serve websockets\n",
        )));
        *response.status_mut() = StatusCode::NOT_IMPLEMENTED;
        return response;
    }
    let query = req.uri().query();
    let mut body = String::new();
    if let Some(value) = query_value(query, "delay").filter(|v| !v.is_empty()) {
        match parse_go_duration(&value) {
            Ok(delay) => tokio::time::sleep(delay).await,
            Err(err) => {
                let _ = writeln!(body, "error delaying response error: {err}");
            }
        }
    }
    let mut headers = Vec::new();
    if let Some(list) = query_value(query, "headers").filter(|v| !v.is_empty()) {
        for pair in list.split(',') {
            let parts: Vec<&str> = pair.split(':').collect();
            let [name, value] = parts.as_slice() else {
                let _ = writeln!(
                    body,
                    "response headers error: invalid \"{pair}\" (want name:value)"
                );
                break;
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.push((name, value));
            }
        }
    }
    let status = match query_value(query, "codes").filter(|v| !v.is_empty()) {
        None => StatusCode::OK,
        Some(codes) => match single_code(&codes) {
            Ok(status) => status,
            Err(message) => {
                let _ = writeln!(body, "codes error: {message}");
                StatusCode::BAD_REQUEST
            }
        },
    };
    write_payload(&mut body, req, remote, args);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let out = response.headers_mut();
    for (name, value) in headers {
        out.insert(name, value);
    }
    out.insert(CONTENT_TYPE, HeaderValue::from_static("application/text"));
    response
}

/// `codes=CODE` or `codes=CODE:WEIGHT`: that status. Several codes are a random pick
/// in the image, which this mode does not make (501).
fn single_code(codes: &str) -> Result<StatusCode, String> {
    if codes.contains(',') {
        return Ok(StatusCode::NOT_IMPLEMENTED);
    }
    let code = codes.split(':').next().unwrap_or_default();
    let n: u16 = code
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing \"{code}\": invalid syntax"))?;
    if !(200..600).contains(&n) {
        return Err(format!("invalid HTTP response code {n}"));
    }
    StatusCode::from_u16(n).map_err(|err| err.to_string())
}

/// Istio's `addResponsePayload`, field for field.
fn write_payload(
    body: &mut String,
    req: &Request<impl Sized>,
    remote: SocketAddr,
    args: &AdvancedArgs,
) {
    let host = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        })
        .unwrap_or_default();
    let port = args
        .ports
        .http
        .first()
        .map(u16::to_string)
        .unwrap_or_default();
    let proto = match req.version() {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(body, "{name}={value}");
    };
    field("ServiceVersion", &args.version);
    field("ServicePort", &port);
    field("Host", &host);
    field("URL", &req.uri().to_string());
    field("Cluster", &args.cluster);
    field("IstioVersion", &args.istio_version);
    field("Method", req.method().as_str());
    field("Proto", proto);
    field("IP", &remote.ip().to_string());
    field("Alpn", "");
    let mut names: Vec<String> = req
        .headers()
        .keys()
        .filter(|n| **n != HOST)
        .map(|n| canonical_header_key(n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    for name in &names {
        for value in req.headers().get_all(name.as_str()) {
            field(
                "RequestHeader",
                &format!("{name}:{}", String::from_utf8_lossy(value.as_bytes())),
            );
        }
    }
    field("Hostname", &args.hostname);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_mesh_manifests_flags() {
        let (ports, settings) = parse_flags(&strings(&[
            "--tcp=9090",
            "--port=8080",
            "--grpc=7070",
            "--port=8443",
            "--tls=8443",
            "--crt=/cert.crt",
            "--key=/cert.key",
        ]))
        .unwrap();
        assert_eq!(ports.http, [8080]);
        assert_eq!(ports.https, [8443]);
        assert_eq!(ports.grpc, [7070]);
        assert_eq!(ports.tcp, [9090]);
        assert_eq!(settings.len(), 2);
        assert_eq!(
            parse_flags(&strings(&["--port", "80,81"])).unwrap().0.http,
            [80, 81]
        );
        assert!(matches!(
            parse_flags(&strings(&["--hbone=15008"])),
            Err(EchoError::UnknownAdvancedFlag { .. })
        ));
        // The image's defaults when a flag is not given.
        let (defaults, _) = parse_flags(&[]).unwrap();
        assert_eq!(
            (defaults.http, defaults.grpc, defaults.tcp),
            (vec![8080], vec![7070], vec![9090])
        );
        assert!(matches!(
            AdvancedArgs::parse(&strings(&["--port=8443", "--tls=8443"]), |_| None),
            Err(EchoError::NoAdvancedHttpPort)
        ));
        let args = AdvancedArgs::parse(
            &strings(&["--port=8080", "-listen=127.0.0.1:0", "--version=v1"]),
            |name| (name == "HOSTNAME").then(|| "echo-v1-abc-defgh".to_string()),
        )
        .unwrap();
        assert_eq!(args.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(args.hostname, "echo-v1-abc-defgh");
        assert_eq!(args.version, "v1");
    }

    #[tokio::test]
    async fn answers_in_istio_echo_text() {
        use http_body_util::BodyExt;
        let args = AdvancedArgs::parse(&strings(&["--port=8080"]), |name| {
            (name == "HOSTNAME").then(|| "echo-v1-abc-defgh".to_string())
        })
        .unwrap();
        let req = Request::get("/path?headers=X-Out:1&codes=503")
            .header("Host", "echo:80")
            .header("b-header", "2")
            .header("a-header", "1")
            .header("a-header", "3")
            .body(())
            .unwrap();
        let response = answer(&req, "10.0.0.1:5000".parse().unwrap(), &args).await;
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["x-out"], "1");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/text");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "ServiceVersion=\nServicePort=8080\nHost=echo:80\nURL=/path?headers=X-Out:1&codes=503\nCluster=\nIstioVersion=\nMethod=GET\nProto=HTTP/1.1\nIP=10.0.0.1\nAlpn=\nRequestHeader=A-Header:1\nRequestHeader=A-Header:3\nRequestHeader=B-Header:2\nHostname=echo-v1-abc-defgh\n"
        );
    }
}
