//! What an HTTPRoute rule does besides choosing its backends: the header, query
//! parameter and regex path matches, the five filters (and the header modifiers of a
//! backendRef), and the timeouts, checked as the Gateway API CRDs check them and
//! planned as Istio's gateway controller translates them (istio/istio
//! `pilot/pkg/config/kube/gateway/conversion.go`: `convertHTTPRoute`,
//! `createHeadersFilter`, `createRedirectFilter`, `createRewriteFilter`,
//! `createMirrorFilter`, `buildHTTPDestination`). The Envoy side of each is in
//! `bootstrap.rs` (`route`), after `pilot/pkg/networking/core/route/route.go`.

use std::str::FromStr;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::fixtures::{
    HeaderMatch, HeaderModifier, HttpRouteFixture, PathModifier, QueryParamMatch, RequestMirror,
    RequestRedirect, RouteFilter, RouteFilterKind, RoutePath, RouteRule, RouteTimeouts, UrlRewrite,
    istio,
};
use crate::manifest::{Manifest, ManifestError};

use super::plan::{ClusterPlan, PathMatch, port_u16, unsupported};
use super::re2;
use crate::manifest::invalid_field as invalid;

/// A header or query parameter condition of a route match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchCondition {
    /// As written: Istio keeps the spelling (Envoy compares header names
    /// case-insensitively, query parameter names exactly).
    pub name: String,
    pub value: StringMatch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    /// An RE2 expression that must match the whole value.
    Regex(String),
    /// Present with any value: Istio's reading of the regex `*`, which is not a regex
    /// (`canBeConvertedToPresentMatch`, `pilot/pkg/networking/core/route/route.go`).
    Present,
}

impl MatchCondition {
    /// Whether `value` (the header's or parameter's, `None` when absent) satisfies the
    /// condition, as Envoy decides it.
    pub fn accepts(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return false;
        };
        match &self.value {
            StringMatch::Exact(exact) => value == exact,
            StringMatch::Present => true,
            StringMatch::Regex(pattern) => {
                regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(value))
            }
        }
    }
}

/// Header edits of one direction, as Envoy applies them: `set` overwrites, `add`
/// appends, `remove` drops. Istio lowercases the names of `set` and `add`, keeps the
/// first of equal names, sorts them by name, and turns a `Host` edit into a host
/// rewrite (`headerListToMap`, `translateAppendHeaders`, `TranslateHeadersOperations`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    /// As written, without `Host`, which Envoy cannot remove.
    pub remove: Vec<String>,
    /// The value of a `Host` header set (or, without one, added).
    pub authority: Option<String>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.authority.is_none()
    }
}

/// The header modifiers of a rule or of a backendRef.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderFilters {
    pub request: HeaderEdits,
    pub response: HeaderEdits,
}

/// A rule's filters, planned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleFilters {
    pub headers: HeaderFilters,
    pub redirect: Option<Redirect>,
    pub rewrite: Option<Rewrite>,
    pub mirrors: Vec<Mirror>,
}

/// A RequestRedirect. Which port the Location names depends on the listener, so the
/// port is resolved when the route is written for one ([`RedirectPort`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<&'static str>,
    pub hostname: Option<String>,
    pub port: RedirectPort,
    pub path: Option<RedirectPath>,
    pub status: u16,
}

/// Istio's reading of a redirect's port: the one written; without one, the scheme's
/// default when the redirect changes the scheme, else the request's port, which Istio
/// knows as the port of the listener it writes the route for. A scheme's own default
/// port (80 for http, 443 for https) is left out of the Location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectPort {
    Explicit(u16),
    FromRequest,
    ProtocolDefault,
}

