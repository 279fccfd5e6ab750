//! `meshcheck echo`: a backend that answers like `hashicorp/http-echo`, so fixtures
//! written for a cluster run unchanged on the local target.
//!
//! It takes http-echo's Go-style flags (`-text=X`, `-text X`, `--text=X`, `-listen`,
//! `-status-code`) plus two of its own: `-delay=DURATION` (hashicorp/http-echo has no
//! such flag: a slow backend for circuit-breaking suites; on a cluster such a fixture
//! needs an image that can delay, see `docs/policy.md`) and `-hangup` (read each
//! request, then close the connection without answering: a backend that crashes
//! mid-request, for fault tests on the local target only). Once bound, it prints one
//! `listening on ADDR` line to stdout: the
//! local target reads that line to learn the port, so it can hand out `127.0.0.1:0` and
//! never race another process for a port.
//!
//! With `-echo-basic` as its first argument it answers like the Gateway API
//! conformance image echo-basic instead ([`basic_mode`]: the mode, its environment
//! variables), with `-echo-advanced` like the mesh image echo-advanced (Istio's echo
//! server, [`advanced_mode`]); [`basic`] holds the JSON shape of that image's answer and the pod-name
//! rule that tells which Deployment answered.

pub mod advanced_mode;
pub mod basic;
pub mod basic_mode;

