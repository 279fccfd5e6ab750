//! Loading suite files: parse, decode with locations, check every reference (fixture
//! files, gateways, routes, services) and resolve what the cases expect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use super::error::SuiteError;
use super::expect::{
    Expectation, ExpectedBackend, ExpectedCircuitBreaking, ExpectedOutlierDetection, ExpectedSplit,
};
use super::model::{CaseSpec, IdentitySpec, OverflowExpectation, SuiteSpec, TlsSpec};
use crate::manifest::{
    Manifest, ObjectKey, SourceLocation, check_unique, decode_located, load_file, read_source, yaml,
};
use crate::traffic::{IdentityRule, TlsOptions};

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
    /// Where the requests enter the mesh.
    pub entry: Entry,
    pub url: url::Url,
    /// The port the URL addresses (80 for plain `http://host/`, 443 for `https://`): a
    /// Gateway listener port, or the Service port.
    pub port: u16,
    /// How an `https://` URL's certificate is verified (default for `http://`).
    pub tls: TlsOptions,
    pub method: http::Method,
    /// How a response names the backend that served it.
    pub identity: IdentityRule,
    /// What the responses must show.
    pub expect: Expectation,
}

/// Where a case's requests enter the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// North-south, through this Gateway.
    Gateway(ObjectKey),
    /// East-west (GAMMA): from an in-mesh client to this Service.
    Service(ObjectKey),
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Gateway(key) | Entry::Service(key) => write!(f, "{key}"),
        }
    }
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
        cases.push(resolve_case(case, &manifests, base, &|f| at(&field(f)))?);
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
    base: &Path,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<Case, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let entry = match (&case.request.gateway, &case.request.service) {
        (Some(gateway), None) => {
            let key = parse_ref("Gateway", gateway).map_err(|m| invalid("request.gateway", m))?;
            if !manifests.iter().any(|m| m.key() == key) {
                return Err(invalid(
                    "request.gateway",
                    format!("{key} is not in the suite's fixtures"),
                ));
            }
            Entry::Gateway(key)
        }
        (None, Some(service)) => {
            let key = parse_ref("Service", service).map_err(|m| invalid("request.service", m))?;
            if !manifests.iter().any(|m| m.key() == key) {
                return Err(invalid(
                    "request.service",
                    format!("{key} is not in the suite's fixtures"),
                ));
            }
            Entry::Service(key)
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "request.service",
                "give either `gateway` (north-south) or `service` (east-west), not both".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                "request",
                "name where requests enter: `gateway: namespace/name` or `service: namespace/name`"
                    .into(),
            ));
        }
    };
    let url = url::Url::parse(&case.request.url).map_err(|err| {
        invalid(
            "request.url",
            format!("invalid URL `{}`: {err}", case.request.url),
        )
    })?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(invalid(
                "request.url",
                format!("only http and https URLs are supported, not `{other}`"),
            ));
        }
    };
    if url.host_str().is_none() {
        return Err(invalid("request.url", "the URL needs a host".into()));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    match &entry {
        Entry::Gateway(gateway) => check_listener(gateway, port, https, manifests)
            .map_err(|m| invalid("request.url", m))?,
        // In the mesh the sidecars add mutual TLS themselves; an app that speaks TLS
        // to a Service turns its traffic into opaque TCP, which an HTTPRoute cannot
        // route, so such a case could only ever test the wrong thing.
        Entry::Service(_) if https => {
            return Err(invalid(
                "request.url",
                "east-west requests are plain http: the sidecars encrypt them with mutual TLS, and TLS from the client would bypass the HTTPRoute".into(),
            ));
        }
        Entry::Service(_) => {}
    }
    let tls = resolve_tls(case.request.tls.as_ref(), https, base, &|f| {
        if f.is_empty() {
            at("request.tls")
        } else {
            at(&format!("request.tls.{f}"))
        }
    })?;
    let method = http::Method::from_bytes(case.request.method.as_bytes()).map_err(|_| {
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
    let identity = resolve_identity(&case.identity, at)?;
    let expect = Expectation::load(&case.expect, traffic.requests.is_some(), manifests, at)?;
    Ok(Case {
        name: case.name.clone(),
        spec: case.clone(),
        location: at("name"),
        entry,
        url,
        port,
        tls,
        method,
        identity,
        expect,
    })
}

/// How a case's responses name their backend: `header`, `regex`, or the body.
fn resolve_identity(
    spec: &IdentitySpec,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<IdentityRule, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    match (&spec.header, &spec.regex) {
        (Some(_), Some(_)) => Err(invalid(
            "identity",
            "give either `header` or `regex`, not both".into(),
        )),
        (Some(header), None) => Ok(IdentityRule::Header(header.clone())),
        (None, Some(re)) => regex::Regex::new(re)
            .map(IdentityRule::BodyRegex)
            .map_err(|err| invalid("identity.regex", format!("invalid regex: {err}"))),
        (None, None) => Ok(IdentityRule::Body),
    }
}

/// The Gateway must listen on the URL's port with the URL's protocol: otherwise every
/// request of the case fails for a reason the suite could have been told up front.
fn check_listener(
    gateway: &ObjectKey,
    port: u16,
    https: bool,
    manifests: &[Manifest],
) -> Result<(), String> {
    let Some(manifest) = manifests.iter().find(|m| m.key() == *gateway) else {
        return Ok(());
    };
    // A Gateway that does not decode is reported by the target with its own location.
    let Ok(decoded) = manifest.decode::<gateway_api::gateways::Gateway>() else {
        return Ok(());
    };
    let wanted = if https { "HTTPS" } else { "HTTP" };
    let listeners = &decoded.spec.listeners;
    if listeners
        .iter()
        .any(|l| l.port == i32::from(port) && l.protocol == wanted)
    {
        return Ok(());
    }
    let have = listeners
        .iter()
        .map(|l| format!("{} ({} {})", l.name, l.protocol, l.port))
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!(
        "{gateway} has no {wanted} listener on port {port}; its listeners: {have}"
    ))
}

/// Certificate verification for a case. `at` locates a field under `request.tls`.
fn resolve_tls(
    spec: Option<&TlsSpec>,
    https: bool,
    base: &Path,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<TlsOptions, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let Some(spec) = spec else {
        return Ok(TlsOptions::default());
    };
    if !https {
        return Err(invalid(
            "",
            "`tls` only applies to https URLs; this case's URL is http".into(),
        ));
    }
    if spec.insecure_skip_verify && spec.ca_file.is_some() {
        return Err(invalid(
            "insecureSkipVerify",
            "give either `caFile` or `insecureSkipVerify`, not both: a CA file means nothing once verification is off".into(),
        ));
    }
    let extra_ca_file = match &spec.ca_file {
        Some(relative) => {
            let path = base.join(relative);
            check_ca_file(&path).map_err(|m| invalid("caFile", m))?;
            Some(path)
        }
        None => None,
    };
    Ok(TlsOptions {
        extra_ca_file,
        insecure_skip_verify: spec.insecure_skip_verify,
    })
}

/// Reads a CA file at load time, so a wrong path or a key file given by mistake is a
/// located suite error rather than a failed case.
fn check_ca_file(path: &Path) -> Result<(), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let bytes = std::fs::read(path)
        .map_err(|err| format!("cannot read CA file {}: {err}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("CA file {} is not valid PEM: {err}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "CA file {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(())
}

pub(super) fn resolve_circuit_breaking(
    spec: &super::model::CircuitBreakingSpec,
    manifests: &[Manifest],
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedCircuitBreaking, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let (service, backend) =
        service_backend(&spec.service, spec.port, manifests).map_err(|m| invalid("service", m))?;
    let rule = destination_rule_for(&service, manifests);
    let limit = |pointer: &str| {
        rule.as_ref()
            .and_then(|r| r.pointer(pointer))
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            // Istio treats 0 as unset.
            .filter(|n| *n > 0)
    };
    let backend_delay = backend.delays.iter().copied().min().flatten();
    if spec.overflow == OverflowExpectation::Required && backend_delay.is_none() {
        return Err(invalid(
            "overflow",
            format!(
                "overflow needs a slow backend: give every Deployment behind {service} an echo `-delay` (e.g. `-delay=500ms`)"
            ),
        ));
    }
    Ok(ExpectedCircuitBreaking {
        cluster: crate::targets::local::cluster_name(
            service.namespace.as_deref().unwrap_or("default"),
            &service.name,
            spec.port,
        ),
        service,
        overflow: spec.overflow,
        backend_delay,
        endpoints: backend.replicas,
        max_connections: limit("/spec/trafficPolicy/connectionPool/tcp/maxConnections"),
        max_pending_requests: limit(
            "/spec/trafficPolicy/connectionPool/http/http1MaxPendingRequests",
        ),
    })
}

pub(super) fn resolve_outlier_detection(
    spec: &super::model::OutlierDetectionSpec,
    manifests: &[Manifest],
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedOutlierDetection, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let (service, backend) =
        service_backend(&spec.service, spec.port, manifests).map_err(|m| invalid("service", m))?;
    let failing: Vec<(u16, u32)> = backend
        .statuses
        .iter()
        .zip(&backend.replica_counts)
        .filter(|(status, _)| **status >= 500)
        .map(|(status, replicas)| (*status, *replicas))
        .collect();
    let Some(&(failing_status, _)) = failing.first() else {
        return Err(invalid(
            "service",
            format!(
                "no Deployment behind {service} answers 5xx: give the failing replicas their own Deployment with an echo `-status-code=500`"
            ),
        ));
    };
    if failing.iter().any(|(status, _)| *status != failing_status) {
        return Err(invalid(
            "service",
            format!("the failing Deployments behind {service} answer different statuses"),
        ));
    }
    let failing_hosts: u32 = failing.iter().map(|(_, n)| n).sum();
    if spec.ejected_hosts > failing_hosts {
        return Err(invalid(
            "ejectedHosts",
            format!(
                "{} hosts cannot be ejected: only {failing_hosts} of the {} behind {service} fail",
                spec.ejected_hosts, backend.replicas
            ),
        ));
    }
    if failing_hosts == backend.replicas {
        return Err(invalid(
            "service",
            format!("every host behind {service} fails: there is nothing healthy to fall back to"),
        ));
    }
    if spec.ejection_timeout.is_zero() {
        return Err(invalid("ejectionTimeout", "must be more than zero".into()));
    }
    let consecutive_5xx = destination_rule_for(&service, manifests)
        .and_then(|r| {
            r.pointer("/spec/trafficPolicy/outlierDetection/consecutive5xxErrors")
                .and_then(serde_json::Value::as_u64)
        })
        .and_then(|n| u32::try_from(n).ok());
    Ok(ExpectedOutlierDetection {
        cluster: crate::targets::local::cluster_name(
            service.namespace.as_deref().unwrap_or("default"),
            &service.name,
            spec.port,
        ),
        service,
        ejected_hosts: spec.ejected_hosts,
        ejection_timeout: spec.ejection_timeout,
        hosts: backend.replicas,
        failing_hosts,
        failing_status,
        consecutive_5xx,
    })
}

/// What the fixtures run behind a Service port: per Deployment its replicas, echo
/// status and delay.
struct ServiceBackend {
    replicas: u32,
    replica_counts: Vec<u32>,
    statuses: Vec<u16>,
    delays: Vec<Option<std::time::Duration>>,
}

/// Resolves a `namespace/name` Service reference and what runs behind its port.
fn service_backend(
    reference: &str,
    port: u16,
    manifests: &[Manifest],
) -> Result<(ObjectKey, ServiceBackend), String> {
    let service = parse_ref("Service", reference)?;
    let backend = backend_behind(&service, port, manifests)?;
    Ok((service, backend))
}

fn backend_behind(
    service: &ObjectKey,
    port: u16,
    manifests: &[Manifest],
) -> Result<ServiceBackend, String> {
    let namespace = service.namespace.clone().unwrap_or_default();
    let manifest = manifests
        .iter()
        .find(|m| m.key() == *service)
        .ok_or_else(|| format!("{service} is not in the suite's fixtures"))?;
    let decoded: Service = manifest.decode().map_err(|e| e.to_string())?;
    let spec = decoded.spec.unwrap_or_default();
    if !spec
        .ports
        .iter()
        .flatten()
        .any(|p| i32::from(port) == p.port)
    {
        return Err(format!("{service} has no port {port}"));
    }
    let selector = spec
        .selector
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{service} has no selector"))?;
    let mut backend = ServiceBackend {
        replicas: 0,
        replica_counts: Vec::new(),
        statuses: Vec::new(),
        delays: Vec::new(),
    };
    for m in manifests
        .iter()
        .filter(|m| m.kind == "Deployment" && m.namespace.as_deref() == Some(namespace.as_str()))
    {
        let deployment: Deployment = m.decode().map_err(|e| e.to_string())?;
        let Some(spec) = deployment.spec else {
            continue;
        };
        let labels = spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .unwrap_or_default();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let args = spec
            .template
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.args)
            .unwrap_or_default();
        let echo = crate::echo::EchoArgs::parse(args).map_err(|err| {
            format!(
                "Deployment {} behind {service} has no valid http-echo arguments: {err}",
                m.key()
            )
        })?;
        let replicas = spec
            .replicas
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1);
        backend.replicas += replicas;
        backend.replica_counts.push(replicas);
        backend.statuses.push(echo.status.as_u16());
        backend
            .delays
            .push((!echo.delay.is_zero()).then_some(echo.delay));
    }
    if backend.replicas == 0 {
        return Err(format!(
            "no Deployment replica in the fixtures is behind {service}"
        ));
    }
    Ok(backend)
}

/// The DestinationRule of the fixtures whose host names the Service (short, namespaced
/// or fully qualified), as JSON.
fn destination_rule_for(service: &ObjectKey, manifests: &[Manifest]) -> Option<serde_json::Value> {
    let namespace = service.namespace.as_deref().unwrap_or("default");
    let names = [
        service.name.clone(),
        format!("{}.{namespace}", service.name),
        format!("{}.{namespace}.svc.cluster.local", service.name),
    ];
    manifests
        .iter()
        .filter(|m| m.kind == "DestinationRule")
        .map(Manifest::to_json)
        .find(|rule| {
            let host = rule
                .pointer("/spec/host")
                .and_then(|h| h.as_str())
                .unwrap_or_default();
            let rule_namespace = rule
                .pointer("/metadata/namespace")
                .and_then(|n| n.as_str())
                .unwrap_or("default");
            // A short host is relative to the rule's own namespace.
            names.iter().any(|n| n == host) && (host.contains('.') || rule_namespace == namespace)
        })
}

pub(super) fn resolve_split(
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
