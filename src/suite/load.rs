//! Loading suite files: parse, decode with locations, check every reference (fixture
//! files, gateways, routes, services) and resolve what the cases expect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use super::error::SuiteError;
use super::model::{CaseSpec, SuiteSpec};
use crate::manifest::{
    Manifest, ObjectKey, SourceLocation, check_unique, decode_located, load_file, read_source, yaml,
};

/// Bounds that keep a typo from turning into an hours-long or machine-eating run.
pub const MAX_REQUESTS: u64 = 100_000_000;
pub const MAX_CONCURRENCY: usize = 4096;

/// A suite ready to run: its fixtures loaded and every case resolved.
#[derive(Clone, Debug)]
pub struct Suite {
    pub name: String,
    pub file: Arc<Path>,
    pub description: Option<String>,
    pub spec: SuiteSpec,
    pub manifests: Vec<Manifest>,
    pub cases: Vec<Case>,
}

/// A case with its references resolved against the fixtures.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub spec: CaseSpec,
    pub location: SourceLocation,
    pub gateway: ObjectKey,
    pub url: url::Url,
    /// The listener port the URL addresses (80 for plain `http://host/`).
    pub port: u16,
    pub split: Option<ExpectedSplit>,
}

/// The split a case expects, derived from the route (or overridden by the suite).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedSplit {
    pub route: ObjectKey,
    pub backends: Vec<ExpectedBackend>,
    pub alpha: f64,
    pub power: f64,
    pub min_detectable_deviation: f64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedBackend {
    /// The Service named in the route's backendRef.
    pub service: String,
    pub weight: u64,
    /// What a response from this backend identifies itself as.
    pub identity: String,
}

impl Suite {
    /// Test names as the harness and reports show them: `suite::case`.
    pub fn case_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.cases
            .iter()
            .map(move |c| format!("{}::{}", self.name, c.name))
    }
}

/// Finds suite files: a directory contributes its `*.yaml`/`*.yml` files (sorted), a
/// file itself. Finding nothing is an error: a typo must not pass silently.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SuiteError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|_| SuiteError::NotFound { path: path.clone() })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            if found.is_empty() {
                return Err(SuiteError::NoSuites { path: path.clone() });
            }
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(SuiteError::NotFound { path: path.clone() });
        }
    }
    Ok(files)
}

/// Loads every suite under `paths`, refusing two suites with the same name.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Suite>, SuiteError> {
    let mut suites: Vec<Suite> = Vec::new();
    for file in discover(paths)? {
        let suite = load_suite(&file)?;
        if let Some(first) = suites.iter().find(|s| s.name == suite.name) {
            return Err(SuiteError::DuplicateSuite {
                name: suite.name.clone(),
                first: SourceLocation::file_start(&first.file),
                second: SourceLocation::file_start(&suite.file),
            });
        }
        suites.push(suite);
    }
    Ok(suites)
}