pub use advanced_mode::{AdvancedArgs, serve_advanced};
pub use basic::{BodyError, EchoedRequest, EchoedTls, deployment_of_pod, replica_set_pod_names};
pub use basic_mode::{BasicArgs, serve_basic};

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// The version http-echo reports in `X-App-Version`; ours is meshcheck's.
const APP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why `meshcheck echo` could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error(
        "unknown flag `{flag}` (http-echo flags: -text, -listen, -status-code; meshcheck's: -delay, -hangup)"
    )]
    UnknownFlag { flag: String },
    #[error("flag `-{flag}` needs a value")]
    MissingValue { flag: String },
    #[error("unexpected argument `{arg}`: http-echo takes only flags")]
    UnexpectedArgument { arg: String },
    #[error("missing -text option (http-echo needs the text to answer with)")]
    MissingText,
    #[error("invalid -listen address `{value}`")]
    InvalidListen { value: String },
    #[error("invalid -status-code `{value}`: expected an HTTP status between 100 and 999")]
    InvalidStatus { value: String },
    #[error("invalid -delay `{value}`: expected a duration such as `500ms`")]
    InvalidDelay { value: String },
    #[error("invalid -hangup `{value}`: expected true or false")]
    InvalidHangup { value: String },
    #[error("invalid HTTP_PORT `{value}`: expected a TCP port")]
    InvalidHttpPort { value: String },
    #[error(
        "unexpected argument `{arg}`: -echo-basic takes its settings from the environment, and only -listen=ADDR"
    )]
    EchoBasicArgument { arg: String },
    #[error(
        "unknown flag `{flag}` (echo-advanced flags meshcheck's echo honours: --port, --tls, --grpc, --tcp, --crt, --key, --version, --cluster, --istio-version; meshcheck's: -listen)"
    )]
    UnknownAdvancedFlag { flag: String },
    #[error("invalid --{flag} `{value}`: expected ports, comma-separated")]
    InvalidAdvancedFlag { flag: String, value: String },
    #[error("no plain HTTP port: echo-advanced needs a --port that is not --tls")]
    NoAdvancedHttpPort,
    #[error("{variable} is set: {why}")]
    EchoBasicUnsupported {
        variable: &'static str,
        why: &'static str,
    },
    #[error("failed to listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to announce the listening address on stdout")]
    Announce(#[source] std::io::Error),
    #[error("failed to install the SIGTERM/SIGINT handler")]
    Signal(#[source] std::io::Error),
    #[error("failed to accept a connection on {address}")]
    Accept {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What `meshcheck echo` was asked to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EchoMode {
    /// hashicorp/http-echo's flags.
    HttpEcho(EchoArgs),
    /// `-echo-basic`: the conformance image, configured by the environment.
    EchoBasic(BasicArgs),
    /// `-echo-advanced`: the conformance mesh image (Istio's echo server).
    EchoAdvanced(AdvancedArgs),
}

impl EchoMode {
    /// `-echo-basic` (or `--echo-basic`) first selects the echo-basic mode, which reads
    /// `env`, `-echo-advanced` the echo-advanced mode (its flags follow, `HOSTNAME` from
    /// `env`); anything else is http-echo's command line.
    pub fn parse(
        args: Vec<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<EchoMode, EchoError> {
        let mode = args
            .first()
            .and_then(|first| first.strip_prefix("--").or_else(|| first.strip_prefix('-')));
        if mode == Some(basic_mode::MODE_FLAG) {
            return BasicArgs::parse(&args[1..], env).map(EchoMode::EchoBasic);
        }
        if mode == Some(advanced_mode::MODE_FLAG) {
            return AdvancedArgs::parse(&args[1..], env).map(EchoMode::EchoAdvanced);
        }
        EchoArgs::parse(args).map(EchoMode::HttpEcho)
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn serve(self) -> Result<(), EchoError> {
        match self {
            EchoMode::HttpEcho(args) => serve(args).await,
            EchoMode::EchoBasic(args) => serve_basic(args).await,
            EchoMode::EchoAdvanced(args) => serve_advanced(args).await,
        }
    }
}

/// http-echo's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoArgs {
    /// The body of every response, before the trailing newline.
    pub text: String,
    pub listen: SocketAddr,
    pub status: StatusCode,
    /// How long every answer waits before it is sent (meshcheck-only `-delay`).
    pub delay: Duration,
    /// Close every connection after reading a request, without answering
    /// (meshcheck-only `-hangup`); `/health` still answers.
    pub hangup: bool,
}

/// Flags `meshcheck echo` takes that hashicorp/http-echo does not: a fixture that uses
/// them cannot run with the real image.
pub const MESHCHECK_ONLY_FLAGS: &[&str] = &["delay", "hangup"];

/// The first meshcheck-only flag in http-echo arguments, if any (`-delay=1s` gives
/// `delay`).
pub fn meshcheck_only_flag(args: &[String]) -> Option<&'static str> {
    args.iter().find_map(|arg| {
        let flag = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
        let name = flag.split_once('=').map_or(flag, |(name, _)| name);
        MESHCHECK_ONLY_FLAGS
            .iter()
            .copied()
            .find(|known| *known == name)
    })
}

/// One flag of the command line: its name, its value (`None` for a bare boolean), and
/// the words it took (`-text=a`, or `-text` and `a`).
struct Flag<'a> {
    name: &'a str,
    value: Option<&'a str>,
    words: &'a [String],
}

/// Splits Go `flag`-package style arguments into flags: one or two leading dashes, the
/// value after `=` or as the next argument; `-hangup` is boolean, as in Go, and never
/// takes the next argument.
fn flags(args: &[String]) -> Result<Vec<Flag<'_>>, EchoError> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(arg) = args.get(at) {
        let Some(flag) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .filter(|f| !f.is_empty())
        else {
            return Err(EchoError::UnexpectedArgument { arg: arg.clone() });
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (flag, None),
        };
        if !matches!(name, "text" | "listen" | "status-code" | "delay" | "hangup") {
            return Err(EchoError::UnknownFlag { flag: arg.clone() });
        }
        let (value, taken) = match inline {
            Some(value) => (Some(value), 1),
            None if name == "hangup" => (None, 1),
            None => match args.get(at + 1) {
                Some(next) => (Some(next.as_str()), 2),
                None => {
                    return Err(EchoError::MissingValue {
                        flag: name.to_string(),
                    });
                }
            },
        };
        out.push(Flag {
            name,
            value,
            words: &args[at..at + taken],
        });
        at += taken;
    }
    Ok(out)
}

