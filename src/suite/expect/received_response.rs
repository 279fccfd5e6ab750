//! `expect.response`: every response the client received carries these headers (and
//! not those), and its body contains a text.
//!
//! Upstream compares response headers like request headers (kubernetes-sigs/gateway-api
//! `conformance/utils/http/http.go`, `CompareRequest`: `expected.Response.Headers` and
//! `AbsentHeaders`); see `headers.rs`. The body check is ours.

use std::borrow::Cow;

use super::each_response::{self, EachResponse};
use super::headers::{HeaderExpectations, load_headers};
use super::response::{Check, Judge, JudgeError};
use crate::manifest::SourceLocation;
use crate::suite::error::SuiteError;
use crate::suite::model::ReceivedResponseSpec;
use crate::traffic::{MAX_IDENTITY_BODY, Sample};

/// What every response must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedResponse {
    pub headers: HeaderExpectations,
    pub body_contains: Option<String>,
}

impl ExpectedResponse {
    /// `at` locates a field under `expect.response` (`""` for the key itself).
    pub(super) fn load(
        spec: &ReceivedResponseSpec,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Self, SuiteError> {
        let invalid = |field: &str, message: String| SuiteError::Invalid {
            location: at(field),
            message,
        };
        let headers = load_headers(&spec.headers, &spec.absent_headers, at)?;
        match spec.body_contains.as_deref() {
            Some("") => {
                return Err(invalid(
                    "bodyContains",
                    "an empty text is in every body: give the text to look for".into(),
                ));
            }
            Some(text) if text.len() > MAX_IDENTITY_BODY => {
                return Err(invalid(
                    "bodyContains",
                    format!(
                        "the text is {} bytes, longer than the {MAX_IDENTITY_BODY} bytes of a body that are kept",
                        text.len()
                    ),
                ));
            }
            _ => {}
        }
        if headers.is_empty() && spec.body_contains.is_none() {
            return Err(invalid(
                "",
                "give at least one of `headers`, `absentHeaders` or `bodyContains`".into(),
            ));
        }
        Ok(ExpectedResponse {
            headers,
            body_contains: spec.body_contains.clone(),
        })
    }
}

impl Check for ExpectedResponse {
    fn readiness_rank(&self) -> u8 {
        1
    }

    fn ready(&self, sample: &Sample<'_>) -> bool {
        self.failure(sample).is_none()
    }

    fn response_headers(&self) -> Vec<http::HeaderName> {
        self.headers.names().cloned().collect()
    }

    fn response_body(&self) -> bool {
        self.body_contains.is_some()
    }

    fn unready(&self, sample: &Sample<'_>) -> Option<String> {
        self.failure(sample)
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        each_response::judge(self)
    }
}

impl EachResponse for ExpectedResponse {
    fn failure(&self, sample: &Sample<'_>) -> Option<String> {
        if let Some(failure) = self.headers.mismatch("response header", "got", |name| {
            sample
                .headers
                .get(name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()))
        }) {
            return Some(failure);
        }
        let needle = self.body_contains.as_deref()?;
        let body = sample.body.unwrap_or_default();
        if contains(body, needle.as_bytes()) {
            return None;
        }
        Some(format!(
            "response body: expected it to contain {needle:?}, got {}",
            excerpt(body)
        ))
    }