/// Loads one suite file and everything it names.
pub fn load_suite(path: &Path) -> Result<Suite, SuiteError> {
    let file: Arc<Path> = Arc::from(path.to_path_buf().into_boxed_path());
    let text = read_source(path)?;
    let root = yaml::parse_one(&text).map_err(|err| {
        let position = err
            .location()
            .map_or(yaml::Position { line: 1, column: 1 }, |l| yaml::Position {
                line: l.line() as usize,
                column: l.column() as usize,
            });
        crate::manifest::ManifestError::Yaml {
            location: SourceLocation::new(path, position),
            message: err.without_snippet().to_string(),
        }
    })?;
    let spec: SuiteSpec = decode_located(&root, &file).map_err(|f| SuiteError::Decode {
        location: f.location,
        field: f.field,
        message: f.message,
    })?;
    let at = |field: &str| SourceLocation {
        file: file.clone(),
        position: root.position_of(&yaml::parse_dotted_path(field)),
    };
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };

    let name = match &spec.name {
        Some(name) => name.clone(),
        None => path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("suite")
            .to_string(),
    };
    check_name(&name).map_err(|m| invalid("name", m))?;
    if spec.fixtures.is_empty() {
        return Err(invalid(
            "fixtures",
            "a suite needs at least one fixture file".into(),
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut manifests = Vec::new();
    for (i, fixture) in spec.fixtures.iter().enumerate() {
        let fixture_path = base.join(fixture);
        if !fixture_path.is_file() {
            return Err(invalid(
                &format!("fixtures[{i}]"),
                format!("fixture file {} does not exist", fixture_path.display()),
            ));
        }
        manifests.extend(load_file(&fixture_path)?);
    }
    check_unique(&manifests)?;
    if spec.cases.is_empty() {
        return Err(invalid("cases", "a suite needs at least one case".into()));
    }
    if spec.convergence.consecutive == 0 {
        return Err(invalid(
            "convergence.consecutive",
            "must be at least 1".into(),
        ));
    }

    let mut cases: Vec<Case> = Vec::new();
    for (i, case) in spec.cases.iter().enumerate() {
        let field = |f: &str| format!("cases[{i}].{f}");
        check_name(&case.name).map_err(|m| invalid(&field("name"), m))?;
        if cases.iter().any(|c| c.name == case.name) {
            return Err(invalid(
                &field("name"),
                format!("case `{}` is defined twice in this suite", case.name),
            ));
        }
        cases.push(resolve_case(case, &manifests, &|f| at(&field(f)))?);
    }

    Ok(Suite {
        name,
        file,
        description: spec.description.clone(),
        manifests,
        cases,
        spec,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name `{name}` must be 1-128 characters of letters, digits, `-`, `_` or `.`"
        ))
    }
}

fn resolve_case(
    case: &CaseSpec,
    manifests: &[Manifest],
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<Case, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let gateway =
        parse_ref("Gateway", &case.request.gateway).map_err(|m| invalid("request.gateway", m))?;
    if !manifests.iter().any(|m| m.key() == gateway) {
        return Err(invalid(
            "request.gateway",
            format!("{gateway} is not in the suite's fixtures"),
        ));
    }
    let url = url::Url::parse(&case.request.url).map_err(|err| {
        invalid(
            "request.url",
            format!("invalid URL `{}`: {err}", case.request.url),
        )
    })?;
    if url.scheme() != "http" {
        return Err(invalid(
            "request.url",
            format!("only http URLs are supported, not `{}`", url.scheme()),
        ));
    }
    if url.host_str().is_none() {
        return Err(invalid("request.url", "the URL needs a host".into()));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    http::Method::from_bytes(case.request.method.as_bytes()).map_err(|_| {
        invalid(
            "request.method",
            format!("invalid method `{}`", case.request.method),
        )
    })?;
    for (name, value) in &case.request.headers {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("request.headers", format!("invalid header name `{name}`")))?;
        http::HeaderValue::from_str(value).map_err(|_| {
            invalid(
                "request.headers",
                format!("invalid value for header `{name}`"),
            )
        })?;
    }
    let traffic = &case.traffic;
    if traffic.concurrency == 0 || traffic.concurrency > MAX_CONCURRENCY {
        return Err(invalid(
            "traffic.concurrency",
            format!(
                "must be between 1 and {MAX_CONCURRENCY}, not {}",
                traffic.concurrency
            ),
        ));
    }
    if let Some(requests) = traffic.requests
        && (requests == 0 || requests > MAX_REQUESTS)
    {
        return Err(invalid(
            "traffic.requests",
            format!("must be between 1 and {MAX_REQUESTS}, not {requests}"),
        ));
    }
    if traffic.timeout.is_zero() {
        return Err(invalid("traffic.timeout", "must be more than zero".into()));
    }
    if case.identity.header.is_some() && case.identity.regex.is_some() {
        return Err(invalid(
            "identity",
            "give either `header` or `regex`, not both".into(),
        ));
    }
    if let Some(re) = &case.identity.regex {
        regex::Regex::new(re)
            .map_err(|err| invalid("identity.regex", format!("invalid regex: {err}")))?;
    }
    if case.expect.status.is_none() && case.expect.split.is_none() {
        return Err(invalid(
            "expect",
            "a case needs at least one expectation (`status` or `split`)".into(),
        ));
    }
    if let Some(status) = case.expect.status
        && !(100..=599).contains(&status)
    {
        return Err(invalid(
            "expect.status",
            format!("{status} is not an HTTP status"),
        ));
    }
    let split = match &case.expect.split {
        Some(spec) => Some(resolve_split(spec, manifests, &|f| {
            at(&format!("expect.split.{f}"))
        })?),
        None => None,
    };
    if split.is_none() && traffic.requests.is_none() {
        return Err(invalid(
            "traffic.requests",
            "a case without a split check needs an explicit request count".into(),
        ));
    }
    Ok(Case {
        name: case.name.clone(),
        spec: case.clone(),
        location: at("name"),
        gateway,
        url,
        port,
        split,
    })
}

fn resolve_split(
    spec: &super::model::SplitSpec,
    manifests: &[Manifest],
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedSplit, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    if !(spec.alpha > 0.0 && spec.alpha < 0.5) {
        return Err(invalid(
            "alpha",
            format!("must be in (0, 0.5), not {}", spec.alpha),
        ));
    }
    if !(spec.power > 0.5 && spec.power < 1.0) {
        return Err(invalid(
            "power",
            format!("must be in (0.5, 1), not {}", spec.power),
        ));
    }
    if !(spec.min_detectable_deviation > 0.0 && spec.min_detectable_deviation < 1.0) {
        return Err(invalid(
            "minDetectableDeviation",
            format!("must be in (0, 1), not {}", spec.min_detectable_deviation),
        ));
    }
    let route_key = parse_ref("HTTPRoute", &spec.route).map_err(|m| invalid("route", m))?;
    let route = manifests
        .iter()
        .find(|m| m.key() == route_key)
        .ok_or_else(|| {
            invalid(
                "route",
                format!("{route_key} is not in the suite's fixtures"),
            )
        })?;
    let namespace = route_key.namespace.clone().unwrap_or_default();

    let rule_field = format!("spec.rules[{}].backendRefs", spec.rule);
    let refs = route
        .to_json()
        .pointer(&format!("/spec/rules/{}/backendRefs", spec.rule))
        .cloned()
        .ok_or_else(|| {
            invalid(
                "rule",
                format!("{route_key} has no rule {} with backendRefs", spec.rule),
            )
        })?;
    let refs = refs.as_array().cloned().unwrap_or_default();
    let mut backends = Vec::new();
    for (i, backend_ref) in refs.iter().enumerate() {
        let name = backend_ref
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| {
                route.unsupported(
                    &format!("{rule_field}[{i}].name"),
                    "split check",
                    Some("backendRef without a name".into()),
                )
            })?;
        let kind = backend_ref
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("Service");
        if kind != "Service" {
            return Err(route
                .unsupported(
                    &format!("{rule_field}[{i}].kind"),
                    "split check",
                    Some(format!("backendRef kind {kind}; only Services are checked")),
                )
                .into());
        }
        // Gateway API: weight defaults to 1.
        let weight = backend_ref
            .get("weight")
            .and_then(|w| w.as_u64())
            .unwrap_or(1);
        backends.push(ExpectedBackend {
            service: name.to_string(),
            weight,
            identity: String::new(),
        });
    }
    if let Some(weights) = &spec.weights {
        for (service, weight) in weights {
            match backends.iter_mut().find(|b| &b.service == service) {
                Some(b) => b.weight = *weight,
                None => {
                    return Err(invalid(
                        "weights",
                        format!(
                            "{service} is not a backend of {route_key} rule {}",
                            spec.rule
                        ),
                    ));
                }
            }
        }
    }
    if backends.is_empty() {
        return Err(invalid(
            "rule",
            format!("{route_key} rule {} has no backends", spec.rule),
        ));
    }
    let total: u128 = backends.iter().map(|b| u128::from(b.weight)).sum();
    if total == 0 {
        return Err(invalid(
            if spec.weights.is_some() {
                "weights"
            } else {
                "route"
            },
            "the backend weights sum to 0: no backend can receive traffic".into(),
        ));
    }
    if total > u128::from(u32::MAX) {
        return Err(invalid(
            if spec.weights.is_some() {
                "weights"
            } else {
                "route"
            },
            format!("the backend weights sum to {total}, more than Gateway API's limit"),
        ));
    }
    for backend in &mut backends {
        backend.identity = match spec
            .identities
            .as_ref()
            .and_then(|m| m.get(&backend.service))
        {
            Some(identity) => identity.clone(),
            None => {
                identity_from_fixtures(&backend.service, &namespace, manifests).map_err(|m| {
                    invalid(
                        "identities",
                        format!("{m}; name the identity under `identities` in the suite"),
                    )
                })?
            }
        };
    }
    let mut seen = BTreeMap::new();
    for backend in &backends {
        if let Some(other) = seen.insert(backend.identity.clone(), backend.service.clone()) {
            return Err(invalid(
                "identities",
                format!(
                    "{} and {other} both answer `{}`: their traffic cannot be told apart",
                    backend.service, backend.identity
                ),
            ));
        }
    }
    Ok(ExpectedSplit {
        route: route_key,
        backends,
        alpha: spec.alpha,
        power: spec.power,
        min_detectable_deviation: spec.min_detectable_deviation,
    })
}

