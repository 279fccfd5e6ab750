//! East-west (GAMMA) traffic on a cluster: requests must come from inside the mesh, so
//! meshcheck runs a client pod with an injected sidecar next to the Service and drives
//! `curl` in it through the pods/exec API. This module holds what does not talk to the
//! cluster: the client Deployment, the command run in it, the parser for its output and
//! the batching loop that feeds the parsed responses to the same `observe` callback the
//! engine feeds.
//!
//! The client is `curlimages/curl`, pinned by tag: it is small, its entrypoint can be
//! replaced by `sleep` so the pod idles until exec'd into, and curl's `--write-out`
//! reports per response exactly what a [`Sample`] needs (`%{exitcode}` since curl 7.75,
//! `%header{NAME}` since 7.84). fortio was the alternative, but its load mode reports
//! aggregates, not the body of each response, and the split test needs each identity.

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use super::environment::ExecOutput;
use super::error::KubeError;
use crate::manifest::{Manifest, ManifestError, load_str};
use crate::traffic::{
    ErrorKind, Flow, HttpVersion, IdentityRule, IdentitySource, LoadSpec, MAX_IDENTITY_BODY,
    ResponseHeaders, Sample, Tally, extract_identity,
};

/// The client image: curl 8.11.1 has every `--write-out` variable the parser reads.
pub(crate) const CLIENT_IMAGE: &str = "curlimages/curl:8.11.1";
/// The client Deployment's name and `app` label, in each namespace that needs one.
pub(crate) const CLIENT_NAME: &str = "meshcheck-mesh-client";
/// The container requests are run in (the other one is Istio's `istio-proxy`).
pub(crate) const CLIENT_CONTAINER: &str = "client";
/// Requests per exec: large enough that the exec round trip is amortised, small enough
/// that the sequential test's early stop is not wasted by much.
pub(crate) const REQUESTS_PER_EXEC: u64 = 100;
/// Marks a response line in the client's output; anything else is noise to keep.
const LINE_PREFIX: &str = "meshcheck-response ";
/// Bytes of each body the client prints (identities are short; see
/// [`MAX_IDENTITY_BODY`] for the engine's limit, which is larger).
const BODY_BYTES: usize = 1024;
/// Bytes of each body printed for a load that judges bodies
/// ([`LoadSpec::response_body`], [`IdentityRule::EchoBasic`]): echo-basic's JSON
/// lists every request header, and the sidecars add a few long ones.
const JUDGED_BODY_BYTES: usize = 16 * 1024;
/// Lines of client output kept from the start and from the end for diagnostics.
const TRANSCRIPT_HEAD: usize = 40;
const TRANSCRIPT_TAIL: usize = 80;

/// Where generated manifests say they come from in error messages.
const GENERATED_FILE: &str = "<meshcheck mesh client>";

/// The client Deployment for `namespace`: a pod that sleeps with a sidecar injected by
/// the namespace's `istio-injection` label, applied and cleaned up like a fixture.
pub(crate) fn client_manifests(namespace: &str) -> Result<Vec<Manifest>, ManifestError> {
    // The namespace is a DNS label (the suite loader checked the case's Service key),
    // so it cannot break out of the YAML scalar.
    let text = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {CLIENT_NAME}
  namespace: {namespace}
  labels: {{ app: {CLIENT_NAME} }}
spec:
  replicas: 1
  selector:
    matchLabels: {{ app: {CLIENT_NAME} }}
  template:
    metadata:
      labels: {{ app: {CLIENT_NAME} }}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: {CLIENT_CONTAINER}
        image: {CLIENT_IMAGE}
        command: [\"sleep\", \"infinity\"]
"
    );
    load_str(&text, Path::new(GENERATED_FILE))
}

/// The shell loop run per exec: `$1` requests, each with the curl arguments that
/// follow. Arguments travel as positional parameters, so nothing is ever quoted into
/// the script. The body is flattened to one line after the write-out fields.
const SCRIPT: &str = r#"n=$1; shift; i=0
while [ "$i" -lt "$n" ]; do
  i=$((i+1))
  rm -f /tmp/meshcheck-body
  curl -s -o /tmp/meshcheck-body "$@"
  head -c BODY_BYTES /tmp/meshcheck-body 2>/dev/null | tr '\r\n' FLATTENED
  echo
done"#;

