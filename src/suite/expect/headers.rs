//! Header expectations shared by `expect.request` and `expect.response`: headers
//! present with a value, headers absent, and how values compare.
//!
//! Upstream's comparison (kubernetes-sigs/gateway-api `conformance/utils/http/http.go`,
//! `CompareRequest`): names are compared lowercased, a header's values (Go keeps one
//! per header line) are joined with `,` and compared with the expected string, and an
//! absent header is one whose name is not there at all (an empty value is present).
//! Here the joined value and the expected one are compared as comma-separated lists
//! with the optional whitespace around each comma ignored (RFC 9110 section 5.6.1),
//! because the same response reads `a,b` through the engine and `a, b` through the
//! in-mesh client's curl; a single value compares exactly.

use std::collections::BTreeMap;

use http::HeaderName;

use crate::manifest::SourceLocation;
use crate::suite::error::SuiteError;

/// Headers expected present with a value, and headers expected absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderExpectations {
    /// Lowercase names (what `http::HeaderName` holds), in the suite's order.
    pub present: Vec<(HeaderName, String)>,
    pub absent: Vec<HeaderName>,
}

impl HeaderExpectations {
    pub fn is_empty(&self) -> bool {
        self.present.is_empty() && self.absent.is_empty()
    }

    /// Every name the expectations read.
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.present
            .iter()
            .map(|(name, _)| name)
            .chain(&self.absent)
    }

    /// The first expectation `value_of` does not meet, in words: `what` names the
    /// side (`request header`, `response header`), `seen` who saw it (`backend saw`,
    /// `got`).
    pub fn mismatch<'v>(
        &self,
        what: &str,
        seen: &str,
        value_of: impl Fn(&HeaderName) -> Option<std::borrow::Cow<'v, str>>,
    ) -> Option<String> {
        for (name, expected) in &self.present {
            match value_of(name) {
                None => return Some(format!("{what} {name}: expected {expected:?}, {seen} none")),
                Some(actual) if !same_value(expected, &actual) => {
                    return Some(format!(
                        "{what} {name}: expected {expected:?}, {seen} {actual:?}"
                    ));
                }
                Some(_) => {}
            }
        }
        for name in &self.absent {
            if let Some(actual) = value_of(name) {
                return Some(format!("{what} {name}: expected absent, {seen} {actual:?}"));
            }
        }
        None
    }
}

/// Loads `headers` and `absentHeaders`. `at` locates a field under the expectation
/// (`headers.X-Name`, `absentHeaders[0]`).
pub(super) fn load_headers(
    headers: &BTreeMap<String, String>,
    absent: &[String],
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<HeaderExpectations, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let mut expectations = HeaderExpectations::default();
    for (name, value) in headers {
        let field = format!("headers.{name}");
        let header = header_name(name).map_err(|m| invalid(&field, m))?;
        if http::HeaderValue::from_str(value).is_err() {
            return Err(invalid(
                &field,
                format!("{value:?} is not a valid value for header `{name}`"),
            ));
        }
        if expectations
            .present
            .iter()
            .any(|(known, _)| *known == header)
        {
            return Err(invalid(
                &field,
                format!("header `{name}` is given twice (names are case-insensitive)"),
            ));
        }
        expectations.present.push((header, value.clone()));
    }
    for (i, name) in absent.iter().enumerate() {
        let field = format!("absentHeaders[{i}]");
        let header = header_name(name).map_err(|m| invalid(&field, m))?;
        if expectations
            .present
            .iter()
            .any(|(known, _)| *known == header)
        {
            return Err(invalid(
                &field,
                format!("header `{name}` cannot be both expected under `headers` and absent"),
            ));
        }
        if expectations.absent.contains(&header) {
            return Err(invalid(
                &field,
                format!("header `{name}` is listed twice (names are case-insensitive)"),
            ));
        }
        expectations.absent.push(header);
    }
    Ok(expectations)
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))
}

/// Whether a received value is the expected one: as comma-separated lists, elements
/// trimmed of spaces and tabs (see the module doc).
pub(super) fn same_value(expected: &str, actual: &str) -> bool {
    fn elements(text: &str) -> impl Iterator<Item = &str> {
        text.split(',')
            .map(|element| element.trim_matches([' ', '\t']))
    }
    expected == actual || elements(expected).eq(elements(actual))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::path::Path;

    use super::*;
    use crate::manifest::yaml::Position;

    fn at(field: &str) -> SourceLocation {
        SourceLocation::new(Path::new(field), Position { line: 1, column: 1 })
    }

    fn load(headers: &[(&str, &str)], absent: &[&str]) -> Result<HeaderExpectations, String> {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let absent: Vec<String> = absent.iter().map(|s| s.to_string()).collect();
        load_headers(&headers, &absent, &at).map_err(|err| err.to_string())
    }

    #[test]
    fn list_values_compare_element_by_element() {
        assert!(same_value("a,b", "a, b"));
        assert!(same_value("a, b", "a,b"));
        assert!(same_value("set-value", "set-value"));
        assert!(!same_value("a,b", "b,a"));
        assert!(!same_value("set-value", "Set-Value"));
        assert!(!same_value("a", "a,a"));
    }

    #[test]
    fn names_are_case_insensitive_and_checked() {
        let loaded = load(&[("X-Header-Set", "v")], &["X-Header-Remove"]).unwrap();
        assert_eq!(loaded.present[0].0.as_str(), "x-header-set");
        assert_eq!(loaded.absent[0].as_str(), "x-header-remove");
        let bad = load(&[("bad header", "v")], &[]).unwrap_err();
        assert!(bad.contains("headers.bad header"), "{bad}");
        assert!(bad.ends_with("invalid header name `bad header`"), "{bad}");
        let bad = load(&[], &["x:y"]).unwrap_err();
        assert!(bad.starts_with("absentHeaders[0]:"), "{bad}");
        let both = load(&[("X-A", "v")], &["x-a"]).unwrap_err();
        assert!(
            both.contains("both expected under `headers` and absent"),
            "{both}"
        );
        let twice = load(&[("X-A", "v"), ("x-a", "w")], &[]).unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        let value = load(&[("X-A", "line\nbreak")], &[]).unwrap_err();
        assert!(value.contains("not a valid value"), "{value}");
    }

    #[test]
    fn a_mismatch_says_what_was_expected_and_seen() {
        let expectations = load(&[("X-Header-Set", "set-value")], &["X-Gone"]).unwrap();
        let seen = |values: &'static [(&'static str, &'static str)]| {
            move |name: &HeaderName| {
                values
                    .iter()
                    .find(|(n, _)| *n == name.as_str())
                    .map(|(_, v)| Cow::Borrowed(*v))
            }
        };
        assert_eq!(
            expectations.mismatch(
                "request header",
                "backend saw",
                seen(&[("x-header-set", "other")])
            ),
            Some(
                r#"request header x-header-set: expected "set-value", backend saw "other""#.into()
            )
        );
        assert_eq!(
            expectations.mismatch("request header", "backend saw", seen(&[])),
            Some(r#"request header x-header-set: expected "set-value", backend saw none"#.into())
        );
        assert_eq!(
            expectations.mismatch(
                "response header",
                "got",
                seen(&[("x-header-set", "set-value"), ("x-gone", "")])
            ),
            Some(r#"response header x-gone: expected absent, got """#.into())
        );
        assert_eq!(
            expectations.mismatch(
                "response header",
                "got",
                seen(&[("x-header-set", "set-value")])
            ),
            None
        );
    }
}