impl Redirect {
    /// The `port_redirect` for a route served on `listener_port`; `None` for none
    /// (`ApplyRedirect`, `pilot/pkg/networking/core/route/route.go`).
    pub fn port_for(&self, listener_port: u16, tls: bool) -> Option<u16> {
        let port = match self.port {
            RedirectPort::Explicit(port) => port,
            RedirectPort::FromRequest => listener_port,
            RedirectPort::ProtocolDefault => return None,
        };
        let scheme = self.scheme.unwrap_or(if tls { "https" } else { "http" });
        match (scheme, port) {
            ("http", 80) | ("https", 443) => None,
            _ => Some(port),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectPath {
    /// `ReplaceFullPath`: Envoy's `path_redirect`.
    Full(String),
    /// `ReplacePrefixMatch`: Envoy's `prefix_rewrite`, the value as written.
    Prefix(String),
}

/// A URLRewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub hostname: Option<String>,
    pub path: Option<PathRewrite>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathRewrite {
    /// `ReplaceFullPath`: a regex rewrite of `/.*` to the value.
    Full(String),
    /// `ReplacePrefixMatch` without its trailing slash (`/` stays `/`): a prefix
    /// rewrite, or for `/` a regex that drops the matched prefix.
    Prefix(String),
}

/// A RequestMirror: the mirror's cluster and the share of requests mirrored, as the
/// runtime fraction Istio writes (a share of 100, or of a million for a `percent` or
/// `fraction`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub cluster: String,
    pub numerator: u32,
    pub per_million: bool,
}

/// The redirect status codes Istio translates (`ApplyRedirect`).
const REDIRECT_CODES: [i64; 5] = [301, 302, 303, 307, 308];

/// A match's path, its regex checked.
pub(super) fn path_match(
    manifest: &Manifest,
    field: &str,
    path: &RoutePath,
) -> Result<PathMatch, ManifestError> {
    Ok(match path {
        RoutePath::Prefix(value) => PathMatch::Prefix(value.clone()),
        RoutePath::Exact(value) => PathMatch::Exact(value.clone()),
        RoutePath::RegularExpression(value) => {
            regex(manifest, &format!("{field}.path.value"), value, false)?;
            PathMatch::Regex(value.clone())
        }
    })
}

/// A match's header conditions, sorted by name as Istio sorts them
/// (`TranslateRouteMatch`).
pub(super) fn header_conditions(
    manifest: &Manifest,
    field: &str,
    headers: &[HeaderMatch],
) -> Result<Vec<MatchCondition>, ManifestError> {
    let mut out = Vec::new();
    for (index, header) in headers.iter().enumerate() {
        let at = format!("{field}.headers[{index}]");
        header_name(manifest, &format!("{at}.name"), &header.name)?;
        out.push(MatchCondition {
            name: header.name.clone(),
            value: condition_value(
                manifest,
                &format!("{at}.value"),
                &header.value,
                header.regular_expression,
            )?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A match's query parameter conditions. Istio keeps them in a Go map, so their order
/// in its output varies; sorted by name here.
pub(super) fn query_conditions(
    manifest: &Manifest,
    field: &str,
    params: &[QueryParamMatch],
) -> Result<Vec<MatchCondition>, ManifestError> {
    let mut out = Vec::new();
    for (index, param) in params.iter().enumerate() {
        let at = format!("{field}.queryParams[{index}]");
        // The CRD types a query parameter name as an HTTP header name.
        header_name(manifest, &format!("{at}.name"), &param.name)?;
        out.push(MatchCondition {
            name: param.name.clone(),
            value: condition_value(
                manifest,
                &format!("{at}.value"),
                &param.value,
                param.regular_expression,
            )?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn condition_value(
    manifest: &Manifest,
    field: &str,
    value: &str,
    regular_expression: bool,
) -> Result<StringMatch, ManifestError> {
    if !regular_expression {
        return Ok(StringMatch::Exact(value.to_string()));
    }
    if value == "*" {
        return Ok(StringMatch::Present);
    }
    regex(manifest, field, value, true)?;
    Ok(StringMatch::Regex(value.to_string()))
}

fn regex(
    manifest: &Manifest,
    field: &str,
    pattern: &str,
    star_is_presence: bool,
) -> Result<(), ManifestError> {
    re2::check(pattern).map_err(|err| {
        let hint = if star_is_presence {
            ""
        } else {
            " (Envoy refuses the whole route table)"
        };
        invalid(manifest, field, format!("{err}{hint}"))
    })
}

/// The CRD's `HTTPHeaderName` (RFC 7230 token characters), which is what
/// [`HeaderName`] accepts.
fn header_name(manifest: &Manifest, field: &str, name: &str) -> Result<(), ManifestError> {
    if name.is_empty() || name.len() > 256 || HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(invalid(
            manifest,
            field,
            format!("`{name}` is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"),
        ));
    }
    Ok(())
}

/// A rule's filters, each checked against the CRD's rules and planned.
pub(super) fn rule_filters(
    route: &HttpRouteFixture,
    rule_index: usize,
    rule: &RouteRule,
    clusters: &[ClusterPlan],
) -> Result<RuleFilters, ManifestError> {
    let manifest = &route.manifest;
    let rule_field = format!("spec.rules[{rule_index}]");
    let mut out = RuleFilters::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for (index, filter) in rule.filters.iter().enumerate() {
        let field = format!("{rule_field}.filters[{index}]");
        check_filter_shape(manifest, &field, filter)?;
        let type_name = filter.kind.type_name();
        if type_name != "RequestMirror" && seen.contains(&type_name) {
            return Err(invalid(
                manifest,
                &format!("{field}.type"),
                format!("a {type_name} filter cannot be repeated in a rule"),
            ));
        }
        seen.push(type_name);
        if seen.contains(&"RequestRedirect") && seen.contains(&"URLRewrite") {
            return Err(invalid(
                manifest,
                &format!("{field}.type"),
                "a rule may have a RequestRedirect or a URLRewrite filter, not both".into(),
            ));
        }
        match &filter.kind {
            RouteFilterKind::RequestHeaderModifier(Some(m)) => {
                out.headers.request =
                    header_edits(manifest, &format!("{field}.requestHeaderModifier"), m)?;
            }
            RouteFilterKind::ResponseHeaderModifier(Some(m)) => {
                out.headers.response =
                    header_edits(manifest, &format!("{field}.responseHeaderModifier"), m)?;
            }
            RouteFilterKind::RequestRedirect(Some(r)) => {
                if !rule.backend_refs.is_empty() {
                    return Err(invalid(
                        manifest,
                        &format!("{field}.type"),
                        "a RequestRedirect filter cannot be used together with backendRefs".into(),
                    ));
                }
                out.redirect = Some(redirect(
                    manifest,
                    &format!("{field}.requestRedirect"),
                    rule,
                    r,
                )?);
            }
            RouteFilterKind::UrlRewrite(Some(r)) => {
                out.rewrite = Some(rewrite(manifest, &format!("{field}.urlRewrite"), rule, r)?);
            }
            RouteFilterKind::RequestMirror(Some(m)) => {
                if let Some(mirror) = mirror(route, &format!("{field}.requestMirror"), m, clusters)?
                {
                    out.mirrors.push(mirror);
                }
            }
            // check_filter_shape refused a type without its configuration.
            RouteFilterKind::RequestHeaderModifier(None)
            | RouteFilterKind::ResponseHeaderModifier(None)
            | RouteFilterKind::RequestRedirect(None)
            | RouteFilterKind::UrlRewrite(None)
            | RouteFilterKind::RequestMirror(None) => {}
            RouteFilterKind::Other(name) => {
                return Err(unsupported(
                    manifest,
                    &format!("{field}.type"),
                    format!("{name} filters"),
                ));
            }
        }
    }
    Ok(out)
}

/// The header modifiers of each backendRef of a rule with a weight above 0, in order:
/// the backends Istio keeps (`buildHTTPDestination`), so entry `i` belongs to the
/// `i`-th cluster of the route's action.
pub(super) fn backend_header_filters(
    route: &HttpRouteFixture,
    rule_index: usize,
    rule: &RouteRule,
) -> Result<Vec<HeaderFilters>, ManifestError> {
    let manifest = &route.manifest;
    let mut out = Vec::new();
    for (backend_index, backend) in rule.backend_refs.iter().enumerate() {
        let mut filters = HeaderFilters::default();
        for (index, filter) in backend.filters.iter().enumerate() {
            let field =
                format!("spec.rules[{rule_index}].backendRefs[{backend_index}].filters[{index}]");
            check_filter_shape(manifest, &field, filter)?;
            match &filter.kind {
                RouteFilterKind::RequestHeaderModifier(Some(m)) => {
                    filters.request =
                        header_edits(manifest, &format!("{field}.requestHeaderModifier"), m)?;
                }
                RouteFilterKind::ResponseHeaderModifier(Some(m)) => {
                    filters.response =
                        header_edits(manifest, &format!("{field}.responseHeaderModifier"), m)?;
                }
                RouteFilterKind::RequestHeaderModifier(None)
                | RouteFilterKind::ResponseHeaderModifier(None) => {}
                other => {
                    return Err(unsupported(
                        manifest,
                        &format!("{field}.type"),
                        format!(
                            "{} filters on a backendRef (Istio translates only the header modifiers there)",
                            other.type_name()
                        ),
                    ));
                }
            }
        }
        if backend.weight != 0 {
            out.push(filters);
        }
    }
    Ok(out)
}

/// The CRD's rule that a filter carries the configuration of its type and no other.
fn check_filter_shape(
    manifest: &Manifest,
    field: &str,
    filter: &RouteFilter,
) -> Result<(), ManifestError> {
    let type_name = filter.kind.type_name();
    let wanted = filter.kind.config_field();
    if let Some(other) = filter.config_fields.iter().find(|f| Some(**f) != wanted) {
        return Err(invalid(
            manifest,
            &format!("{field}.{other}"),
            format!("`{other}` does not belong to a filter of type {type_name}"),
        ));
    }
    if let Some(wanted) = wanted
        && !filter.config_fields.contains(&wanted)
    {
        return Err(invalid(
            manifest,
            &format!("{field}.type"),
            format!("a {type_name} filter needs `{wanted}`"),
        ));
    }
    Ok(())
}

fn header_edits(
    manifest: &Manifest,
    field: &str,
    modifier: &HeaderModifier,
) -> Result<HeaderEdits, ManifestError> {
    let mut edits = HeaderEdits::default();
    let mut set_authority = None;
    let mut add_authority = None;
    for (list, name, target, authority) in [
        ("set", &modifier.set, &mut edits.set, &mut set_authority),
        ("add", &modifier.add, &mut edits.add, &mut add_authority),
    ] {
        for (index, (header, value)) in name.iter().enumerate() {
            let at = format!("{field}.{list}[{index}]");
            header_name(manifest, &format!("{at}.name"), header)?;
            // Istio's `isValidHeaderValue` is exactly what HeaderValue accepts: tab and
            // every byte from space up, but DEL.
            if HeaderValue::from_bytes(value.as_bytes()).is_err() {
                return Err(invalid(
                    manifest,
                    &format!("{at}.value"),
                    format!(
                        "the value of header `{header}` contains characters a header cannot carry"
                    ),
                ));
            }
            let lower = header.to_ascii_lowercase();
            // "Subsequent entries with an equivalent header name MUST be ignored."
            if target.iter().any(|(n, _)| *n == lower) || (lower == "host" && authority.is_some()) {
                continue;
            }
            if lower == "host" {
                *authority = Some(value.clone());
            } else {
                target.push((lower, value.clone()));
            }
        }
        target.sort();
    }
    for (index, header) in modifier.remove.iter().enumerate() {
        header_name(manifest, &format!("{field}.remove[{index}]"), header)?;
        if !header.eq_ignore_ascii_case("host") {
            edits.remove.push(header.clone());
        }
    }
    edits.authority = set_authority.or(add_authority);
    Ok(edits)
}

/// `ReplacePrefixMatch` needs exactly one match, a PathPrefix one (the CRD's rule on
/// `HTTPRouteRule`); a rule without matches has the default `/` prefix.
fn check_prefix_modifier(
    manifest: &Manifest,
    field: &str,
    rule: &RouteRule,
    filter: &str,
) -> Result<(), ManifestError> {
    if rule.matches.len() != 1 || !matches!(rule.matches[0].path, RoutePath::Prefix(_)) {
        return Err(invalid(
            manifest,
            field,
            format!(
                "a {filter} with ReplacePrefixMatch needs exactly one match, of type PathPrefix"
            ),
        ));
    }
    Ok(())
}

/// The path modifier's value: the CRD requires the field its type names and forbids
/// the other.
fn modifier_value<'a>(
    manifest: &Manifest,
    field: &str,
    modifier: &'a PathModifier,
) -> Result<&'a str, ManifestError> {
    let (wanted, wanted_name, other, other_name, type_name) = if modifier.prefix_match {
        (
            &modifier.replace_prefix_match,
            "replacePrefixMatch",
            &modifier.replace_full_path,
            "replaceFullPath",
            "ReplacePrefixMatch",
        )
    } else {
        (
            &modifier.replace_full_path,
            "replaceFullPath",
            &modifier.replace_prefix_match,
            "replacePrefixMatch",
            "ReplaceFullPath",
        )
    };
    if other.is_some() {
        return Err(invalid(
            manifest,
            &format!("{field}.{other_name}"),
            format!("`{other_name}` does not go with type {type_name}"),
        ));
    }
    wanted.as_deref().ok_or_else(|| {
        invalid(
            manifest,
            &format!("{field}.type"),
            format!("type {type_name} needs `{wanted_name}`"),
        )
    })
}

fn redirect(
    manifest: &Manifest,
    field: &str,
    rule: &RouteRule,
    filter: &RequestRedirect,
) -> Result<Redirect, ManifestError> {
    let status = filter.status_code;
    if !REDIRECT_CODES.contains(&status) {
        return Err(invalid(
            manifest,
            &format!("{field}.statusCode"),
            format!("{status} is not a redirect status (301, 302, 303, 307 or 308)"),
        ));
    }
    let port = match (filter.port, filter.scheme) {
        (Some(port), _) => {
            RedirectPort::Explicit(port_u16(manifest, &format!("{field}.port"), port)?)
        }
        (None, Some(_)) => RedirectPort::ProtocolDefault,
        (None, None) => RedirectPort::FromRequest,
    };
    let path = match &filter.path {
        None => None,
        Some(modifier) => {
            let value = modifier_value(manifest, &format!("{field}.path"), modifier)?;
            Some(if modifier.prefix_match {
                check_prefix_modifier(
                    manifest,
                    &format!("{field}.path.type"),
                    rule,
                    "RequestRedirect",
                )?;
                RedirectPath::Prefix(value.to_string())
            } else {
                RedirectPath::Full(value.to_string())
            })
        }
    };
    Ok(Redirect {
        scheme: filter.scheme,
        hostname: filter.hostname.clone(),
        port,
        path,
        status: u16::try_from(status).unwrap_or(301),
    })
}

fn rewrite(
    manifest: &Manifest,
    field: &str,
    rule: &RouteRule,
    filter: &UrlRewrite,
) -> Result<Rewrite, ManifestError> {
    let path = match &filter.path {
        None => None,
        Some(modifier) => {
            let value = modifier_value(manifest, &format!("{field}.path"), modifier)?;
            Some(if modifier.prefix_match {
                check_prefix_modifier(manifest, &format!("{field}.path.type"), rule, "URLRewrite")?;
                // Istio trims one trailing slash (`strings.TrimSuffix`); `/` stays.
                let trimmed = value.strip_suffix('/').unwrap_or(value);
                PathRewrite::Prefix(if trimmed.is_empty() {
                    "/".to_string()
                } else {
                    trimmed.to_string()
                })
            } else {
                PathRewrite::Full(value.to_string())
            })
        }
    };
    Ok(Rewrite {
        hostname: filter.hostname.clone(),
        path,
    })
}

/// A mirror's cluster and share; `None` when the share is 0, which Istio drops
/// (`MirrorPercentByPolicy`).
fn mirror(
    route: &HttpRouteFixture,
    field: &str,
    filter: &RequestMirror,
    clusters: &[ClusterPlan],
) -> Result<Option<Mirror>, ManifestError> {
    let manifest = &route.manifest;
    let backend = &filter.backend;
    let at = format!("{field}.backendRef");
    if !backend.is_service() {
        return Err(unsupported(
            manifest,
            &format!("{at}.kind"),
            format!(
                "mirror backend {}/{}: only Services",
                backend.group, backend.kind
            ),
        ));
    }
    if backend
        .namespace
        .as_ref()
        .is_some_and(|n| *n != route.namespace)
    {
        return Err(unsupported(
            manifest,
            &format!("{at}.namespace"),
            "cross-namespace mirror backends (they need a ReferenceGrant)",
        ));
    }
    let Some(port) = backend.port else {
        return Err(invalid(
            manifest,
            &format!("{at}.port"),
            "a Service backend needs a port".into(),
        ));
    };
    let port = port_u16(manifest, &format!("{at}.port"), port)?;
    let cluster = istio::cluster_name(&route.namespace, &backend.name, port);
    if !clusters.iter().any(|c| c.name == cluster) {
        return Err(invalid(
            manifest,
            &format!("{at}.name"),
            format!(
                "Service {}/{} with port {port} is not in the fixtures",
                route.namespace, backend.name
            ),
        ));
    }
    // Istio's `createMirrorFilter` takes a percentage (a float) from either field and
    // `translatePercentToFractionalPercent` writes it per million, truncated.
    let percent = match (filter.percent, filter.fraction) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                manifest,
                &format!("{field}.fraction"),
                "a mirror takes `percent` or `fraction`, not both".into(),
            ));
        }
        (Some(percent), None) => {
            if !(0..=100).contains(&percent) {
                return Err(invalid(
                    manifest,
                    &format!("{field}.percent"),
                    format!("{percent} is not a percentage from 0 to 100"),
                ));
            }
            Some(f64::from(percent))
        }
        (None, Some((numerator, denominator))) => {
            if denominator < 1 || numerator < 0 || numerator > denominator {
                return Err(invalid(
                    manifest,
                    &format!("{field}.fraction"),
                    format!(
                        "{numerator}/{denominator} is not a fraction from 0 to 1 (the denominator at least 1)"
                    ),
                ));
            }
            Some(100.0 * f64::from(numerator) / f64::from(denominator))
        }
        (None, None) => None,
    };
    Ok(match percent {
        None => Some(Mirror {
            cluster,
            numerator: 100,
            per_million: false,
        }),
        Some(p) if p > 0.0 => Some(Mirror {
            cluster,
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "Go's uint32(p * 10000) truncates the same way; p is from 0 to 100"
            )]
            numerator: (p * 10000.0) as u32,
            per_million: true,
        }),
        Some(_) => None,
    })
}

/// The route timeout Istio writes for a rule's `timeouts`: `request`, then
/// `backendRequest` in its place (`convertHTTPRoute`: without a `retry` stanza, which
/// the local target does not take, a backend request timeout becomes the route
/// timeout, not a per-try timeout). A zero duration means no timeout. Both are
/// GEP-2257 durations, and the CRD refuses a backendRequest longer than a non-zero
/// request timeout.
pub(super) fn route_timeout(
    manifest: &Manifest,
    rule_field: &str,
    timeouts: &RouteTimeouts,
) -> Result<Option<Duration>, ManifestError> {
    let parse = |name: &str, text: &Option<String>| -> Result<Option<Duration>, ManifestError> {
        text.as_deref()
            .map(|text| {
                gateway_api::Duration::from_str(text)
                    .map(|d| Duration::new(d.as_secs(), d.subsec_nanos()))
                    .map_err(|err| {
                        invalid(
                            manifest,
                            &format!("{rule_field}.timeouts.{name}"),
                            format!(
                                "`{text}` is not a Gateway API duration (GEP-2257: up to four numbers with a unit h, m, s or ms, like `1s` or `1m30s`): {err}"
                            ),
                        )
                    })
            })
            .transpose()
    };
    let request = parse("request", &timeouts.request)?;
    let backend_request = parse("backendRequest", &timeouts.backend_request)?;
    if let (Some(request), Some(backend)) = (request, backend_request)
        && !request.is_zero()
        && backend > request
    {
        return Err(invalid(
            manifest,
            &format!("{rule_field}.timeouts.backendRequest"),
            format!(
                "the backendRequest timeout ({backend:?}) cannot be longer than the request timeout ({request:?})"
            ),
        ));
    }
    Ok(backend_request
        .filter(|d| !d.is_zero())
        .or(request.filter(|d| !d.is_zero())))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::fixtures::Fixtures;
    use crate::manifest::load_str;

    /// The first rule of an HTTPRoute in namespace `shop` whose rules are `rules`, with
    /// Services `web` and `mirror` (port 80) to send and mirror to.
    fn route(rules: &str) -> (HttpRouteFixture, Vec<ClusterPlan>) {
        let text = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: shop}}\nspec:\n  rules:\n{rules}"
        );
        let manifests = load_str(&text, Path::new("r.yaml")).unwrap();
        let fixtures = Fixtures::new(&manifests).unwrap();
        let clusters = ["web", "mirror"]
            .iter()
            .map(|name| ClusterPlan {
                name: istio::cluster_name("shop", name, 80),
                service: crate::manifest::ObjectKey {
                    kind: "Service".into(),
                    namespace: Some("shop".into()),
                    name: (*name).into(),
                },
                port: 80,
                workloads: vec![],
                target_ports: vec![],
                policy: None,
                protocol: istio::PortProtocol::Http,
            })
            .collect();
        (fixtures.routes()[0].clone(), clusters)
    }

    fn filters(rules: &str) -> Result<RuleFilters, ManifestError> {
        let (route, clusters) = route(rules);
        rule_filters(&route, 0, &route.rules[0], &clusters)
    }

    #[test]
    fn header_edits_follow_istio() {
        let planned = filters(
            "  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set: [{name: X-Z, value: z}, {name: x-z, value: second}, {name: Host, value: h.example.com}, {name: X-A, value: a}]\n        add: [{name: Host, value: ignored.example.com}, {name: X-Add, value: v}]\n        remove: [X-Gone, host]\n",
        )
        .unwrap();
        assert_eq!(
            planned.headers.request,
            HeaderEdits {
                // Lowercased, the first of equal names, sorted.
                set: vec![("x-a".into(), "a".into()), ("x-z".into(), "z".into())],
                add: vec![("x-add".into(), "v".into())],
                // Envoy cannot remove Host; Istio drops it.
                remove: vec!["X-Gone".into()],
                // A set Host wins over an added one.
                authority: Some("h.example.com".into()),
            }
        );
        assert!(planned.headers.response.is_empty());
    }

    #[test]
    fn redirect_ports_follow_istio() {
        let redirect = |yaml: &str| {
            filters(&format!(
                "  - filters:\n    - type: RequestRedirect\n      requestRedirect: {yaml}\n"
            ))
            .unwrap()
            .redirect
            .unwrap()
        };
        // No port, no scheme: the request's (the listener's) port, unless it is the
        // scheme's default.
        let same = redirect("{hostname: a.example.com}");
        assert_eq!(same.port, RedirectPort::FromRequest);
        assert_eq!(same.port_for(8080, false), Some(8080));
        assert_eq!(same.port_for(80, false), None);
        assert_eq!(same.port_for(443, true), None);
        assert_eq!(same.port_for(80, true), Some(80));
        assert_eq!(same.status, 302, "the CRD's default");
        // A scheme without a port: that scheme's default, so none in the Location.
        let https = redirect("{scheme: https, statusCode: 301}");
        assert_eq!(https.port_for(8080, false), None);
        assert_eq!(https.status, 301);
        // A written port stays, unless it is the (new) scheme's default.
        assert_eq!(
            redirect("{scheme: https, port: 443}").port_for(80, false),
            None
        );
        assert_eq!(
            redirect("{scheme: http, port: 443}").port_for(80, false),
            Some(443)
        );
        assert_eq!(
            redirect("{path: {type: ReplacePrefixMatch, replacePrefixMatch: /new/}}").path,
            Some(RedirectPath::Prefix("/new/".into())),
            "a redirect's prefix is kept as written"
        );
    }

    #[test]
    fn rewrite_prefixes_lose_one_trailing_slash() {
        let rewrite = |value: &str| {
            filters(&format!(
                "  - filters:\n    - type: URLRewrite\n      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: \"{value}\"}}}}\n    backendRefs: [{{name: web, port: 80}}]\n"
            ))
            .unwrap()
            .rewrite
            .unwrap()
            .path
        };
        assert_eq!(rewrite("/new/"), Some(PathRewrite::Prefix("/new".into())));
        assert_eq!(rewrite("/new"), Some(PathRewrite::Prefix("/new".into())));
        assert_eq!(rewrite("/"), Some(PathRewrite::Prefix("/".into())));
    }

    #[test]
    fn mirror_shares_are_istio_runtime_fractions() {
        let mirrors = filters(
            "  - filters:\n    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 80}}}\n    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 80}, percent: 7}}\n    - {type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, fraction: {numerator: 2, denominator: 3}}}\n    - {type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, fraction: {numerator: 0}}}\n    backendRefs: [{name: web, port: 80}]\n",
        )
        .unwrap()
        .mirrors;
        let shares: Vec<(u32, bool)> = mirrors
            .iter()
            .map(|m| (m.numerator, m.per_million))
            .collect();
        // 100 of a hundred by default; per million, truncated, otherwise; 0% dropped.
        assert_eq!(shares, [(100, false), (70_000, true), (666_666, true)]);
        assert_eq!(
            mirrors[0].cluster,
            "outbound|80||mirror.shop.svc.cluster.local"
        );
    }

    #[test]
    fn backend_request_replaces_the_request_timeout() {
        let (route, _) = route("  - backendRefs: [{name: web, port: 80}]\n");
        let timeout = |request: Option<&str>, backend: Option<&str>| {
            route_timeout(
                &route.manifest,
                "spec.rules[0]",
                &RouteTimeouts {
                    request: request.map(str::to_string),
                    backend_request: backend.map(str::to_string),
                },
            )
            .map_err(|e| e.to_string())
        };
        assert_eq!(timeout(None, None), Ok(None));
        assert_eq!(
            timeout(Some("1m30s"), None),
            Ok(Some(Duration::from_secs(90)))
        );
        assert_eq!(
            timeout(Some("10s"), Some("250ms")),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(timeout(Some("0s"), Some("0s")), Ok(None));
        // A zero backendRequest leaves the request timeout.
        assert_eq!(
            timeout(Some("3s"), Some("0s")),
            Ok(Some(Duration::from_secs(3)))
        );
        // A zero request timeout is no bound for backendRequest.
        assert_eq!(
            timeout(Some("0s"), Some("1h")),
            Ok(Some(Duration::from_secs(3600)))
        );
        assert!(timeout(Some("1s"), Some("2s")).is_err());
        for bad in ["1.5s", "10", "1d", "-1s", "100us", "1h2m3s4ms5s"] {
            assert!(timeout(Some(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_star_regex_is_a_presence_match() {
        let (route, _) = route(
            "  - matches:\n    - headers: [{name: X-Any, type: RegularExpression, value: \"*\"}, {name: X-Env, value: prod}]\n",
        );
        let conditions = header_conditions(
            &route.manifest,
            "spec.rules[0].matches[0]",
            &route.rules[0].matches[0].headers,
        )
        .unwrap();
        assert_eq!(
            conditions,
            [
                MatchCondition {
                    name: "X-Any".into(),
                    value: StringMatch::Present
                },
                MatchCondition {
                    name: "X-Env".into(),
                    value: StringMatch::Exact("prod".into())
                },
            ]
        );
        assert!(conditions[0].accepts(Some("")));
        assert!(!conditions[0].accepts(None));
        let regex = MatchCondition {
            name: "x".into(),
            value: StringMatch::Regex("a|b".into()),
        };
        assert!(regex.accepts(Some("b")));
        assert!(!regex.accepts(Some("ab")), "the whole value must match");
    }
}
