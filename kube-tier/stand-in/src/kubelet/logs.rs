//! Container logs as the kubelet keeps and serves them: every line a pod's process
//! writes, stamped when the stand-in reads it, answered on the node's kubelet port at
//! `/containerLogs/{namespace}/{pod}/{container}`, which the API server's `pods/log`
//! proxies to (kubernetes `pkg/registry/core/pod/strategy.go`, `LogLocation`). The
//! query options are the kubelet's (`pkg/kubelet/kuberuntime/logs/logs.go`): the last
//! `tailLines` lines, of those the ones stamped at or after `sinceTime` (or
//! `sinceSeconds` ago), each prefixed with its RFC 3339 stamp when `timestamps`,
//! at most `limitBytes`. `follow` is answered with what there is so far: no reader
//! here needs a stream. A pod's logs go when the pod does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use jiff::Timestamp;

/// What the kubelet rotates a container's log at by default
/// (`containerLogMaxSize: 10Mi`): older lines are dropped past it.
const MAX_BYTES_PER_CONTAINER: usize = 10 * 1024 * 1024;

/// namespace, pod, container.
pub type ContainerKey = (String, String, String);

#[derive(Default)]
struct ContainerLog {
    lines: Vec<(Timestamp, String)>,
    bytes: usize,
}

/// Every container's log on this node.
#[derive(Clone, Default)]
pub struct ContainerLogs {
    logs: Arc<Mutex<HashMap<ContainerKey, ContainerLog>>>,
}

impl ContainerLogs {
    /// Starts an empty log for a container that runs (or is stood in for): its log
    /// can be read from now on.
    pub fn open(&self, key: ContainerKey) {
        self.lock().entry(key).or_default();
    }

    /// What a container's process writes to its log.
    pub fn writer(&self, key: ContainerKey) -> impl Fn(&str) + Send + Sync + 'static {
        let logs = self.clone();
        move |line: &str| logs.append(&key, line)
    }

    fn append(&self, key: &ContainerKey, line: &str) {
        let mut logs = self.lock();
        let log = logs.entry(key.clone()).or_default();
        log.bytes += line.len() + 1;
        log.lines.push((Timestamp::now(), line.to_owned()));
        if log.bytes > MAX_BYTES_PER_CONTAINER {
            let mut dropped = 0;
            let mut freed = 0;
            for (_, old) in &log.lines {
                if log.bytes - freed <= MAX_BYTES_PER_CONTAINER {
                    break;
                }
                freed += old.len() + 1;
                dropped += 1;
            }
            log.lines.drain(..dropped);
            log.bytes -= freed;
        }
    }

    /// Forgets the logs of a pod that is gone.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        self.lock()
            .retain(|(ns, name, _), _| !(ns == namespace && name == pod));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerKey, ContainerLog>> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The log of `key` as the query asks for it, or why not.
    fn read(&self, key: &ContainerKey, query: &LogQuery) -> Result<Vec<u8>, (StatusCode, String)> {
        let logs = self.lock();
        let Some(log) = logs.get(key) else {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "container \"{}\" in pod \"{}\" is waiting to start: the kube tier's kubelet stand-in runs no process for it",
                    key.2, key.1
                ),
            ));
        };
        if query.previous {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "previous terminated container \"{}\" in pod \"{}\" not found",
                    key.2, key.1
                ),
            ));
        }
        let from = query
            .tail_lines
            .map_or(0, |n| log.lines.len().saturating_sub(n));
        // Bytes: a limit may cut a line inside a character, as the kubelet's does.
        let mut text: Vec<u8> = Vec::new();
        for (stamp, line) in &log.lines[from..] {
            if query.since.is_some_and(|since| *stamp < since) {
                continue;
            }
            let next = if query.timestamps {
                // jiff writes RFC 3339 with the fraction trimmed of trailing zeros,
                // as Go's time.RFC3339Nano, the kubelet's stamp.
                format!("{stamp} {line}\n")
            } else {
                format!("{line}\n")
            };
            if let Some(limit) = query.limit_bytes
                && text.len() + next.len() > limit
            {
                text.extend_from_slice(&next.as_bytes()[..limit - text.len()]);
                break;
            }
            text.extend_from_slice(next.as_bytes());
        }
        Ok(text)
    }

    /// Answers one request to the kubelet port.
    pub async fn answer(
        self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let reply = |status: StatusCode, body: Vec<u8>| {
            Ok(Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(Full::new(Bytes::from(body)))
                .unwrap_or_default())
        };
        let path = request.uri().path();
        let Some(key) = container_key(path) else {
            return reply(
                StatusCode::NOT_FOUND,
                format!("the kube tier's kubelet stand-in serves /containerLogs only, not {path}")
                    .into_bytes(),
            );
        };
        let query = match LogQuery::parse(request.uri().query().unwrap_or_default()) {
            Ok(query) => query,
            Err(why) => return reply(StatusCode::BAD_REQUEST, why.into_bytes()),
        };
        match self.read(&key, &query) {
            Ok(text) => reply(StatusCode::OK, text),
            Err((status, why)) => reply(status, why.into_bytes()),
        }
    }
}

