//! `meshcheck fire`: the blog's `for i in {1..10}; do curl test.devopscube.com; done`
//! as a command. One line per response (the backend identity, like the curl loop
//! prints the body), then a summary.
//!
//! Exit codes: 0 when every request got a complete response (whatever its status),
//! 1 ([`exit_codes::CASES_FAILED`]) when at least one failed (connect, timeout,
//! reset...), 130 ([`exit_codes::INTERRUPTED`]) after Ctrl-C. Setup errors are
//! returned as [`FireError`], see [`FireError::exit_code`].
//!
//! Output: without `--quiet`/`--json`, one line per response on stdout (the identity,
//! `error: KIND` for a failed request, `(status N, no identity)` otherwise), then the
//! summary. With `--json`, only the JSON summary ([`super::TallySummary`]).

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use url::Url;

use super::{
    Flow, HttpVersion, INSECURE_WARNING, IdentityRule, LoadSpec, RequestTemplate, Sample, Tally,
    TlsOptions, TrafficError, TrafficErrorKind, run_load,
};
use crate::exit_codes;

/// Arguments of `meshcheck fire`.
#[derive(Debug, Clone, clap::Args)]
pub struct FireArgs {
    /// The URL to request; its host goes into the `Host` header.
    pub url: Url,
    /// How many requests to send.
    #[arg(short = 'n', long = "requests", default_value_t = 200)]
    pub requests: u64,
    /// How many requests in flight at once, each on its own connection.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub concurrency: usize,
    /// Connect to ADDR instead of resolving HOST:PORT, like curl's --resolve.
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Option<Resolve>,
    /// Send this `Host` header instead of the URL's.
    #[arg(long)]
    pub host: Option<String>,
    /// Extra request header; repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Request method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: http::Method,
    /// Per request, connecting included (e.g. 2s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Open a new connection per request (over HTTP/1.1 sending `Connection: close`).
    #[arg(long)]
    pub no_keep_alive: bool,
    /// Speak HTTP/2: with prior knowledge to an http URL (h2c), by ALPN to an https
    /// one. Refused with a ws or wss URL, which opens a WebSocket session per request
    /// (an HTTP/1.1 upgrade, no messages sent).
    #[arg(long)]
    pub http2: bool,
    /// Where the backend identity is read: `body`, `header:NAME`, `regex:RE` or
    /// `echo-basic` (`namespace/deployment` from the conformance backend's JSON).
    #[arg(long, default_value = "body")]
    pub identity: IdentityRule,
    /// Also trust the CA certificates in this PEM file for https URLs (the platform's
    /// trust store is always used).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Do not verify https certificates (prints a warning on every run).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Print no line per response, only the summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the summary as JSON (and no line per response).
    #[arg(long)]
    pub json: bool,
}

/// A `--resolve HOST:PORT:ADDR` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// The host it applies to.
    pub host: String,
    /// The port it applies to.
    pub port: u16,
    /// Where to connect instead.
    pub addr: IpAddr,
}

