//! `meshcheck echo`: a backend that answers like `hashicorp/http-echo`, so fixtures
//! written for a cluster run unchanged on the local target.
//!
//! It takes http-echo's Go-style flags (`-text=X`, `-text X`, `--text=X`, `-listen`,
//! `-status-code`) and, once bound, prints one `listening on ADDR` line to stdout: the
//! local target reads that line to learn the port, so it can hand out `127.0.0.1:0` and
//! never race another process for a port.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

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
    #[error("unknown flag `{flag}` (http-echo flags: -text, -listen, -status-code)")]
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

/// http-echo's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoArgs {
    /// The body of every response, before the trailing newline.
    pub text: String,
    pub listen: SocketAddr,
    pub status: StatusCode,
}

impl EchoArgs {
    /// Parses Go `flag`-package style arguments: one or two leading dashes, the value
    /// after `=` or as the next argument.
    pub fn parse(args: Vec<String>) -> Result<EchoArgs, EchoError> {
        let mut text = None;
        let mut listen = String::from(":5678");
        let mut status = String::from("200");
        let mut rest = args.into_iter();
        while let Some(arg) = rest.next() {
            let Some(flag) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|f| !f.is_empty())
            else {
                return Err(EchoError::UnexpectedArgument { arg });
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (flag.to_string(), None),
            };
            if !matches!(name.as_str(), "text" | "listen" | "status-code") {
                return Err(EchoError::UnknownFlag { flag: arg });
            }
            let value = match inline {
                Some(v) => v,
                None => rest
                    .next()
                    .ok_or_else(|| EchoError::MissingValue { flag: name.clone() })?,
            };
            match name.as_str() {
                "text" => text = Some(value),
                "listen" => listen = value,
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
        })
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

/// Binds, announces the address on stdout, and serves until SIGTERM or SIGINT.
pub async fn serve(args: EchoArgs) -> Result<(), EchoError> {
    // Handlers first: a signal that arrives between the announcement and the accept loop
    // must still stop us cleanly.
    let mut sigterm = signal(SignalKind::terminate()).map_err(EchoError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(EchoError::Signal)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| EchoError::Bind {
            address: args.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| EchoError::Bind {
        address: args.listen,
        source,
    })?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {address}").map_err(EchoError::Announce)?;
        stdout.flush().map_err(EchoError::Announce)?;
    }
    let body = Bytes::from(format!("{}\n", args.text));
    let status = args.status;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(|source| EchoError::Accept { address, source })?,
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        };
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, status, body.clone()));
            // A client that goes away mid-request is its own business, not an echo error.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    status: StatusCode,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, content_type) = if req.uri().path() == "/health" {
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
    }

    #[test]
    fn bad_flags_are_refused_clearly() {
        assert_eq!(
            args(&["-text=a", "-colour=red"]).unwrap_err().to_string(),
            "unknown flag `-colour=red` (http-echo flags: -text, -listen, -status-code)"
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