/// What the body's CR and LF become on the client's one output line: spaces, which
/// an identity text does not mind, or, for a load that judges bodies, two control
/// characters no answer carries, turned back by [`restore_line_breaks`] so that a
/// line-based answer (echo-advanced's) and a needle spanning lines read as sent.
fn flattened(load: &LoadSpec) -> &'static str {
    if judges_bodies(load) {
        r"'\002\001'"
    } else {
        "'  '"
    }
}

/// Whether a load reads whole bodies: a check asks for them, or the echo-basic
/// identity rule reads the backend's echo.
fn judges_bodies(load: &LoadSpec) -> bool {
    load.response_body || matches!(load.identity, IdentityRule::EchoBasic)
}

/// Undoes [`flattened`] for a load that judges bodies.
fn restore_line_breaks(body: &str) -> String {
    body.replace('\u{1}', "\n").replace('\u{2}', "\r")
}

/// The exec command for `requests` requests as `load` describes them.
pub(crate) fn command(load: &LoadSpec, requests: u64) -> Vec<String> {
    let identity_header = match &load.identity {
        IdentityRule::Header(name) => name.as_str(),
        IdentityRule::Body | IdentityRule::BodyRegex(_) | IdentityRule::EchoBasic => "",
    };
    let body_bytes = if judges_bodies(load) {
        JUDGED_BODY_BYTES
    } else {
        BODY_BYTES
    };
    // After the identity header, one bracketed field per response header the load
    // asks for, in its order (`parse_line` reads them back).
    let captured: String = load
        .response_headers
        .iter()
        .map(|name| format!("[%header{{{name}}}] "))
        .collect();
    let write_out = format!(
        "{LINE_PREFIX}%{{exitcode}} %{{http_code}} %{{time_total}} [%header{{x-envoy-overloaded}}] [{}] {captured}",
        if identity_header.is_empty() {
            String::new()
        } else {
            format!("%header{{{identity_header}}}")
        }
    );
    let mut command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        SCRIPT
            .replace("BODY_BYTES", &body_bytes.to_string())
            .replace("FLATTENED", flattened(load)),
        "meshcheck-client".to_owned(),
        requests.to_string(),
        "--max-time".to_owned(),
        format!("{:.3}", load.timeout.as_secs_f64()),
        "-w".to_owned(),
        write_out,
    ];
    if load.request.method != http::Method::GET {
        command.extend(["-X".to_owned(), load.request.method.to_string()]);
    }
    // East-west requests are plain http (the loader refuses https to a Service), so
    // HTTP/2 there is always prior knowledge, as the engine speaks it.
    if load.request.version == HttpVersion::Http2 {
        command.push("--http2-prior-knowledge".to_owned());
    }
    if let Some(host) = &load.request.host_override {
        command.extend(["-H".to_owned(), format!("Host: {host}")]);
    }
    for (name, value) in &load.request.headers {
        command.extend(["-H".to_owned(), format!("{name}: {value}")]);
    }
    command.push(load.request.url.to_string());
    command
}

/// One response line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientResponse {
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<ErrorKind>,
    pub envoy_overloaded: bool,
    pub identity_header: String,
    /// The load's `response_headers`, in order; `None` where the response had none
    /// (curl writes nothing for a missing header) or the value is not a header value.
    pub headers: Vec<Option<http::HeaderValue>>,
    pub body: String,
}

/// Why the in-mesh client's requests could not be run or accounted for.
#[derive(Debug, thiserror::Error)]
pub enum MeshClientError {
    #[error("cannot run curl in the mesh client")]
    Exec(#[source] KubeError),
    #[error(transparent)]
    Line(#[from] LineError),
    #[error(
        "the mesh client's output ended after {answered} of {requests} responses (exit status {status}{})",
        last_stderr_line.as_ref().map(|line| format!(": {line}")).unwrap_or_default()
    )]
    OutputEnded {
        answered: u64,
        requests: u64,
        status: i32,
        /// The last line curl or the kubelet wrote to stderr, usually the reason.
        last_stderr_line: Option<String>,
    },
}

/// Why a line that looked like a response could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreadable client response line `{line}`: {problem}")]
pub struct LineError {
    pub line: String,
    pub problem: &'static str,
}