impl EchoArgs {
    /// Parses Go `flag`-package style arguments: one or two leading dashes, the value
    /// after `=` or as the next argument.
    pub fn parse(args: Vec<String>) -> Result<EchoArgs, EchoError> {
        let mut text = None;
        let mut listen = String::from(":5678");
        let mut status = String::from("200");
        let mut delay = None;
        let mut hangup = false;
        for flag in flags(&args)? {
            if flag.name == "hangup" {
                hangup = match flag.value {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(EchoError::InvalidHangup {
                            value: other.to_owned(),
                        });
                    }
                };
                continue;
            }
            // `flags` gives every other flag a value.
            let value = flag
                .value
                .map(str::to_string)
                .ok_or_else(|| EchoError::MissingValue {
                    flag: flag.name.to_string(),
                })?;
            match flag.name {
                "text" => text = Some(value),
                "listen" => listen = value,
                "delay" => delay = Some(value),
                _ => status = value,
            }
        }
        let text = text
            .filter(|t| !t.is_empty())
            .ok_or(EchoError::MissingText)?;
        Ok(EchoArgs {
            text,
            listen: parse_listen(&listen)?,
            status: status
                .parse::<u16>()
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or(EchoError::InvalidStatus { value: status })?,
            delay: match delay {
                None => Duration::ZERO,
                Some(value) => humantime::parse_duration(&value)
                    .map_err(|_| EchoError::InvalidDelay { value })?,
            },
            hangup,
        })
    }

    /// The arguments without `-listen` (in any of its forms), as written otherwise:
    /// the local target picks the address itself. Refuses what [`EchoArgs::parse`]
    /// refuses to split.
    pub fn without_listen(args: &[String]) -> Result<Vec<String>, EchoError> {
        Ok(flags(args)?
            .into_iter()
            .filter(|flag| flag.name != "listen")
            .flat_map(|flag| flag.words.iter().cloned())
            .collect())
    }
}

/// Go accepts `:PORT` for "every interface"; Rust's parser wants an explicit host.
fn parse_listen(value: &str) -> Result<SocketAddr, EchoError> {
    let full = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_string(),
    };
    full.parse().map_err(|_| EchoError::InvalidListen {
        value: value.to_string(),
    })
}

/// A bound listener of any echo mode, with the signals that end it: every mode binds,
/// announces its address (the local target reads the first line) and accepts until
/// SIGTERM or SIGINT the same way.
pub(crate) struct Listening {
    listener: TcpListener,
    address: SocketAddr,
    sigterm: tokio::signal::unix::Signal,
    sigint: tokio::signal::unix::Signal,
}

impl Listening {
    /// Binds `listen` and prints `listening on ADDR`, then `more_lines` (what the
    /// imitated image prints at start-up, given the bound address).
    pub(crate) async fn bind(
        listen: SocketAddr,
        more_lines: impl FnOnce(SocketAddr) -> Vec<String>,
    ) -> Result<Listening, EchoError> {
        // Handlers first: a signal that arrives between the announcement and the accept
        // loop must still stop us cleanly.
        let sigterm = signal(SignalKind::terminate()).map_err(EchoError::Signal)?;
        let sigint = signal(SignalKind::interrupt()).map_err(EchoError::Signal)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| EchoError::Bind {
                address: listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| EchoError::Bind {
            address: listen,
            source,
        })?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {address}").map_err(EchoError::Announce)?;
        for line in more_lines(address) {
            writeln!(stdout, "{line}").map_err(EchoError::Announce)?;
        }
        stdout.flush().map_err(EchoError::Announce)?;
        Ok(Listening {
            listener,
            address,
            sigterm,
            sigint,
        })
    }

    /// The next connection and its peer, or `None` once a signal asks us to stop.
    pub(crate) async fn next(
        &mut self,
    ) -> Result<Option<(tokio::net::TcpStream, SocketAddr)>, EchoError> {
        tokio::select! {
            accepted = self.listener.accept() => accepted
                .map(Some)
                .map_err(|source| EchoError::Accept { address: self.address, source }),
            _ = self.sigterm.recv() => Ok(None),
            _ = self.sigint.recv() => Ok(None),
        }
    }
}

/// Binds, announces the address on stdout, and serves until SIGTERM or SIGINT.
pub async fn serve(args: EchoArgs) -> Result<(), EchoError> {
    let mut listening = Listening::bind(args.listen, |_| Vec::new()).await?;
    let body = Bytes::from(format!("{}\n", args.text));
    let status = args.status;
    let delay = args.delay;
    let hangup = args.hangup;
    while let Some((stream, _)) = listening.next().await? {
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let body = body.clone();
                async move {
                    if hangup && req.uri().path() != "/health" {
                        // An error from the service makes hyper drop the connection
                        // without writing a response.
                        return Err(HangUp);
                    }
                    answer(req, status, body, delay)
                        .await
                        .map_err(|never| match never {})
                }
            });
            // A client that goes away mid-request is its own business, not an echo error.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    Ok(())
}

/// `-hangup`: the connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
#[error("hung up without answering (-hangup)")]
struct HangUp;