/// `namespace/name` (or a bare name in the default namespace) as an object key.
pub fn parse_ref(kind: &str, text: &str) -> Result<ObjectKey, String> {
    let (namespace, name) = match text.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => ("default".to_string(), text.to_string()),
    };
    if namespace.is_empty() || name.is_empty() || name.contains('/') {
        return Err(format!(
            "`{text}` is not a `namespace/name` reference to a {kind}"
        ));
    }
    Ok(ObjectKey {
        kind: kind.to_string(),
        namespace: Some(namespace),
        name,
    })
}

/// What the pods behind a Service answer: the http-echo `-text` of the Deployments
/// whose pod labels match the Service's selector. All of them must agree.
fn identity_from_fixtures(
    service: &str,
    namespace: &str,
    manifests: &[Manifest],
) -> Result<String, String> {
    let svc = manifests
        .iter()
        .find(|m| {
            m.kind == "Service" && m.name == service && m.namespace.as_deref() == Some(namespace)
        })
        .ok_or_else(|| format!("Service {namespace}/{service} is not in the fixtures"))?;
    let svc: Service = svc.decode().map_err(|e| e.to_string())?;
    let selector = svc
        .spec
        .and_then(|s| s.selector)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("Service {namespace}/{service} has no selector"))?;
    let mut texts = Vec::new();
    for m in manifests
        .iter()
        .filter(|m| m.kind == "Deployment" && m.namespace.as_deref() == Some(namespace))
    {
        let deployment: Deployment = m.decode().map_err(|e| e.to_string())?;
        let Some(template) = deployment.spec.map(|s| s.template) else {
            continue;
        };
        let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let args = template
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.args)
            .unwrap_or_default();
        match echo_text(&args) {
            Some(text) => texts.push(text),
            None => {
                return Err(format!(
                    "Deployment {namespace}/{} behind Service {service} has no http-echo `-text` argument",
                    m.name
                ));
            }
        }
    }
    texts.dedup();
    match texts.as_slice() {
        [] => Err(format!(
            "no Deployment in the fixtures matches Service {namespace}/{service}"
        )),
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "the Deployments behind Service {namespace}/{service} answer different texts"
        )),
    }
}

/// The `-text` value of http-echo arguments (`-text=X`, `--text=X` or `-text X`).
fn echo_text(args: &[String]) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let flag = arg.trim_start_matches('-');
        if arg.starts_with('-') {
            if let Some(value) = flag.strip_prefix("text=") {
                return Some(value.to_string());
            }
            if flag == "text" {
                return iter.next().cloned();
            }
        }
    }
    None
}