/// `/containerLogs/{namespace}/{pod}/{container}`.
fn container_key(path: &str) -> Option<ContainerKey> {
    let rest = path.strip_prefix("/containerLogs/")?;
    let mut parts = rest.split('/');
    let (namespace, pod, container) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [namespace, pod, container].iter().any(|p| p.is_empty()) {
        return None;
    }
    Some((namespace.into(), pod.into(), container.into()))
}

/// The kubelet's log options (`PodLogOptions` as query parameters).
#[derive(Debug, Default, PartialEq)]
struct LogQuery {
    timestamps: bool,
    previous: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
    since: Option<Timestamp>,
}

impl LogQuery {
    fn parse(query: &str) -> Result<LogQuery, String> {
        let mut parsed = LogQuery::default();
        // Percent-decoded: `sinceTime` arrives as `2026-12-02T05%3A01%3A02Z`.
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let number = |what: &str| {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{what}={value}: not a non-negative integer"))
            };
            match key.as_ref() {
                "timestamps" => parsed.timestamps = value == "true",
                "previous" => parsed.previous = value == "true",
                "tailLines" => parsed.tail_lines = Some(number("tailLines")?),
                "limitBytes" => parsed.limit_bytes = Some(number("limitBytes")?),
                "sinceTime" => {
                    parsed.since = Some(
                        value
                            .parse::<Timestamp>()
                            .map_err(|e| format!("sinceTime={value}: {e}"))?,
                    );
                }
                "sinceSeconds" => {
                    let seconds = number("sinceSeconds")?;
                    let ago =
                        jiff::SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(i64::MAX));
                    parsed.since = Timestamp::now().checked_sub(ago).ok();
                }
                // follow: answered with what there is (see the module text); the rest
                // (insecureSkipTLSVerifyBackend, stream) concern the API server.
                _ => {}
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(container: &str) -> ContainerKey {
        ("ns".into(), "pod".into(), container.into())
    }

    fn logs_with(lines: &[&str]) -> ContainerLogs {
        let logs = ContainerLogs::default();
        logs.open(key("app"));
        let write = logs.writer(key("app"));
        for line in lines {
            write(line);
        }
        logs
    }

    #[test]
    fn the_path_names_namespace_pod_and_container() {
        assert_eq!(container_key("/containerLogs/ns/pod/app"), Some(key("app")));
        assert_eq!(container_key("/containerLogs/ns/pod"), None);
        assert_eq!(container_key("/containerLogs/ns/pod/app/x"), None);
        assert_eq!(container_key("/exec/ns/pod/app"), None);
    }

    #[test]
    fn tail_lines_then_since_time_then_limit_bytes() {
        let logs = logs_with(&["one", "two", "three"]);
        let read = |query: &str| {
            String::from_utf8(
                logs.read(&key("app"), &LogQuery::parse(query).unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(read(""), "one\ntwo\nthree\n");
        assert_eq!(read("tailLines=2"), "two\nthree\n");
        assert_eq!(read("tailLines=0"), "");
        assert_eq!(read("limitBytes=6"), "one\ntw");
        // A limit inside a character cuts it, without a panic.
        let wide = logs_with(&["ü"]);
        let cut = wide.read(&key("app"), &LogQuery::parse("limitBytes=1").unwrap());
        assert_eq!(cut.unwrap(), "ü".as_bytes()[..1]);
        let stamped = read("timestamps=true&tailLines=1");
        let (stamp, line) = stamped.trim_end().split_once(' ').unwrap();
        assert_eq!(line, "three");
        let stamp: Timestamp = stamp.parse().unwrap();
        // sinceTime is inclusive, percent-encoded as the API server sends it.
        let since = stamp.to_string().replace(':', "%3A");
        assert_eq!(read(&format!("sinceTime={since}")), "three\n");
        assert_eq!(read("sinceSeconds=3600"), "one\ntwo\nthree\n");
    }

    #[test]
    fn a_container_without_a_log_and_a_previous_one_are_refused_as_the_kubelet_does() {
        let logs = logs_with(&["one"]);
        let (status, why) = logs.read(&key("other"), &LogQuery::default()).unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(why.contains("is waiting to start"), "{why}");
        let previous = LogQuery::parse("previous=true").unwrap();
        assert!(logs.read(&key("app"), &previous).is_err());
        assert!(LogQuery::parse("tailLines=-1").is_err());
        logs.remove_pod("ns", "pod");
        assert!(logs.read(&key("app"), &LogQuery::default()).is_err());
    }

    #[test]
    fn a_log_past_its_size_drops_its_oldest_lines() {
        let logs = logs_with(&[]);
        let line = "x".repeat(1024 * 1024 - 1);
        let write = logs.writer(key("app"));
        for _ in 0..12 {
            write(&line);
        }
        write("last");
        let text = logs.read(&key("app"), &LogQuery::default()).unwrap();
        assert!(text.len() <= MAX_BYTES_PER_CONTAINER, "{}", text.len());
        assert!(text.ends_with(b"last\n"));
    }
}
