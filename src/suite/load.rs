//! Loading suite files: parse, decode with locations, check every reference (fixture
//! files, gateways, routes, services) and resolve what the cases expect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::SuiteError;
use super::model::{CaseSpec, OverflowExpectation, SuiteSpec, TlsSpec};
use crate::echo::{EchoArgs, EchoError};
use crate::fixtures::{Fixtures, istio};
use crate::manifest::{
    Manifest, ManifestError, ObjectKey, SourceLocation, decode_located, load_file, read_source,
    yaml,
};
use crate::traffic::TlsOptions;

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
    /// The fixture objects as read, in file order: what the kube target applies.
    pub manifests: Vec<Manifest>,
    /// The same objects indexed and decoded: what cases and targets read facts from.
    pub fixtures: Fixtures,
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
    pub split: Option<ExpectedSplit>,
    pub circuit_breaking: Option<ExpectedCircuitBreaking>,
    pub outlier_detection: Option<ExpectedOutlierDetection>,
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

/// A circuit-breaking expectation with what the fixtures say about the limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedCircuitBreaking {
    pub service: ObjectKey,
    /// Istio's Envoy cluster name for the Service port.
    pub cluster: String,
    pub overflow: OverflowExpectation,
    /// The shortest echo `-delay` among the Service's pods: every request the backend
    /// serves takes at least this long.
    pub backend_delay: Option<std::time::Duration>,
    /// Pods behind the Service (sum of the Deployments' replicas).
    pub endpoints: u32,
    /// The DestinationRule's `tcp.maxConnections`, if any.
    pub max_connections: Option<u32>,
    /// The DestinationRule's `http.http1MaxPendingRequests`, if any.
    pub max_pending_requests: Option<u32>,
}