/// What curl's exit code says went wrong, in the engine's terms.
fn error_kind(exit_code: u32) -> Option<ErrorKind> {
    match exit_code {
        0 => None,
        // Could not resolve, could not connect.
        6 | 7 => Some(ErrorKind::Connect),
        28 => Some(ErrorKind::Timeout),
        // Empty reply, send failure, receive failure.
        52 | 55 | 56 => Some(ErrorKind::ConnectionClosed),
        // Partial file, write error: the head arrived, the body did not.
        18 | 23 => Some(ErrorKind::Body),
        _ => Some(ErrorKind::Protocol),
    }
}

/// Parses one line of client output: `None` for lines that are not responses (a
/// shell's complaint, a sidecar message), an error for a response line cut short.
pub(crate) fn parse_line(
    line: &str,
    captured_headers: usize,
) -> Option<Result<ClientResponse, LineError>> {
    let rest = line.strip_prefix(LINE_PREFIX)?;
    let fail = |problem| {
        Some(Err(LineError {
            line: line.to_owned(),
            problem,
        }))
    };
    let mut fields = rest.splitn(4, ' ');
    let (Some(exit), Some(code), Some(time), Some(rest)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return fail("fewer fields than curl writes");
    };
    let Ok(exit) = exit.parse::<u32>() else {
        return fail("the exit code is not a number");
    };
    let Ok(code) = code.parse::<u16>() else {
        return fail("the status is not a number");
    };
    let Some(seconds) = time
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
    else {
        return fail("the time is not a number of seconds");
    };
    let Some((overloaded, rest)) = bracketed(rest) else {
        return fail("the x-envoy-overloaded field is cut");
    };
    let Some((identity_header, mut body)) = bracketed(rest) else {
        return fail("the identity header field is cut");
    };
    let mut headers = Vec::with_capacity(captured_headers);
    for _ in 0..captured_headers {
        let Some((value, rest)) = bracketed(body) else {
            return fail("a response header field is cut");
        };
        headers.push(
            (!value.is_empty())
                .then(|| http::HeaderValue::from_str(value).ok())
                .flatten(),
        );
        body = rest;
    }
    let error = error_kind(exit);
    Some(Ok(ClientResponse {
        // curl writes 000 when no response head arrived.
        status: (code != 0).then_some(code),
        latency: Duration::from_secs_f64(seconds),
        error,
        envoy_overloaded: overloaded.trim().eq_ignore_ascii_case("true"),
        identity_header: identity_header.to_owned(),
        headers,
        body: body.to_owned(),
    }))
}

/// `[VALUE] rest` -> (`VALUE`, `rest`).
fn bracketed(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('[')?;
    let end = inner
        .find("] ")
        .or_else(|| inner.strip_suffix(']').map(str::len))?;
    let rest = inner.get(end + 2..).unwrap_or("");
    Some((&inner[..end], rest))
}

/// The client's raw output, bounded: the first and last lines of every exec, with
/// what was left out counted, for the "client output" diagnostics section.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    head: Vec<String>,
    tail: VecDeque<String>,
    elided: u64,
}

