//! `expect.request`: every request reached the backend as expected (after rewrites and
//! header modifiers), as echo-basic's JSON body (or echo-advanced's text) echoes it.
//!
//! Upstream's comparison (kubernetes-sigs/gateway-api `conformance/utils/http/http.go`,
//! `CompareRequest`): the host compares exactly when given, the path exactly (echo-basic
//! reports the request target; the query is not part of the path compared here), the
//! method exactly, headers as `headers.rs` says.

use std::borrow::Cow;

use super::LoadContext;
use super::each_response::{self, EachResponse};
use super::echo_basic::{reachable_services, some_backend_echoes};
use super::headers::{HeaderExpectations, load_headers};
use super::response::{Check, Judge, JudgeError};
use crate::echo::EchoedRequest;
use crate::manifest::SourceLocation;
use crate::suite::error::SuiteError;
use crate::suite::model::ReceivedRequestSpec;
use crate::traffic::Sample;

/// The request every backend must have received; `None` parts are not checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedRequest {
    /// Without the query string.
    pub path: Option<String>,
    pub host: Option<String>,
    pub method: Option<http::Method>,
    pub headers: HeaderExpectations,
}

impl ExpectedRequest {
    /// `at` locates a field under `expect.request` (`""` for the key itself).
    pub(super) fn load(
        spec: &ReceivedRequestSpec,
        context: &LoadContext<'_>,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Self, SuiteError> {
        let invalid = |field: &str, message: String| SuiteError::Invalid {
            location: at(field),
            message,
        };
        if let Some(path) = &spec.path {
            if !path.starts_with('/') {
                return Err(invalid(
                    "path",
                    format!("`{path}` is not a path: it must start with `/`"),
                ));
            }
            if path.contains('?') {
                return Err(invalid(
                    "path",
                    format!("`{path}` has a query string: the path compared excludes the query"),
                ));
            }
        }
        if spec.host.as_deref() == Some("") {
            return Err(invalid("host", "the host must not be empty".into()));
        }
        let method = spec
            .method
            .as_deref()
            .map(|m| {
                http::Method::from_bytes(m.as_bytes())
                    .map_err(|_| invalid("method", format!("invalid method `{m}`")))
            })
            .transpose()?;
        let headers = load_headers(&spec.headers, &spec.absent_headers, at)?;
        if spec.path.is_none() && spec.host.is_none() && method.is_none() && headers.is_empty() {
            return Err(invalid(
                "",
                "give at least one of `path`, `host`, `method`, `headers` or `absentHeaders`"
                    .into(),
            ));
        }
        if !some_backend_echoes(context.fixtures, context.entry) {
            let reachable: Vec<String> = reachable_services(context.fixtures, context.entry)
                .iter()
                .map(ToString::to_string)
                .collect();
            return Err(invalid(
                "",
                format!(
                    "no backend of {} runs echo-basic or echo-advanced ({}): `request` reads what the backend received from their echo of the request",
                    context.entry,
                    if reachable.is_empty() {
                        "no route attaches to it".to_string()
                    } else {
                        format!("it reaches {}", reachable.join(", "))
                    }
                ),
            ));
        }
        Ok(ExpectedRequest {
            path: spec.path.clone(),
            host: spec.host.clone(),
            method,
            headers,
        })
    }
}

impl Check for ExpectedRequest {
    fn readiness_rank(&self) -> u8 {
        1
    }

    fn ready(&self, sample: &Sample<'_>) -> bool {
        self.failure(sample).is_none()
    }

    fn response_body(&self) -> bool {
        true
    }

    fn unready(&self, sample: &Sample<'_>) -> Option<String> {
        self.failure(sample)
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        each_response::judge(self)
    }
}

impl EachResponse for ExpectedRequest {
    fn failure(&self, sample: &Sample<'_>) -> Option<String> {
        let echoed = sample
            .body
            .and_then(|body| EchoedRequest::parse_body(body).ok());
        let Some(echoed) = echoed else {
            return Some(format!(
                "a {} whose body is no echo of the request (echo-basic's JSON or echo-advanced's text), expected one saying what the backend received",
                sample
                    .status
                    .map_or("response".to_string(), |s| s.to_string())
            ));
        };
        let differs = |what: &str, expected: &str, seen: &str| {
            (expected != seen)
                .then(|| format!("request {what}: expected {expected:?}, backend saw {seen:?}"))
        };
        if let Some(failure) = self
            .path
            .as_deref()
            .and_then(|path| differs("path", path, echoed.path_without_query()))
        {
            return Some(failure);
        }
        if let Some(failure) = self
            .host
            .as_deref()
            .and_then(|host| differs("host", host, &echoed.host))
        {
            return Some(failure);
        }
        if let Some(failure) = self
            .method
            .as_ref()
            .and_then(|method| differs("method", method.as_str(), &echoed.method))
        {
            return Some(failure);
        }
        self.headers
            .mismatch("request header", "backend saw", |name| {
                echoed
                    .header(name.as_str())
                    .map(|values| Cow::Owned(values.join(",")))
            })
    }