/// An outlier-detection expectation with what the fixtures say about the hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedOutlierDetection {
    pub service: ObjectKey,
    pub cluster: String,
    pub ejected_hosts: u32,
    pub ejection_timeout: std::time::Duration,
    /// Pods behind the Service.
    pub hosts: u32,
    /// Pods that answer 5xx (their echo `-status-code`).
    pub failing_hosts: u32,
    pub failing_status: u16,
    /// The DestinationRule's `consecutive5xxErrors`, if any.
    pub consecutive_5xx: Option<u32>,
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
    let fixtures = Fixtures::new(&manifests)?;
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
        cases.push(resolve_case(case, &fixtures, base, &|f| at(&field(f)))?);
    }

    Ok(Suite {
        name,
        file,
        description: spec.description.clone(),
        manifests,
        fixtures,
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
    fixtures: &Fixtures,
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
            if fixtures.gateway(&key).is_none() {
                return Err(invalid(
                    "request.gateway",
                    format!("{key} is not in the suite's fixtures"),
                ));
            }
            Entry::Gateway(key)
        }
        (None, Some(service)) => {
            let key = parse_ref("Service", service).map_err(|m| invalid("request.service", m))?;
            if fixtures.service(&key).is_none() {
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
        Entry::Gateway(gateway) => {
            check_listener(gateway, port, https, fixtures).map_err(|m| invalid("request.url", m))?
        }
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
    let expect = &case.expect;
    if expect.status.is_none()
        && expect.split.is_none()
        && expect.circuit_breaking.is_none()
        && expect.outlier_detection.is_none()
    {
        return Err(invalid(
            "expect",
            "a case needs at least one expectation (`status`, `split`, `circuitBreaking` or `outlierDetection`)".into(),
        ));
    }
    // A policy check classifies every response itself (overflowed 503s, a failing
    // host's 5xx): a blanket status or a split would contradict it.
    for (present, field) in [
        (expect.circuit_breaking.is_some(), "circuitBreaking"),
        (expect.outlier_detection.is_some(), "outlierDetection"),
    ] {
        let others = usize::from(expect.status.is_some())
            + usize::from(expect.split.is_some())
            + usize::from(expect.circuit_breaking.is_some())
            + usize::from(expect.outlier_detection.is_some());
        if present && others > 1 {
            return Err(invalid(
                &format!("expect.{field}"),
                format!("`{field}` stands alone: it cannot be combined with other expectations"),
            ));
        }
    }
    if let Some(status) = case.expect.status
        && !(100..=599).contains(&status)
    {
        return Err(invalid(
            "expect.status",
            format!("{status} is not an HTTP status"),
        ));
    }
    // Whose view of the mesh applies a DestinationRule: the gateway's, or the in-mesh
    // client's, which runs in the entry Service's namespace.
    let client_namespace = match &entry {
        Entry::Gateway(key) | Entry::Service(key) => key.namespace.clone().unwrap_or_default(),
    };
    let split = match &case.expect.split {
        Some(spec) => Some(resolve_split(spec, fixtures, &|f| {
            at(&format!("expect.split.{f}"))
        })?),
        None => None,
    };
    let circuit_breaking = match &expect.circuit_breaking {
        Some(spec) => Some(resolve_circuit_breaking(
            spec,
            fixtures,
            &client_namespace,
            &|f| at(&format!("expect.circuitBreaking.{f}")),
        )?),
        None => None,
    };
    let outlier_detection = match &expect.outlier_detection {
        Some(spec) => Some(resolve_outlier_detection(
            spec,
            fixtures,
            &client_namespace,
            &|f| at(&format!("expect.outlierDetection.{f}")),
        )?),
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
        entry,
        url,
        port,
        tls,
        split,
        circuit_breaking,
        outlier_detection,
    })
}

/// The Gateway must listen on the URL's port with the URL's protocol: otherwise every
/// request of the case fails for a reason the suite could have been told up front.
fn check_listener(
    gateway: &ObjectKey,
    port: u16,
    https: bool,
    fixtures: &Fixtures,
) -> Result<(), String> {
    let Some(gateway_fixture) = fixtures.gateway(gateway) else {
        return Ok(());
    };
    let wanted = if https { "HTTPS" } else { "HTTP" };
    if gateway_fixture.listens(port, wanted) {
        return Ok(());
    }
    let have = gateway_fixture
        .listeners()
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

fn resolve_circuit_breaking(
    spec: &super::model::CircuitBreakingSpec,
    fixtures: &Fixtures,
    client_namespace: &str,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedCircuitBreaking, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let service = parse_ref("Service", &spec.service).map_err(|m| invalid("service", m))?;
    let pods = pods_behind(fixtures, &service, spec.port).map_err(|m| invalid("service", m))?;
    let pool = fixtures
        .destination_rule_for(&service, client_namespace)
        .and_then(|rule| rule.connection_pool());
    // Istio treats 0 as unset.
    let limit = |n: Option<u32>| n.filter(|n| *n > 0);
    // Every request is at least as slow as the fastest pod; a pod without a delay
    // makes the backend fast.
    let backend_delay = pods
        .iter()
        .map(|p| (!p.echo.delay.is_zero()).then_some(p.echo.delay))
        .min()
        .flatten();
    if spec.overflow == OverflowExpectation::Required && backend_delay.is_none() {
        return Err(invalid(
            "overflow",
            format!(
                "overflow needs a slow backend: give every Deployment behind {service} an echo `-delay` (e.g. `-delay=500ms`)"
            ),
        ));
    }
    Ok(ExpectedCircuitBreaking {
        cluster: cluster_name(&service, spec.port),
        service,
        overflow: spec.overflow,
        backend_delay,
        endpoints: pods.iter().map(|p| p.replicas).sum(),
        max_connections: limit(
            pool.and_then(|p| p.tcp.as_ref())
                .and_then(|tcp| tcp.max_connections),
        ),
        max_pending_requests: limit(
            pool.and_then(|p| p.http.as_ref())
                .and_then(|http| http.http1_max_pending_requests),
        ),
    })
}

fn resolve_outlier_detection(
    spec: &super::model::OutlierDetectionSpec,
    fixtures: &Fixtures,
    client_namespace: &str,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<ExpectedOutlierDetection, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let service = parse_ref("Service", &spec.service).map_err(|m| invalid("service", m))?;
    let pods = pods_behind(fixtures, &service, spec.port).map_err(|m| invalid("service", m))?;
    let hosts: u32 = pods.iter().map(|p| p.replicas).sum();
    let failing: Vec<(u16, u32)> = pods
        .iter()
        .map(|p| (p.echo.status.as_u16(), p.replicas))
        .filter(|(status, _)| *status >= 500)
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
                spec.ejected_hosts, hosts
            ),
        ));
    }
    if failing_hosts == hosts {
        return Err(invalid(
            "service",
            format!("every host behind {service} fails: there is nothing healthy to fall back to"),
        ));
    }
    if spec.ejection_timeout.is_zero() {
        return Err(invalid("ejectionTimeout", "must be more than zero".into()));
    }
    let consecutive_5xx = fixtures
        .destination_rule_for(&service, client_namespace)
        .and_then(|rule| rule.outlier_detection())
        .and_then(|o| o.consecutive_5xx_errors);
    Ok(ExpectedOutlierDetection {
        cluster: cluster_name(&service, spec.port),
        service,
        ejected_hosts: spec.ejected_hosts,
        ejection_timeout: spec.ejection_timeout,
        hosts,
        failing_hosts,
        failing_status,
        consecutive_5xx,
    })
}