impl FromStr for Resolve {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{s}` is not HOST:PORT:ADDR");
        let (host, rest) = s.split_once(':').ok_or_else(usage)?;
        let (port, addr) = rest.split_once(':').ok_or_else(usage)?;
        let port = port
            .parse()
            .map_err(|_| format!("invalid port `{port}` in `{s}`"))?;
        // curl accepts IPv6 addresses with or without brackets.
        let bare = addr.trim_start_matches('[').trim_end_matches(']');
        let addr = bare
            .parse()
            .map_err(|_| format!("invalid address `{addr}` in `{s}`"))?;
        if host.is_empty() {
            return Err(usage());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            addr,
        })
    }
}

impl fmt::Display for Resolve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(addr) => write!(f, "{}:{}:{addr}", self.host, self.port),
            IpAddr::V6(addr) => write!(f, "{}:{}:[{addr}]", self.host, self.port),
        }
    }
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not NAME: VALUE"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// Why `fire` could not run.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    /// `--resolve` names another host or port than the URL; curl would silently
    /// ignore it and resolve normally, which is rarely what a mesh test wants.
    #[error("apply --resolve {resolve} to {url}: the host or port differs")]
    ResolveMismatch {
        /// The entry given.
        resolve: Resolve,
        /// The URL given.
        url: Box<Url>,
    },
    /// The engine refused the request.
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    /// Writing to stdout failed (e.g. a closed pipe).
    #[error("write output")]
    Output(#[source] io::Error),
}

impl FireError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::ResolveMismatch { .. }
            | Self::Traffic(TrafficError {
                kind:
                    TrafficErrorKind::UnsupportedScheme { .. }
                    | TrafficErrorKind::MissingHost
                    | TrafficErrorKind::WebSocketOverHttp2
                    | TrafficErrorKind::WebSocketMethod { .. }
                    | TrafficErrorKind::WebSocketMessagesWithoutWebSocket
                    | TrafficErrorKind::InvalidHeader { .. }
                    | TrafficErrorKind::InvalidTarget { .. }
                    | TrafficErrorKind::InvalidIdentityHeader { .. }
                    | TrafficErrorKind::ZeroConcurrency
                    | TrafficErrorKind::ReadCaFile { .. }
                    | TrafficErrorKind::InvalidCaFile { .. }
                    | TrafficErrorKind::InvalidServerName,
                ..
            }) => exit_codes::BAD_INPUT,
            Self::Traffic(TrafficError {
                kind:
                    TrafficErrorKind::Resolve { .. }
                    | TrafficErrorKind::NoAddresses { .. }
                    | TrafficErrorKind::TlsConfig { .. },
                ..
            })
            | Self::Output(_) => exit_codes::SETUP_FAILED,
        }
    }
}

impl FireArgs {
    /// The engine's view of these arguments.
    pub fn load_spec(&self) -> Result<LoadSpec, FireError> {
        let connect_to = match &self.resolve {
            None => None,
            Some(resolve) => {
                let matches = self
                    .url
                    .host_str()
                    .is_some_and(|host| host.eq_ignore_ascii_case(&resolve.host))
                    && self.url.port_or_known_default() == Some(resolve.port);
                if !matches {
                    return Err(FireError::ResolveMismatch {
                        resolve: resolve.clone(),
                        url: Box::new(self.url.clone()),
                    });
                }
                Some(SocketAddr::new(resolve.addr, resolve.port))
            }
        };
        Ok(LoadSpec {
            response_headers: Vec::new(),
            response_body: false,
            request: RequestTemplate {
                url: self.url.clone(),
                connect_to,
                host_override: self.host.clone(),
                headers: self.headers.clone(),
                method: self.method.clone(),
                tls: TlsOptions {
                    extra_ca_file: self.cacert.clone(),
                    insecure_skip_verify: self.insecure,
                },
                version: if self.http2 {
                    HttpVersion::Http2
                } else {
                    HttpVersion::Http1
                },
                websocket_messages: Vec::new(),
            },
            requests: self.requests,
            concurrency: self.concurrency,
            timeout: self.timeout,
            keep_alive: !self.no_keep_alive,
            identity: self.identity.clone(),
        })
    }
}

/// Runs `meshcheck fire` with output on stdout; returns the exit code.
///
/// Ctrl-C stops issuing requests at the next completed one and still prints the
/// summary of what was observed, then returns [`exit_codes::INTERRUPTED`].
pub async fn run(args: FireArgs) -> Result<i32, FireError> {
    let stdout = io::stdout();
    // On a terminal each line shows up as it happens, like the curl loop; into a pipe
    // lines are buffered, which matters at tens of thousands of requests per second.
    let live = stdout.is_terminal();
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    // The collector runs as a task of the runtime rather than on the caller's thread
    // (often `block_on` on the main thread): workers then wake it on a runtime thread,
    // which saves a futex wake-up per record and measurably raises requests/s.
    let collector =
        tokio::spawn(
            async move { fire(&args, io::BufWriter::new(stdout), live, &interrupted).await },
        );
    let result = collector.await;
    listener.abort();
    match result {
        Ok(result) => result,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// [`run`] writing to `out`, without Ctrl-C handling; `flush_each_line` flushes
/// after every response line.
pub async fn run_with_output(
    args: &FireArgs,
    out: impl Write,
    flush_each_line: bool,
) -> Result<i32, FireError> {
    fire(args, out, flush_each_line, &AtomicBool::new(false)).await
}

async fn fire(
    args: &FireArgs,
    mut out: impl Write,
    flush_each_line: bool,
    interrupted: &AtomicBool,
) -> Result<i32, FireError> {
    let spec = args.load_spec()?;
    if args.insecure {
        // On stderr so that it survives `--json`/`--quiet` and piping stdout.
        eprintln!("{INSECURE_WARNING}");
    }
    let per_request = !(args.quiet || args.json);
    let mut write_error = None;
    let tally = run_load(&spec, |sample| {
        if interrupted.load(Ordering::Relaxed) {
            return Flow::Stop;
        }
        if !per_request {
            return Flow::Continue;
        }
        let written = write_line(&mut out, sample)
            .and_then(|()| if flush_each_line { out.flush() } else { Ok(()) });
        match written {
            Ok(()) => Flow::Continue,
            Err(error) => {
                write_error = Some(error);
                Flow::Stop
            }
        }
    })
    .await?;
    if let Some(error) = write_error {
        return Err(FireError::Output(error));
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &tally)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_summary(&mut out, &tally)
    }
    .and_then(|()| out.flush())
    .map_err(FireError::Output)?;
    Ok(if interrupted.load(Ordering::Relaxed) {
        exit_codes::INTERRUPTED
    } else if tally.failed() == 0 {
        exit_codes::SUCCESS
    } else {
        exit_codes::CASES_FAILED
    })
}

fn write_line(out: &mut impl Write, sample: &Sample<'_>) -> io::Result<()> {
    match (sample.error, sample.identity, sample.status) {
        (Some(error), _, _) => match sample.error_detail {
            Some(detail) => writeln!(out, "error: {error}: {detail}"),
            None => writeln!(out, "error: {error}"),
        },
        (None, Some(identity), _) => writeln!(out, "{identity}"),
        (None, None, Some(status)) => writeln!(out, "(status {status}, no identity)"),
        (None, None, None) => writeln!(out, "(no identity)"),
    }
}

/// The human summary printed after the per-response lines.
pub fn write_summary(out: &mut impl Write, tally: &Tally) -> io::Result<()> {
    let summary = tally.summary();
    writeln!(out)?;
    writeln!(
        out,
        "requests: {} in {:.3}s ({:.1} requests/s), {} failed",
        summary.requests, summary.elapsed_seconds, summary.requests_per_second, summary.failed
    )?;
    if summary.identities.is_empty() {
        writeln!(out, "identities: none")?;
    } else {
        writeln!(out, "identities:")?;
        let width = summary
            .identities
            .iter()
            .map(|share| share.identity.chars().count())
            .max()
            .unwrap_or(0);
        for share in &summary.identities {
            writeln!(
                out,
                "  {:<width$}  {:>8}  {:>5.1}%",
                share.identity,
                share.count,
                share.share * 100.0
            )?;
        }
    }
    let join = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let statuses = summary
        .status_codes
        .iter()
        .map(|(status, count)| format!("{status} x{count}"))
        .collect();
    writeln!(out, "status codes: {}", join(statuses))?;
    let errors = summary
        .errors
        .iter()
        .map(|(kind, count)| format!("{kind} x{count}"))
        .collect();
    writeln!(out, "errors: {}", join(errors))?;
    if summary.envoy_overloaded > 0 {
        writeln!(
            out,
            "envoy overloaded (x-envoy-overloaded: true): {}",
            summary.envoy_overloaded
        )?;
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    writeln!(
        out,
        "latency: p50 {:.3}ms  p90 {:.3}ms  p99 {:.3}ms  max {:.3}ms",
        ms(summary.latency.p50_us),
        ms(summary.latency.p90_us),
        ms(summary.latency.p99_us),
        ms(summary.latency.max_us)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_parses_curl_forms() {
        let v4: Resolve = "test.devopscube.com:80:127.0.0.1".parse().unwrap();
        assert_eq!(v4.addr, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(v4.port, 80);
        let v6: Resolve = "example.com:8080:[::1]".parse().unwrap();
        assert_eq!(v6.to_string(), "example.com:8080:[::1]");
        assert!("example.com:80".parse::<Resolve>().is_err());
        assert!("example.com:http:127.0.0.1".parse::<Resolve>().is_err());
    }

    #[test]
    fn resolve_must_match_url() {
        let args = |resolve: &str| FireArgs {
            url: "http://test.devopscube.com/".parse().unwrap(),
            requests: 1,
            concurrency: 1,
            resolve: Some(resolve.parse().unwrap()),
            host: None,
            headers: Vec::new(),
            method: http::Method::GET,
            timeout: Duration::from_secs(1),
            no_keep_alive: false,
            http2: false,
            identity: IdentityRule::Body,
            cacert: None,
            insecure: false,
            quiet: false,
            json: false,
        };
        let spec = args("test.devopscube.com:80:127.0.0.1")
            .load_spec()
            .unwrap();
        assert_eq!(
            spec.request.connect_to,
            Some(SocketAddr::from(([127, 0, 0, 1], 80)))
        );
        let mismatch = args("test.devopscube.com:8080:127.0.0.1").load_spec();
        assert!(matches!(mismatch, Err(FireError::ResolveMismatch { .. })));
        let mismatch = args("other.example:80:127.0.0.1").load_spec();
        assert!(matches!(mismatch, Err(FireError::ResolveMismatch { .. })));
    }

    #[test]
    fn header_parsing_trims() {
        assert_eq!(
            parse_header("X-Test:  yes ").unwrap(),
            ("X-Test".to_owned(), "yes".to_owned())
        );
        assert!(parse_header("no colon").is_err());
    }
}