async fn answer(
    req: Request<Incoming>,
    status: StatusCode,
    body: Bytes,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let health = req.uri().path() == "/health";
    // The delay stands for a slow backend; health checks stay fast, as a probe would.
    if !health && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, body, content_type) = if health {
        (
            StatusCode::OK,
            Bytes::from_static(b"{\"status\":\"ok\"}"),
            "application/json",
        )
    } else {
        (status, body, "text/plain; charset=utf-8")
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-app-name", http::HeaderValue::from_static("http-echo"));
    headers.insert("x-app-version", http::HeaderValue::from_static(APP_VERSION));
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<EchoArgs, EchoError> {
        EchoArgs::parse(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn listen_flags_are_dropped_in_every_form() {
        let list: Vec<String> = [
            "-text=a",
            "-listen",
            ":80",
            "--listen=:81",
            "-hangup",
            "-status-code=201",
            "-delay",
            "5ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every other flag stays as written, in either form.
        assert_eq!(
            EchoArgs::without_listen(&list).unwrap(),
            ["-text=a", "-hangup", "-status-code=201", "-delay", "5ms"]
        );
        // What parse refuses, without_listen refuses too: one parser for both.
        assert!(matches!(
            EchoArgs::without_listen(&["-listen".to_string()]),
            Err(EchoError::MissingValue { .. })
        ));
        assert!(matches!(
            EchoArgs::without_listen(&["-nope".to_string()]),
            Err(EchoError::UnknownFlag { .. })
        ));
    }

    #[test]
    fn go_flag_forms() {
        for form in [
            &["-text=hi"][..],
            &["-text", "hi"],
            &["--text=hi"],
            &["--text", "hi"],
        ] {
            let parsed = args(form).unwrap();
            assert_eq!(parsed.text, "hi", "{form:?}");
            assert_eq!(parsed.listen, "0.0.0.0:5678".parse().unwrap());
            assert_eq!(parsed.status, StatusCode::OK);
        }
        let parsed = args(&["-listen=127.0.0.1:0", "-status-code", "503", "-text=x y"]).unwrap();
        assert_eq!(parsed.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(parsed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(parsed.text, "x y");
        assert_eq!(parsed.delay, Duration::ZERO);
        assert_eq!(
            args(&["-text=a", "-delay=250ms"]).unwrap().delay,
            Duration::from_millis(250)
        );
        assert_eq!(
            args(&["-text=a", "--delay", "2s"]).unwrap().delay,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn meshcheck_only_flags_are_named() {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            meshcheck_only_flag(&list(&["-text=a", "--delay=1s"])),
            Some("delay")
        );
        assert_eq!(meshcheck_only_flag(&list(&["-text=delay"])), None);
        assert_eq!(
            meshcheck_only_flag(&list(&["-text=a", "-hangup"])),
            Some("hangup")
        );
        // A boolean: it never swallows the next argument.
        let parsed = args(&["-hangup", "-text=a"]).unwrap();
        assert!(parsed.hangup);
        assert_eq!(parsed.text, "a");
        assert!(!args(&["-text=a", "-hangup=false"]).unwrap().hangup);
        assert!(!args(&["-text=a"]).unwrap().hangup);
        assert!(matches!(
            args(&["-text=a", "-hangup=maybe"]),
            Err(EchoError::InvalidHangup { .. })
        ));
        assert!(matches!(
            args(&["-text=a", "-delay=soon"]),
            Err(EchoError::InvalidDelay { .. })
        ));
    }

    #[test]
    fn bad_flags_are_refused_clearly() {
        assert_eq!(
            args(&["-text=a", "-colour=red"]).unwrap_err().to_string(),
            "unknown flag `-colour=red` (http-echo flags: -text, -listen, -status-code; meshcheck's: -delay, -hangup)"
        );
        assert!(matches!(args(&[]), Err(EchoError::MissingText)));
        assert!(matches!(
            args(&["-text"]),
            Err(EchoError::MissingValue { .. })
        ));
        assert!(matches!(
            args(&["-text=a", "extra"]),
            Err(EchoError::UnexpectedArgument { .. })
        ));
        assert!(matches!(
            args(&["-text=a", "-status-code=abc"]),
            Err(EchoError::InvalidStatus { .. })
        ));
        assert!(matches!(
            args(&["-text=a", "-listen=nowhere"]),
            Err(EchoError::InvalidListen { .. })
        ));
    }
}