/// Istio's cluster for a Service port the suite names.
fn cluster_name(service: &ObjectKey, port: u16) -> String {
    istio::cluster_name(
        service
            .namespace
            .as_deref()
            .unwrap_or(istio::DEFAULT_NAMESPACE),
        &service.name,
        port,
    )
}

/// One Deployment behind a Service port, as a policy check needs it.
struct Pods {
    replicas: u32,
    echo: EchoArgs,
}

/// The pods behind a Service port the suite names, per Deployment; there must be at
/// least one, each with valid http-echo arguments.
fn pods_behind(fixtures: &Fixtures, service: &ObjectKey, port: u16) -> Result<Vec<Pods>, String> {
    let backend = fixtures
        .backend(service, port)
        .map_err(|err| err.to_string())?;
    let mut pods = Vec::new();
    for workload in backend.workloads {
        let echo = workload.echo_args().map_err(|err| {
            format!(
                "Deployment {} behind {service} has no valid http-echo arguments: {err}",
                workload.key()
            )
        })?;
        pods.push(Pods {
            replicas: workload.replicas().map_err(|err| err.to_string())?,
            echo,
        });
    }
    if pods.iter().map(|p| p.replicas).sum::<u32>() == 0 {
        return Err(format!(
            "no Deployment replica in the fixtures is behind {service}"
        ));
    }
    Ok(pods)
}

fn resolve_split(
    spec: &super::model::SplitSpec,
    fixtures: &Fixtures,
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
    let route = fixtures.route(&route_key).ok_or_else(|| {
        invalid(
            "route",
            format!("{route_key} is not in the suite's fixtures"),
        )
    })?;
    let namespace = route_key.namespace.clone().unwrap_or_default();

    let rule_field = format!("spec.rules[{}].backendRefs", spec.rule);
    let rule = route.rules.get(spec.rule).ok_or_else(|| {
        invalid(
            "rule",
            format!("{route_key} has no rule {} with backendRefs", spec.rule),
        )
    })?;
    let mut backends = Vec::new();
    for (i, backend_ref) in rule.backend_refs.iter().enumerate() {
        if !backend_ref.is_service() {
            return Err(route
                .manifest
                .unsupported(
                    &format!("{rule_field}[{i}].kind"),
                    "split check",
                    Some(format!(
                        "backendRef kind {}; only Services are checked",
                        backend_ref.group_kind()
                    )),
                )
                .into());
        }
        let weight_field = format!("{rule_field}[{i}].weight");
        let weight = u64::try_from(backend_ref.weight).map_err(|_| ManifestError::Invalid {
            location: route.manifest.location_of(&weight_field),
            message: format!(
                "{}: field `{weight_field}`: {} is negative",
                route.manifest.object_name(),
                backend_ref.weight
            ),
        })?;
        backends.push(ExpectedBackend {
            service: backend_ref.name.clone(),
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
                identity_from_fixtures(&backend.service, &namespace, fixtures).map_err(|m| {
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
    fixtures: &Fixtures,
) -> Result<String, String> {
    let key = ObjectKey {
        kind: "Service".into(),
        namespace: Some(namespace.to_string()),
        name: service.to_string(),
    };
    let found = fixtures
        .service(&key)
        .ok_or_else(|| crate::fixtures::LookupError::Missing(key.clone()).to_string())?;
    if found.selector.is_empty() {
        return Err(crate::fixtures::LookupError::NoSelector(key).to_string());
    }
    let mut texts = Vec::new();
    for (_, workload) in fixtures.workloads_selected_by(found) {
        match workload.echo_args() {
            Ok(echo) => texts.push(echo.text),
            Err(EchoError::MissingText) => {
                return Err(format!(
                    "Deployment {namespace}/{} behind Service {service} has no http-echo `-text` argument",
                    workload.manifest.name
                ));
            }
            Err(err) => {
                return Err(format!(
                    "Deployment {namespace}/{} behind Service {service} has no valid http-echo arguments: {err}",
                    workload.manifest.name
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
