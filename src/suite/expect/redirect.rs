//! `expect.redirect`: every response is a redirect (a 3xx with a `Location`) whose
//! given parts match.
//!
//! The Location is parsed with a URL parser and, when relative, resolved against the
//! request URL as a client following it would (RFC 9110 section 10.2.2). Upstream
//! (kubernetes-sigs/gateway-api `conformance/utils/http/http.go`, `CompareRequest` and
//! `setRedirectRequestDefaults`) compares hostname, port, scheme and path; a port not
//! expected must be absent or the scheme's default (80 for http, 443 for https), as
//! here. Unlike upstream, a scheme or path not given is not checked (upstream compares
//! them with the request's): give them to pin them.

use url::Url;

use super::each_response::{self, EachResponse};
use super::response::{Check, Judge, JudgeError, describe_response};
use crate::manifest::SourceLocation;
use crate::suite::error::SuiteError;
use crate::suite::model::RedirectSpec;
use crate::traffic::Sample;

/// The redirect every response must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedRedirect {
    /// Lowercase.
    pub scheme: Option<String>,
    /// Lowercase, as the URL parser keeps hosts.
    pub host: Option<String>,
    /// `None`: the Location names no port, or its scheme's default.
    pub port: Option<u16>,
    pub path: Option<String>,
    /// What a relative Location is resolved against: the case's request URL.
    pub base: Url,
}

impl ExpectedRedirect {
    /// `at` locates a field under `expect.redirect`; `base` is the request URL.
    pub(super) fn load(
        spec: &RedirectSpec,
        base: &Url,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Self, SuiteError> {
        let invalid = |field: &str, message: String| SuiteError::Invalid {
            location: at(field),
            message,
        };
        if let Some(scheme) = &spec.scheme {
            let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !valid {
                return Err(invalid("scheme", format!("`{scheme}` is not a URL scheme")));
            }
        }
        let host = spec
            .host
            .as_deref()
            .map(|host| {
                url::Host::parse(host)
                    .map(|parsed| parsed.to_string())
                    .map_err(|err| invalid("host", format!("`{host}` is not a host name: {err}")))
            })
            .transpose()?;
        if spec.port == Some(0) {
            return Err(invalid("port", "0 is not a port".into()));
        }
        if let Some(path) = &spec.path
            && !path.starts_with('/')
        {
            return Err(invalid(
                "path",
                format!("`{path}` is not a path: it must start with `/`"),
            ));
        }
        Ok(ExpectedRedirect {
            scheme: spec.scheme.as_deref().map(str::to_ascii_lowercase),
            host,
            port: spec.port,
            path: spec.path.clone(),
            base: base.clone(),
        })
    }

    /// Why a resolved Location is not the expected one.
    fn location_mismatch(&self, location: &str, url: &Url) -> Option<String> {
        if let Some(scheme) = &self.scheme
            && url.scheme() != scheme
        {
            return Some(format!(
                "redirect scheme: expected {scheme:?}, got {:?} (Location {location:?})",
                url.scheme()
            ));
        }
        if let Some(host) = &self.host
            && url.host_str() != Some(host.as_str())
        {
            return Some(format!(
                "redirect host: expected {host:?}, got {:?} (Location {location:?})",
                url.host_str().unwrap_or_default()
            ));
        }
        // The parser drops a port that is the scheme's default, so `port()` is `None`
        // for both "no port" and "the default port".
        match (self.port, url.port_or_known_default()) {
            (Some(expected), Some(got)) if expected == got => {}
            (Some(expected), got) => {
                return Some(format!(
                    "redirect port: expected {expected}, got {} (Location {location:?})",
                    got.map_or("none".to_string(), |p| p.to_string())
                ));
            }
            (None, _) => {
                if let Some(got) = url.port() {
                    return Some(format!(
                        "redirect port: expected none or the {} default, got {got} (Location {location:?})",
                        url.scheme()
                    ));
                }
            }
        }
        if let Some(path) = &self.path
            && url.path() != path
        {
            return Some(format!(
                "redirect path: expected {path:?}, got {:?} (Location {location:?})",
                url.path()
            ));
        }
        None
    }
}

impl Check for ExpectedRedirect {
    fn readiness_rank(&self) -> u8 {
        1
    }

    fn ready(&self, sample: &Sample<'_>) -> bool {
        self.failure(sample).is_none()
    }

    fn response_headers(&self) -> Vec<http::HeaderName> {
        vec![http::header::LOCATION]
    }

    fn unready(&self, sample: &Sample<'_>) -> Option<String> {
        self.failure(sample)
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        each_response::judge(self)
    }
}

impl EachResponse for ExpectedRedirect {
    fn failure(&self, sample: &Sample<'_>) -> Option<String> {
        if !sample.status.is_some_and(|s| (300..400).contains(&s)) {
            return Some(format!(
                "expected a redirect (3xx), got {}",
                describe_response(sample)
            ));
        }
        let status = sample.status.unwrap_or_default();
        let Some(value) = sample.headers.get(&http::header::LOCATION) else {
            return Some(format!("a {status} without a Location header"));
        };
        let location = String::from_utf8_lossy(value.as_bytes());
        match self.base.join(&location) {
            Ok(url) => self.location_mismatch(&location, &url),
            Err(err) => Some(format!(
                "a {status} whose Location {location:?} is not a URL: {err}"
            )),
        }
    }