    fn pass_attribute(&self) -> String {
        match (&self.body_contains, self.headers.is_empty()) {
            (Some(text), true) => format!("every body contains {text:?}"),
            (Some(text), false) => {
                format!("every response with the expected headers and a body containing {text:?}")
            }
            (None, _) => "every response with the expected headers".into(),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The start of a body, for a failure message.
fn excerpt(body: &[u8]) -> String {
    const SHOWN: usize = 80;
    if body.is_empty() {
        return "an empty body".into();
    }
    let text: Cow<'_, str> = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]);
    if body.len() > SHOWN {
        format!("{text:?}...")
    } else {
        format!("{text:?}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::suite::expect::response::ResponseVerdict;
    use crate::traffic::ResponseHeaders;

    fn load(headers: &[(&str, &str)], absent: &[&str], body: Option<&str>) -> ExpectedResponse {
        let spec = ReceivedResponseSpec {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            absent_headers: absent.iter().map(|s| s.to_string()).collect(),
            body_contains: body.map(str::to_string),
        };
        let at = |_: &str| SourceLocation::file_start(std::path::Path::new("s.yaml"));
        ExpectedResponse::load(&spec, &at).unwrap()
    }

    fn verdict(check: &ExpectedResponse, samples: &[Sample<'_>]) -> ResponseVerdict {
        let mut judge = check.judge().unwrap();
        for (i, sample) in samples.iter().enumerate() {
            judge.observe(i as u64 + 1, sample);
        }
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        verdict
    }

    fn sample<'a>(
        names: &'a [HeaderName],
        values: &'a [Option<HeaderValue>],
        body: Option<&'a [u8]>,
    ) -> Sample<'a> {
        Sample {
            status: Some(200),
            identity: None,
            latency: Duration::ZERO,
            error: None,
            error_detail: None,
            envoy_overloaded: false,
            headers: ResponseHeaders::new(names, values),
            body,
            websocket_replies: &[],
        }
    }

    #[test]
    fn headers_present_and_absent() {
        let check = load(&[("X-Header-Set", "set-value")], &["X-Header-Remove"], None);
        let names = check.response_headers();
        assert_eq!(names.len(), 2);
        assert!(!check.response_body());
        let good = [Some(HeaderValue::from_static("set-value")), None];
        let other = [Some(HeaderValue::from_static("other")), None];
        let kept = [
            Some(HeaderValue::from_static("set-value")),
            Some(HeaderValue::from_static("x")),
        ];
        assert!(check.ready(&sample(&names, &good, None)));
        let got = verdict(
            &check,
            &[sample(&names, &good, None), sample(&names, &other, None)],
        );
        assert_eq!(
            got.failures,
            [
                r#"response header x-header-set: expected "set-value", got "other" (response 2 of 2)"#
            ]
        );
        let got = verdict(&check, &[sample(&names, &kept, None)]);
        assert_eq!(
            got.failures,
            [r#"response header x-header-remove: expected absent, got "x" (response 1 of 1)"#]
        );
        let got = verdict(&check, &[sample(&names, &good, None)]);
        assert_eq!(got.attributes, ["every response with the expected headers"]);
    }

    #[test]
    fn the_body_must_contain_the_text() {
        let check = load(&[], &[], Some("needle"));
        assert!(check.response_body());
        let got = verdict(&check, &[sample(&[], &[], Some(b"hay needle hay"))]);
        assert_eq!(got.attributes, [r#"every body contains "needle""#]);
        let got = verdict(&check, &[sample(&[], &[], Some(b"hay"))]);
        assert_eq!(
            got.failures,
            [r#"response body: expected it to contain "needle", got "hay" (response 1 of 1)"#]
        );
        let got = verdict(&check, &[sample(&[], &[], Some(b""))]);
        assert_eq!(
            got.failures,
            [
                r#"response body: expected it to contain "needle", got an empty body (response 1 of 1)"#
            ]
        );
    }

    #[test]
    fn an_empty_expectation_or_needle_is_refused() {
        let at = |f: &str| SourceLocation::file_start(std::path::Path::new(f));
        let empty = ExpectedResponse::load(&ReceivedResponseSpec::default(), &at)
            .unwrap_err()
            .to_string();
        assert!(empty.contains("give at least one of"), "{empty}");
        let spec = ReceivedResponseSpec {
            body_contains: Some(String::new()),
            ..ReceivedResponseSpec::default()
        };
        let needle = ExpectedResponse::load(&spec, &at).unwrap_err().to_string();
        assert!(needle.starts_with("bodyContains:"), "{needle}");
    }
}