    fn pass_attribute(&self) -> String {
        "each request reached the backend as expected".into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::suite::expect::response::ResponseVerdict;

    fn expected() -> ExpectedRequest {
        let headers = [("X-Header-Set".to_string(), "set-value".to_string())]
            .into_iter()
            .collect();
        let at = |_: &str| SourceLocation::file_start(std::path::Path::new("s.yaml"));
        ExpectedRequest {
            path: Some("/prefix/foo".into()),
            host: Some("example.com".into()),
            method: Some(http::Method::GET),
            headers: load_headers(&headers, &["X-Header-Remove".to_string()], &at).unwrap(),
        }
    }

    fn echoed(path: &str, host: &str, headers: &str) -> String {
        format!(
            r#"{{"path":"{path}","host":"{host}","method":"GET","proto":"HTTP/1.1","headers":{{{headers}}},"namespace":"infra","pod":"backend-v1-5f7c9-abcde"}}"#
        )
    }

    fn sample(body: &str) -> Sample<'_> {
        Sample {
            status: Some(200),
            identity: None,
            latency: Duration::ZERO,
            error: None,
            error_detail: None,
            envoy_overloaded: false,
            headers: Default::default(),
            body: Some(body.as_bytes()),
            websocket_replies: &[],
        }
    }

    fn first_failure(bodies: &[String]) -> Vec<String> {
        let mut judge = expected().judge().unwrap();
        for (i, body) in bodies.iter().enumerate() {
            judge.observe(i as u64 + 1, &sample(body));
        }
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        if verdict.passed() {
            verdict.attributes
        } else {
            verdict.failures
        }
    }

    #[test]
    fn the_echoed_request_must_match_every_given_part() {
        let good = echoed(
            "/prefix/foo?query=1",
            "example.com",
            r#""X-Header-Set":["set-value"]"#,
        );
        assert!(expected().ready(&sample(&good)));
        assert_eq!(
            first_failure(&[good.clone(), good.clone()]),
            ["each request reached the backend as expected"]
        );
        let other_value = echoed("/prefix/foo", "example.com", r#""X-Header-Set":["other"]"#);
        assert_eq!(
            first_failure(&[
                good.clone(),
                good.clone(),
                other_value,
                good.clone(),
                good.clone()
            ]),
            [
                r#"request header x-header-set: expected "set-value", backend saw "other" (response 3 of 5)"#
            ]
        );
        let removed_not = echoed(
            "/prefix/foo",
            "example.com",
            r#""X-Header-Set":["set-value"],"X-Header-Remove":["still"]"#,
        );
        assert_eq!(
            first_failure(&[removed_not]),
            [
                r#"request header x-header-remove: expected absent, backend saw "still" (response 1 of 1)"#
            ]
        );
        let path = echoed(
            "/prefix/foo/",
            "example.com",
            r#""X-Header-Set":["set-value"]"#,
        );
        assert_eq!(
            first_failure(&[path]),
            [
                r#"request path: expected "/prefix/foo", backend saw "/prefix/foo/" (response 1 of 1)"#
            ]
        );
        let host = echoed(
            "/prefix/foo",
            "example.com:80",
            r#""X-Header-Set":["set-value"]"#,
        );
        assert_eq!(
            first_failure(&[host]),
            [
                r#"request host: expected "example.com", backend saw "example.com:80" (response 1 of 1)"#
            ]
        );
        let listed = echoed(
            "/prefix/foo",
            "example.com",
            r#""X-Header-Set":["set-value","again"]"#,
        );
        assert_eq!(
            first_failure(&[listed]),
            [
                r#"request header x-header-set: expected "set-value", backend saw "set-value,again" (response 1 of 1)"#
            ]
        );
        assert_eq!(
            first_failure(&["hello from backend v1".to_string()]),
            [
                "a 200 whose body is no echo of the request (echo-basic's JSON or echo-advanced's text), expected one saying what the backend received (response 1 of 1)"
            ]
        );
    }
}