impl Transcript {
    pub(crate) fn push(&mut self, line: String) {
        if self.head.len() < TRANSCRIPT_HEAD {
            self.head.push(line);
            return;
        }
        self.tail.push_back(line);
        if self.tail.len() > TRANSCRIPT_TAIL {
            self.tail.pop_front();
            self.elided += 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_empty()
    }

    pub(crate) fn text(&self) -> String {
        let mut text = self.head.join("\n");
        if self.elided > 0 {
            text.push_str(&format!("\n... {} lines left out ...", self.elided));
        }
        for line in &self.tail {
            text.push('\n');
            text.push_str(line);
        }
        text
    }

    fn record_exec(&mut self, number: u64, requests: u64, output: &ExecOutput) {
        self.push(format!(
            "# exec {number}: {requests} requests, exit status {}",
            output.status
        ));
        for line in output.stdout.lines() {
            self.push(line.to_owned());
        }
        for line in output.stderr.lines() {
            self.push(format!("stderr: {line}"));
        }
    }
}

/// How a run of `total` requests at `concurrency` is cut into execs: each round runs
/// up to `concurrency` execs side by side, each of at most [`REQUESTS_PER_EXEC`].
pub(crate) fn round_sizes(remaining: u64, concurrency: usize) -> Vec<u64> {
    let parallel = u64::try_from(concurrency.max(1)).unwrap_or(u64::MAX);
    let per_exec = remaining.div_ceil(parallel).clamp(1, REQUESTS_PER_EXEC);
    let mut sizes = Vec::new();
    let mut left = remaining;
    while left > 0 && (sizes.len() as u64) < parallel {
        let size = per_exec.min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// Sends `load.requests` requests through `exec` (one call runs the given number of
/// requests in the client pod and returns its output) in rounds, feeding each parsed
/// response to `observe` until it says stop or the count is reached; responses after a
/// stop are discarded, like requests the engine abandons.
///
/// The client's output goes into `transcript`. Output that ends before every
/// requested response, or a response line cut short, is an error: the missing
/// responses cannot be accounted for.
pub(crate) async fn drive<Exec, Fut>(
    load: &LoadSpec,
    exec: Exec,
    transcript: &mut Transcript,
    mut observe: impl FnMut(&Sample<'_>) -> Flow,
) -> Result<Tally, MeshClientError>
where
    Exec: Fn(u64) -> Fut,
    Fut: Future<Output = Result<ExecOutput, KubeError>>,
{
    let started = Instant::now();
    let mut tally = Tally::new();
    let mut remaining = load.requests;
    let mut execs = 0u64;
    let mut locations = None;
    'rounds: while remaining > 0 {
        let sizes = round_sizes(remaining, load.concurrency);
        let outputs = futures::future::join_all(sizes.iter().map(|&n| exec(n))).await;
        for (requests, output) in sizes.into_iter().zip(outputs) {
            execs += 1;
            let output = output.map_err(MeshClientError::Exec)?;
            transcript.record_exec(execs, requests, &output);
            let mut answered = 0u64;
            for line in output.stdout.lines() {
                let Some(parsed) = parse_line(line, load.response_headers.len()) else {
                    continue;
                };
                let response = parsed?;
                answered += 1;
                remaining -= 1;
                let restored = judges_bodies(load).then(|| restore_line_breaks(&response.body));
                let body = restored.as_deref().unwrap_or(&response.body).as_bytes();
                let source = IdentitySource {
                    body: &body[..body.len().min(MAX_IDENTITY_BODY)],
                    header: Some(response.identity_header.as_bytes()),
                };
                let identity = response
                    .error
                    .is_none()
                    .then(|| extract_identity(&load.identity, &source, &mut locations))
                    .flatten()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                let sample = Sample {
                    status: response.status,
                    identity: identity.as_deref(),
                    latency: response.latency,
                    error: response.error,
                    error_detail: None,
                    envoy_overloaded: response.envoy_overloaded,
                    headers: ResponseHeaders::new(&load.response_headers, &response.headers),
                    body: load.response_body.then_some(body),
                    websocket_replies: &[],
                };
                tally.record(&sample);
                if observe(&sample) == Flow::Stop || remaining == 0 {
                    tally.elapsed = started.elapsed();
                    break 'rounds;
                }
            }
            if answered < requests {
                return Err(MeshClientError::OutputEnded {
                    answered,
                    requests,
                    status: output.status,
                    last_stderr_line: output.stderr.lines().last().map(str::to_owned),
                });
            }
        }
    }
    tally.elapsed = started.elapsed();
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::traffic::RequestTemplate;

    fn load(requests: u64, concurrency: usize, identity: IdentityRule) -> LoadSpec {
        let mut request = RequestTemplate::get(
            "http://backend.istio-test.svc.cluster.local/"
                .parse()
                .unwrap(),
        );
        request
            .headers
            .push(("x-test".into(), "a b; $(rm -rf /)".into()));
        LoadSpec {
            request,
            requests,
            concurrency,
            timeout: Duration::from_millis(2500),
            keep_alive: false,
            identity,
            response_headers: Vec::new(),
            response_body: false,
        }
    }

    fn ok_line(body: &str) -> String {
        format!("meshcheck-response 0 200 0.004512 [] [] {body} ")
    }

    /// A check's response headers become one `%header{..}` field each, read back in
    /// order; a header the response lacks is written empty and read as absent.
    #[test]
    fn response_headers_a_check_reads_come_back_from_curl() {
        let mut spec = load(3, 1, IdentityRule::Body);
        spec.response_headers = vec![
            http::HeaderName::from_static("x-served-by"),
            http::HeaderName::from_static("location"),
        ];
        let args = command(&spec, 3);
        let write_out = &args[args.iter().position(|a| a == "-w").unwrap() + 1];
        assert!(
            write_out.ends_with("[] [%header{x-served-by}] [%header{location}] "),
            "{write_out}"
        );
        let parsed = parse_line("meshcheck-response 0 200 0.001 [] [] [v1] [] body ", 2)
            .unwrap()
            .unwrap();
        assert_eq!(
            parsed.headers,
            [Some(http::HeaderValue::from_static("v1")), None]
        );
        assert_eq!(parsed.body, "body ");
        let cut = parse_line("meshcheck-response 0 200 0.001 [] [] [v1]", 2)
            .unwrap()
            .unwrap_err();
        assert_eq!(cut.problem, "a response header field is cut");
    }

    #[test]
    fn a_response_line_parses_into_its_fields() {
        let parsed = parse_line(&ok_line("hello from backend v1"), 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            parsed,
            ClientResponse {
                status: Some(200),
                latency: Duration::from_micros(4512),
                error: None,
                envoy_overloaded: false,
                identity_header: String::new(),
                headers: Vec::new(),
                body: "hello from backend v1 ".into(),
            }
        );
        let overflow = parse_line(
            "meshcheck-response 0 503 0.001 [true] [v2] upstream connect error ",
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(overflow.status, Some(503));
        assert!(overflow.envoy_overloaded);
        assert_eq!(overflow.identity_header, "v2");
        assert_eq!(overflow.body, "upstream connect error ");
    }

    #[test]
    fn curl_errors_become_failed_samples() {
        let refused = parse_line("meshcheck-response 7 000 0.000120 [] [] ", 0)
            .unwrap()
            .unwrap();
        assert_eq!(refused.status, None);
        assert_eq!(refused.error, Some(ErrorKind::Connect));
        let timeout = parse_line("meshcheck-response 28 000 2.5 [] [] ", 0)
            .unwrap()
            .unwrap();
        assert_eq!(timeout.error, Some(ErrorKind::Timeout));
        let reset = parse_line("meshcheck-response 56 000 0.1 [] []", 0)
            .unwrap()
            .unwrap();
        assert_eq!(reset.error, Some(ErrorKind::ConnectionClosed));
        assert_eq!(reset.body, "");
        let odd = parse_line("meshcheck-response 35 000 0.1 [] [] ", 0)
            .unwrap()
            .unwrap();
        assert_eq!(odd.error, Some(ErrorKind::Protocol));
    }

    #[test]
    fn other_lines_are_not_responses_and_cut_lines_are_errors() {
        assert_eq!(parse_line("sh: curl: not found", 0), None);
        assert_eq!(parse_line("", 0), None);
        assert_eq!(parse_line("hello from backend v1", 0), None);
        for (line, problem) in [
            ("meshcheck-response 0 200", "fewer fields than curl writes"),
            (
                "meshcheck-response 0 200 0.01 [tr",
                "the x-envoy-overloaded field is cut",
            ),
            (
                "meshcheck-response 0 200 0.01 [] [v",
                "the identity header field is cut",
            ),
            (
                "meshcheck-response x 200 0.01 [] [] ",
                "the exit code is not a number",
            ),
            (
                "meshcheck-response 0 2x0 0.01 [] [] ",
                "the status is not a number",
            ),
            (
                "meshcheck-response 0 200 -1 [] [] ",
                "the time is not a number of seconds",
            ),
        ] {
            let err = parse_line(line, 0).unwrap().unwrap_err();
            assert_eq!(err.problem, problem, "{line}");
        }
    }

    #[test]
    fn the_command_passes_every_value_as_an_argument() {
        let command = command(&load(5, 1, IdentityRule::Header("x-backend".into())), 5);
        assert_eq!(command[..2], ["sh", "-c"]);
        assert!(!command[2].contains("backend.istio-test"), "{}", command[2]);
        assert_eq!(command[4], "5");
        assert_eq!(command[5..7], ["--max-time", "2.500"]);
        assert_eq!(
            command[8],
            "meshcheck-response %{exitcode} %{http_code} %{time_total} [%header{x-envoy-overloaded}] [%header{x-backend}] "
        );
        assert_eq!(command[9..11], ["-H", "x-test: a b; $(rm -rf /)"]);
        assert_eq!(
            command.last().unwrap(),
            "http://backend.istio-test.svc.cluster.local/"
        );
    }

    #[test]
    fn http2_asks_curl_for_prior_knowledge() {
        let mut spec = load(1, 1, IdentityRule::Body);
        let flag = "--http2-prior-knowledge".to_owned();
        assert!(!command(&spec, 1).contains(&flag));
        spec.request.version = HttpVersion::Http2;
        let command = command(&spec, 1);
        assert!(command.contains(&flag), "{command:?}");
        // The URL stays the last argument, as the shell loop passes it.
        assert_eq!(
            command.last().unwrap(),
            "http://backend.istio-test.svc.cluster.local/"
        );
    }

    #[test]
    fn the_client_is_a_pinned_sleeping_deployment() {
        let manifests = client_manifests("istio-test").unwrap();
        assert_eq!(manifests.len(), 1);
        let json = manifests[0].to_json();
        assert_eq!(
            manifests[0].key().to_string(),
            "Deployment istio-test/meshcheck-mesh-client"
        );
        let container = &json["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], CLIENT_IMAGE);
        assert!(
            CLIENT_IMAGE
                .rsplit_once(':')
                .is_some_and(|(_, tag)| tag != "latest")
        );
        assert_eq!(container["command"][0], "sleep");
    }

    #[test]
    fn rounds_cover_the_requests_in_parallel_execs_of_bounded_size() {
        assert_eq!(round_sizes(3, 1), [3]);
        assert_eq!(round_sizes(1000, 1), [100]);
        assert_eq!(round_sizes(10, 4), [3, 3, 3, 1]);
        assert_eq!(round_sizes(1000, 4), [100, 100, 100, 100]);
        assert_eq!(round_sizes(2, 8), [1, 1]);
    }

    /// A client that answers `v1` for odd and `v2` for even requests, counting execs.
    fn fake_output(first: u64, requests: u64) -> ExecOutput {
        let mut stdout = String::from("some sidecar noise\n");
        for i in first..first + requests {
            let body = if i % 2 == 1 {
                "hello from backend v1"
            } else {
                "hello from backend v2"
            };
            stdout.push_str(&ok_line(body));
            stdout.push('\n');
        }
        ExecOutput {
            stdout,
            stderr: String::new(),
            status: 0,
        }
    }

    #[tokio::test]
    async fn batches_stop_when_observe_decides() {
        let calls = Mutex::new(Vec::new());
        let exec = |n: u64| {
            let mut calls = calls.lock().unwrap();
            let first: u64 = calls.iter().sum::<u64>() + 1;
            calls.push(n);
            std::future::ready(Ok(fake_output(first, n)))
        };
        let mut transcript = Transcript::default();
        let mut seen = Vec::new();
        let tally = drive(
            &load(1000, 1, IdentityRule::Body),
            exec,
            &mut transcript,
            |s| {
                seen.push(s.identity.unwrap().to_owned());
                if seen.len() == 150 {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
        )
        .await
        .unwrap();
        // Two execs of 100: the decision came in the second, no third was started.
        assert_eq!(*calls.lock().unwrap(), [100, 100]);
        assert_eq!(tally.requests, 150);
        assert_eq!(tally.identities["hello from backend v1"], 75);
        assert_eq!(tally.identities["hello from backend v2"], 75);
        assert_eq!(tally.status_codes[&200], 150);
        assert!(
            transcript
                .text()
                .starts_with("# exec 1: 100 requests, exit status 0\nsome sidecar noise\n")
        );
    }

    #[tokio::test]
    async fn batches_run_to_the_cap_without_a_decision() {
        let exec = |n: u64| std::future::ready(Ok(fake_output(1, n)));
        let mut transcript = Transcript::default();
        let tally = drive(
            &load(250, 2, IdentityRule::Body),
            exec,
            &mut transcript,
            |_| Flow::Continue,
        )
        .await
        .unwrap();
        assert_eq!(tally.requests, 250);
        assert!(transcript.text().contains("lines left out"));
    }

    #[tokio::test]
    async fn truncated_output_is_an_error_naming_the_shortfall() {
        let exec = |n: u64| {
            let mut output = fake_output(1, n - 2);
            output.status = 137;
            output.stderr = "command terminated".into();
            std::future::ready(Ok(output))
        };
        let mut transcript = Transcript::default();
        let mut observed = 0;
        let err = drive(
            &load(10, 1, IdentityRule::Body),
            exec,
            &mut transcript,
            |_| {
                observed += 1;
                Flow::Continue
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the mesh client's output ended after 8 of 10 responses (exit status 137: command terminated)"
        );
        assert_eq!(observed, 8);
        assert!(transcript.text().contains("stderr: command terminated"));

        let cut = |_: u64| {
            std::future::ready(Ok(ExecOutput {
                stdout: "meshcheck-response 0 200 0.0".into(),
                ..ExecOutput::default()
            }))
        };
        let err = drive(
            &load(1, 1, IdentityRule::Body),
            cut,
            &mut Transcript::default(),
            |_| Flow::Continue,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("fewer fields than curl writes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn failed_exec_and_failed_requests_are_told_apart() {
        let broken = |_: u64| {
            std::future::ready(Err::<ExecOutput, _>(KubeError::NoNamespace {
                object: "pod gone".to_owned(),
            }))
        };
        let err = drive(
            &load(5, 1, IdentityRule::Body),
            broken,
            &mut Transcript::default(),
            |_| Flow::Continue,
        )
        .await
        .unwrap_err();
        let MeshClientError::Exec(exec) = err else {
            panic!("expected the exec failure itself, got {err}");
        };
        assert_eq!(exec.to_string(), "pod gone needs a namespace");

        let refused = |n: u64| {
            std::future::ready(Ok(ExecOutput {
                stdout: "meshcheck-response 7 000 0.001 [] [] \n".repeat(n as usize),
                ..ExecOutput::default()
            }))
        };
        let mut errors = 0;
        let tally = drive(
            &load(3, 1, IdentityRule::Body),
            refused,
            &mut Transcript::default(),
            |s| {
                assert_eq!(s.identity, None);
                errors += u32::from(s.error == Some(ErrorKind::Connect));
                Flow::Continue
            },
        )
        .await
        .unwrap();
        assert_eq!(errors, 3);
        assert_eq!(tally.errors[&ErrorKind::Connect], 3);
        assert!(tally.identities.is_empty());
    }

    #[tokio::test]
    async fn header_identities_come_from_the_bracketed_field() {
        let exec = |n: u64| {
            std::future::ready(Ok(ExecOutput {
                stdout: "meshcheck-response 0 200 0.001 [] [pod-a] body\n".repeat(n as usize),
                ..ExecOutput::default()
            }))
        };
        let tally = drive(
            &load(2, 1, IdentityRule::Header("x-pod".into())),
            exec,
            &mut Transcript::default(),
            |_| Flow::Continue,
        )
        .await
        .unwrap();
        assert_eq!(tally.identities["pod-a"], 2);
    }

    #[tokio::test]
    async fn bodies_reach_a_check_that_asks_and_echo_basic_names_the_deployment() {
        let json = r#"{ "path": "/", "host": "h", "method": "GET", "proto": "HTTP/1.1", "namespace": "infra", "pod": "backend-v1-7d9b8f5c6-x2x4z" } "#;
        let stdout = format!("meshcheck-response 0 200 0.001 [] [] {json}\n");
        let exec = |n: u64| {
            std::future::ready(Ok(ExecOutput {
                stdout: stdout.repeat(n as usize),
                ..ExecOutput::default()
            }))
        };
        let mut spec = load(2, 1, IdentityRule::EchoBasic);
        spec.response_body = true;
        let args = command(&spec, 2);
        assert!(
            args[2].contains(&format!("head -c {JUDGED_BODY_BYTES} ")),
            "{}",
            args[2]
        );
        let mut seen = Vec::new();
        let tally = drive(&spec, exec, &mut Transcript::default(), |sample| {
            seen.push(sample.body.map(<[u8]>::to_vec));
            Flow::Continue
        })
        .await
        .unwrap();
        assert_eq!(tally.identities["infra/backend-v1"], 2);
        assert_eq!(
            seen,
            [
                Some(json.as_bytes().to_vec()),
                Some(json.as_bytes().to_vec())
            ]
        );

        assert!(args[2].contains(r"tr '\r\n' '\002\001'"), "{}", args[2]);
        assert_eq!(restore_line_breaks("a\u{2}\u{1}b\u{1}"), "a\r\nb\n");

        // A load that judges no body gets none, and prints the short prefix.
        let plain = load(2, 1, IdentityRule::Body);
        assert!(command(&plain, 2)[2].contains(&format!("head -c {BODY_BYTES} ")));
        assert!(command(&plain, 2)[2].contains("tr '\\r\\n' '  '"));
        let mut bodies = Vec::new();
        drive(&plain, exec, &mut Transcript::default(), |sample| {
            bodies.push(sample.body.is_some());
            Flow::Continue
        })
        .await
        .unwrap();
        assert_eq!(bodies, [false, false]);
    }
}