    fn pass_attribute(&self) -> String {
        "every response redirects as expected".into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::traffic::ResponseHeaders;

    fn load(spec: RedirectSpec) -> Result<ExpectedRedirect, String> {
        let base: Url = "http://example.com/request/path?q=1".parse().unwrap();
        let at = |f: &str| SourceLocation::file_start(std::path::Path::new(f));
        ExpectedRedirect::load(&spec, &base, &at).map_err(|e| e.to_string())
    }

    fn failure(
        check: &ExpectedRedirect,
        status: u16,
        location: Option<&'static str>,
    ) -> Option<String> {
        let names = [http::header::LOCATION];
        let values = [location.map(HeaderValue::from_static)];
        let names: &[HeaderName] = &names;
        let sample = Sample {
            status: Some(status),
            identity: None,
            latency: Duration::ZERO,
            error: None,
            error_detail: None,
            envoy_overloaded: false,
            headers: ResponseHeaders::new(names, &values),
            body: None,
            websocket_replies: &[],
        };
        check.failure(&sample)
    }

    #[test]
    fn each_given_part_of_the_location_must_match() {
        let check = load(RedirectSpec {
            scheme: Some("HTTPS".into()),
            host: Some("Example.ORG".into()),
            port: Some(8443),
            path: Some("/foo".into()),
        })
        .unwrap();
        assert_eq!(check.response_headers(), [http::header::LOCATION]);
        assert_eq!(
            failure(&check, 302, Some("https://example.org:8443/foo")),
            None
        );
        assert_eq!(
            failure(&check, 302, Some("http://example.org:8443/foo")).as_deref(),
            Some(
                r#"redirect scheme: expected "https", got "http" (Location "http://example.org:8443/foo")"#
            )
        );
        assert_eq!(
            failure(&check, 302, Some("https://example.net:8443/foo")).as_deref(),
            Some(
                r#"redirect host: expected "example.org", got "example.net" (Location "https://example.net:8443/foo")"#
            )
        );
        assert_eq!(
            failure(&check, 302, Some("https://example.org/foo")).as_deref(),
            Some(r#"redirect port: expected 8443, got 443 (Location "https://example.org/foo")"#)
        );
        assert_eq!(
            failure(&check, 302, Some("https://example.org:8443/bar")).as_deref(),
            Some(
                r#"redirect path: expected "/foo", got "/bar" (Location "https://example.org:8443/bar")"#
            )
        );
        assert_eq!(
            failure(&check, 200, None).as_deref(),
            Some("expected a redirect (3xx), got 200 with no backend identity")
        );
        assert_eq!(
            failure(&check, 302, None).as_deref(),
            Some("a 302 without a Location header")
        );
        assert!(
            failure(&check, 302, Some("http://[bad")).is_some_and(|f| f.contains("is not a URL")),
        );
    }

    #[test]
    fn without_a_port_the_default_or_none_is_expected() {
        let check = load(RedirectSpec {
            host: Some("example.org".into()),
            ..RedirectSpec::default()
        })
        .unwrap();
        assert_eq!(failure(&check, 301, Some("http://example.org/")), None);
        assert_eq!(failure(&check, 301, Some("http://example.org:80/")), None);
        assert_eq!(
            failure(&check, 301, Some("https://example.org:443/x")),
            None
        );
        assert_eq!(
            failure(&check, 301, Some("http://example.org:8080/")).as_deref(),
            Some(
                r#"redirect port: expected none or the http default, got 8080 (Location "http://example.org:8080/")"#
            )
        );
        let port_80 = load(RedirectSpec {
            port: Some(80),
            ..RedirectSpec::default()
        })
        .unwrap();
        assert_eq!(failure(&port_80, 302, Some("http://example.org/")), None);
    }

    #[test]
    fn a_relative_location_is_resolved_against_the_request_url() {
        let check = load(RedirectSpec {
            scheme: Some("http".into()),
            host: Some("example.com".into()),
            path: Some("/request/other".into()),
            ..RedirectSpec::default()
        })
        .unwrap();
        assert_eq!(failure(&check, 302, Some("other")), None);
        assert_eq!(failure(&check, 302, Some("/request/other?x=1")), None);
        assert!(failure(&check, 302, Some("//example.org/request/other")).is_some());
    }

    #[test]
    fn bad_parts_are_refused_where_they_are() {
        let bad = |spec| load(spec).unwrap_err();
        let text = bad(RedirectSpec {
            scheme: Some("ht tp".into()),
            ..RedirectSpec::default()
        });
        assert!(text.starts_with("scheme:"), "{text}");
        let text = bad(RedirectSpec {
            host: Some("exa mple.org".into()),
            ..RedirectSpec::default()
        });
        assert!(text.starts_with("host:"), "{text}");
        let text = bad(RedirectSpec {
            port: Some(0),
            ..RedirectSpec::default()
        });
        assert!(text.starts_with("port:"), "{text}");
        let text = bad(RedirectSpec {
            path: Some("foo".into()),
            ..RedirectSpec::default()
        });
        assert!(text.starts_with("path:"), "{text}");
    }
}
