//! Loading suite files: parse, decode with locations, check every reference (fixture
//! files, gateways, routes, services) and resolve what the cases expect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::conformance::Conformance;
use super::error::SuiteError;
use super::expect::load_websocket_messages;
use super::expect::{Expectation, ExpectedConditions, LoadContext, StatusTarget};
use super::model::{
    CaseSpec, IdentitySpec, ProtocolSpec, RequestSpec, SuiteSpec, TlsSpec, TrafficSpec,
};
use crate::fixtures::Fixtures;
use crate::manifest::{
    DEFAULT_NAMESPACE, Manifest, ObjectKey, SourceLocation, decode_located, load_file, read_source,
    yaml,
};
use crate::traffic::{HttpVersion, IdentityRule, TlsOptions, WebSocketMessage};

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
    /// The conformance test the suite stands for (its `conformance:` key).
    pub conformance: Option<Conformance>,
    /// Where `readiness.timeout` is written; `None` when the suite keeps the default.
    /// A target that runs out of it points there.
    pub readiness_timeout_at: Option<SourceLocation>,
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
    /// The HTTP version spoken to the entry (`request.protocol`).
    pub version: HttpVersion,
    /// For a `ws://` or `wss://` URL, what each WebSocket session sends; empty
    /// otherwise.
    pub websocket_messages: Vec<WebSocketMessage>,
    /// How a response names the backend that served it.
    pub identity: IdentityRule,
    /// What the responses must show.
    pub expect: Expectation,
    /// The status conditions to check before any traffic (`expect.conditions`).
    pub conditions: Option<ExpectedConditions>,
    /// The objects the case applies before it runs (`apply`), in file order.
    pub apply: Vec<Manifest>,
    /// The fixtures as the case meets them, when its own `apply` or an earlier case's
    /// edited them; `None` when they are the suite's as loaded.
    pub edited_fixtures: Option<Arc<Fixtures>>,
}

impl Case {
    /// Whether the case sends requests: not when its only expectation is
    /// `conditions`.
    pub fn sends_traffic(&self) -> bool {
        !matches!(self.expect, Expectation::StatusOnly)
    }

    /// The fixtures as this case meets them: the suite's, with every `apply` up to and
    /// including this case's over them.
    pub fn fixtures<'a>(&'a self, suite: &'a Suite) -> &'a Fixtures {
        self.edited_fixtures.as_deref().unwrap_or(&suite.fixtures)
    }
}

/// Where a case's requests enter the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// North-south, through this Gateway.
    Gateway(ObjectKey),
    /// East-west (GAMMA): from an in-mesh client running in namespace `from` to
    /// this Service.
    Service { service: ObjectKey, from: String },
    /// East-west to one pod of this Deployment at the pod's own address, past any
    /// Service, from an in-mesh client running in namespace `from`.
    Pod { deployment: ObjectKey, from: String },
}

impl Entry {
    /// East-west from a client in the Service's own namespace, where the kube target
    /// places its in-mesh client unless a case says `request.from`.
    pub fn service(service: ObjectKey) -> Entry {
        let from = service.namespace_or_default().to_owned();
        Entry::Service { service, from }
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Gateway(key)
            | Entry::Service { service: key, .. }
            | Entry::Pod {
                deployment: key, ..
            } => write!(f, "{key}"),
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
    let conformance = spec
        .conformance
        .as_ref()
        .map(|c| {
            Conformance::resolve(c)
                .map_err(|(field, message)| invalid(&format!("conformance.{field}"), message))
        })
        .transpose()?;
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
    // Whose in-mesh clients call Services: their DestinationRule lookups count for
    // the local target's clusters and for lint, as a proxy's do. A reference that does
    // not parse is refused with its location when its case loads.
    let callers: Vec<String> = spec
        .cases
        .iter()
        .filter_map(|case| case.request.as_ref())
        .filter_map(|request| {
            let service = request.service.as_deref()?;
            match &request.from {
                Some(from) => Some(from.clone()),
                None => parse_ref("Service", service)
                    .ok()
                    .map(|key| key.namespace_or_default().to_owned()),
            }
        })
        .collect();
    let fixtures = Fixtures::new(&manifests)?.with_callers(callers);
    if spec.cases.is_empty() {
        return Err(invalid("cases", "a suite needs at least one case".into()));
    }
    if spec.convergence.consecutive == 0 {
        return Err(invalid(
            "convergence.consecutive",
            "must be at least 1".into(),
        ));
    }

    let readiness_timeout_at = root
        .get("readiness")
        .and_then(|readiness| readiness.get("timeout"))
        .is_some()
        .then(|| at("readiness.timeout"));

    let mut cases: Vec<Case> = Vec::new();
    // The fixtures as the cases so far have edited them.
    let mut edited: Option<Arc<Fixtures>> = None;
    for (i, case) in spec.cases.iter().enumerate() {
        let field = |f: &str| format!("cases[{i}].{f}");
        check_name(&case.name).map_err(|m| invalid(&field("name"), m))?;
        if cases.iter().any(|c| c.name == case.name) {
            return Err(invalid(
                &field("name"),
                format!("case `{}` is defined twice in this suite", case.name),
            ));
        }
        let apply = load_edit(&case.apply, base, &|f| at(&field(&format!("apply{f}"))))?;
        if !apply.is_empty() {
            let before = edited.as_deref().unwrap_or(&fixtures);
            edited = Some(Arc::new(before.edited(&apply)?));
        }
        let meets = edited.as_deref().unwrap_or(&fixtures);
        let mut resolved = resolve_case(case, meets, base, &|f| at(&field(f)))?;
        resolved.apply = apply;
        resolved.edited_fixtures = edited.clone();
        cases.push(resolved);
    }

    Ok(Suite {
        name,
        file,
        conformance,
        description: spec.description.clone(),
        manifests,
        fixtures,
        cases,
        readiness_timeout_at,
        spec,
    })
}

/// The kinds a case's `apply` may edit: the control plane's view of them is what the
/// Gateway API tests edit mid-test (generation bumps, listeners added and removed),
/// and a target takes them in place. Workloads and Services stay as the fixtures
/// bring them up.
const EDITABLE_KINDS: [crate::manifest::GroupKind<'static>; 3] = [
    crate::manifest::GroupKind::GATEWAY,
    crate::manifest::GroupKind::GATEWAY_CLASS,
    crate::manifest::GroupKind::HTTP_ROUTE,
];

/// Reads a case's `apply` files (relative to the suite file).
fn load_edit(
    files: &[String],
    base: &Path,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<Vec<Manifest>, SuiteError> {
    let mut objects = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let path = base.join(file);
        if !path.is_file() {
            return Err(SuiteError::Invalid {
                location: at(&format!("[{i}]")),
                message: format!("manifest file {} does not exist", path.display()),
            });
        }
        for object in load_file(&path)? {
            if !EDITABLE_KINDS.iter().any(|kind| object.is(*kind)) {
                return Err(SuiteError::Invalid {
                    location: object.location(),
                    message: format!(
                        "{}: a case's `apply` edits Gateways, HTTPRoutes and GatewayClasses only; put other objects in the suite's `fixtures`",
                        object.key()
                    ),
                });
            }
            objects.push(object);
        }
    }
    Ok(objects)
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
    let conditions = case
        .expect
        .conditions
        .as_deref()
        .map(|specs| {
            ExpectedConditions::load(specs, fixtures, &|f| at(&format!("expect.conditions{f}")))
        })
        .transpose()?;
    let Some(request) = &case.request else {
        return resolve_status_case(case, conditions, at);
    };
    let entry = resolve_entry(request, fixtures, at)?;
    let url = url::Url::parse(&request.url).map_err(|err| {
        invalid(
            "request.url",
            format!("invalid URL `{}`: {err}", request.url),
        )
    })?;
    let (https, websocket) = match url.scheme() {
        "http" => (false, false),
        "https" => (true, false),
        "ws" => (false, true),
        "wss" => (true, true),
        other => {
            return Err(invalid(
                "request.url",
                format!("only http, https, ws and wss URLs are supported, not `{other}`"),
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
        Entry::Service { .. } | Entry::Pod { .. } if https => {
            return Err(invalid(
                "request.url",
                "east-west requests are plain http: the sidecars encrypt them with mutual TLS, and TLS from the client would bypass the HTTPRoute".into(),
            ));
        }
        // The in-mesh client is curl, which speaks no WebSocket.
        Entry::Service { .. } | Entry::Pod { .. } if websocket => {
            return Err(invalid(
                "request.url",
                "WebSocket requests go through a gateway: the in-mesh client cannot open a WebSocket session".into(),
            ));
        }
        Entry::Service { .. } => {}
        Entry::Pod { .. } if url.host_str() != Some(POD_IP_HOST) => {
            return Err(invalid(
                "request.url",
                format!(
                    "with `pod`, the URL's host is `{POD_IP_HOST}`: the request goes to the address of one of the Deployment's pods, which only the target knows"
                ),
            ));
        }
        Entry::Pod { .. } => {}
    }
    let version = match request.protocol {
        ProtocolSpec::Http1 => HttpVersion::Http1,
        ProtocolSpec::Http2 if websocket => {
            return Err(invalid(
                "request.protocol",
                "a WebSocket session is upgraded from HTTP/1.1 (RFC 6455): `HTTP/2` does not apply to a ws:// or wss:// URL".into(),
            ));
        }
        ProtocolSpec::Http2 => HttpVersion::Http2,
    };
    let websocket_messages = match (&request.websocket, websocket) {
        (Some(_), false) => {
            return Err(invalid(
                "request.websocket",
                "`websocket` needs a ws:// or wss:// URL".into(),
            ));
        }
        (Some(spec), true) => Some(load_websocket_messages(&spec.messages, &|f| {
            at(&format!("request.websocket.messages{f}"))
        })?),
        (None, true) => Some(Vec::new()),
        (None, false) => None,
    };
    let tls = resolve_tls(request.tls.as_ref(), https, base, &|f| {
        if f.is_empty() {
            at("request.tls")
        } else {
            at(&format!("request.tls.{f}"))
        }
    })?;
    let method = http::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        invalid(
            "request.method",
            format!("invalid method `{}`", request.method),
        )
    })?;
    if websocket && method != http::Method::GET {
        return Err(invalid(
            "request.method",
            format!(
                "a WebSocket session opens with a GET (RFC 6455), not {}",
                request.method
            ),
        ));
    }
    for (name, value) in &request.headers {
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
    check_traffic(traffic, at)?;
    let given_identity = resolve_identity(&case.identity, at)?;
    // Whose view of the mesh applies a DestinationRule: the gateway's, or the in-mesh
    // client's, which runs in the namespace it is called from.
    let client_namespace = match &entry {
        Entry::Gateway(key) => key.namespace.clone().unwrap_or_default(),
        Entry::Service { from, .. } | Entry::Pod { from, .. } => from.clone(),
    };
    let context = LoadContext {
        fixtures,
        client_namespace: &client_namespace,
        has_request_count: traffic.requests.is_some(),
        entry: &entry,
        request_url: &url,
        request_timeout: traffic.timeout,
        has_conditions: conditions.is_some(),
        websocket_messages: websocket_messages.as_deref(),
    };
    let expect = Expectation::load(&case.expect, &context, at)?;
    // Which echo-basic backend answered is read from its JSON body: the default rule
    // when the expectations need it, and one a case cannot swap for another.
    let identity = match (given_identity, expect.reads_echo_basic_identity()) {
        (Some(_), true) => {
            return Err(invalid(
                "identity",
                "the expectations read which echo-basic pod answered from its JSON body (`servedBy`, or a split between echo-basic Services): remove `identity`, or give the split's `identities`".into(),
            ));
        }
        (Some(rule), false) => rule,
        (None, true) => IdentityRule::EchoBasic,
        (None, false) => IdentityRule::Body,
    };
    Ok(Case {
        apply: Vec::new(),
        edited_fixtures: None,
        name: case.name.clone(),
        spec: case.clone(),
        location: at("name"),
        entry,
        url,
        port,
        tls,
        method,
        version,
        websocket_messages: websocket_messages.unwrap_or_default(),
        identity,
        expect,
        conditions,
    })
}

/// A case without `request`: it checks status conditions and sends nothing. Its entry
/// and URL are placeholders no request ever goes to.
fn resolve_status_case(
    case: &CaseSpec,
    conditions: Option<ExpectedConditions>,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<Case, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    let Some(conditions) = conditions else {
        return Err(invalid(
            "request",
            "a case needs a `request`, unless its only expectation is `conditions`".into(),
        ));
    };
    let expect = &case.expect;
    let traffic_keys = [
        ("status", expect.status.is_some()),
        ("split", expect.split.is_some()),
        ("servedBy", expect.served_by.is_some()),
        ("request", expect.request.is_some()),
        ("response", expect.response.is_some()),
        ("redirect", expect.redirect.is_some()),
        ("timeout", expect.timeout.is_some()),
        ("mirror", expect.mirror.is_some()),
        ("circuitBreaking", expect.circuit_breaking.is_some()),
        ("outlierDetection", expect.outlier_detection.is_some()),
        ("websocket", expect.websocket.is_some()),
    ];
    if let Some((key, _)) = traffic_keys.iter().find(|(_, given)| *given) {
        return Err(invalid(
            &format!("expect.{key}"),
            format!("`{key}` judges responses, and a case without `request` sends none"),
        ));
    }
    // The placeholder entry is the first Gateway (or GAMMA Service) the checks are
    // about, so that what reports show next to the case is one of its objects.
    let Some(entry) = conditions.objects.first().map(|o| match &o.target {
        StatusTarget::RouteParent { parent, .. } if parent.kind == "Service" => {
            Entry::service(parent.clone())
        }
        StatusTarget::RouteParent { parent, .. } => Entry::Gateway(parent.clone()),
        StatusTarget::Gateway(gateway) | StatusTarget::Listener { gateway, .. } => {
            Entry::Gateway(gateway.clone())
        }
        // No traffic enters through a class; the key still names the case's object.
        StatusTarget::GatewayClass(class) => Entry::Gateway(class.clone()),
    }) else {
        return Err(invalid("expect.conditions", "no status to check".into()));
    };
    Ok(Case {
        apply: Vec::new(),
        edited_fixtures: None,
        name: case.name.clone(),
        spec: case.clone(),
        location: at("name"),
        entry,
        url: url::Url::parse("http://no-traffic.invalid/")
            .map_err(|err| invalid("expect.conditions", format!("placeholder URL: {err}")))?,
        port: 80,
        tls: TlsOptions::default(),
        method: http::Method::GET,
        version: HttpVersion::Http1,
        websocket_messages: Vec::new(),
        identity: IdentityRule::Body,
        expect: Expectation::StatusOnly,
        conditions: Some(conditions),
    })
}

/// Where a case's requests enter: a Gateway or a Service of the fixtures.
fn resolve_entry(
    request: &RequestSpec,
    fixtures: &Fixtures,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<Entry, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    // A client in the target's own namespace is where the kube target places it
    // anyway: `from` naming it is held to no more than leaving it out.
    let client_namespace = |own: &str| -> Result<String, SuiteError> {
        match &request.from {
            None => Ok(own.to_owned()),
            Some(from) if from == own => Ok(own.to_owned()),
            Some(from) => {
                check_client_namespace(from, fixtures).map_err(|m| invalid("request.from", m))?;
                Ok(from.clone())
            }
        }
    };
    let entry = match (&request.gateway, &request.service, &request.pod) {
        (Some(_), None, None) if request.from.is_some() => {
            return Err(invalid(
                "request.from",
                "`from` places the in-mesh client of an east-west case (`service`); requests through a gateway come from outside the mesh".into(),
            ));
        }
        (Some(gateway), None, None) => {
            let key = parse_ref("Gateway", gateway).map_err(|m| invalid("request.gateway", m))?;
            if fixtures.gateway(&key).is_none() {
                return Err(invalid(
                    "request.gateway",
                    format!("{key} is not in the suite's fixtures"),
                ));
            }
            Entry::Gateway(key)
        }
        (None, Some(service), None) => {
            let key = parse_ref("Service", service).map_err(|m| invalid("request.service", m))?;
            if fixtures.service(&key).is_none() {
                return Err(invalid(
                    "request.service",
                    format!("{key} is not in the suite's fixtures"),
                ));
            }
            let from = client_namespace(key.namespace_or_default())?;
            Entry::Service { service: key, from }
        }
        (None, None, Some(pod)) => {
            let key = parse_ref("Deployment", pod).map_err(|m| invalid("request.pod", m))?;
            if fixtures.workload(&key).is_none() {
                return Err(invalid(
                    "request.pod",
                    format!("{key} is not in the suite's fixtures"),
                ));
            }
            let from = client_namespace(key.namespace_or_default())?;
            Entry::Pod {
                deployment: key,
                from,
            }
        }
        (Some(_), Some(_), None) => {
            return Err(invalid(
                "request.service",
                "give either `gateway` (north-south) or `service` (east-west), not both".into(),
            ));
        }
        (None, None, None) => {
            return Err(invalid(
                "request",
                "name where requests enter: `gateway: namespace/name`, `service: namespace/name` or `pod: namespace/deployment`"
                    .into(),
            ));
        }
        (_, _, Some(_)) => {
            return Err(invalid(
                "request.pod",
                "give one of `gateway` (north-south), `service` and `pod` (east-west)".into(),
            ));
        }
    };
    Ok(entry)
}

/// The URL host of a call to a pod (`request.pod`): the target puts the pod's address
/// in its place.
pub const POD_IP_HOST: &str = "pod-ip";

/// `request.from`: a namespace of the fixtures where a pod gets Istio's sidecar, as the
/// in-mesh client must to be in the mesh (on a cluster meshcheck runs its client pod
/// there, with no injection labels of its own).
fn check_client_namespace(from: &str, fixtures: &Fixtures) -> Result<(), String> {
    if fixtures.namespaces().iter().all(|n| n.name != from) {
        return Err(format!(
            "namespace `{from}` is not in the suite's fixtures: the in-mesh client runs in a Namespace the fixtures declare"
        ));
    }
    if !fixtures.namespace_injects(from) {
        return Err(format!(
            "namespace `{from}` has no label that injects Istio's sidecar (`istio-injection: enabled` or `istio.io/rev: default`), so a client there is not in the mesh"
        ));
    }
    Ok(())
}

/// The bounds of a case's traffic settings.
fn check_traffic(
    traffic: &TrafficSpec,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<(), SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
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
    Ok(())
}

/// How a case's responses name their backend, when the case says: `header` or
/// `regex`. `None` leaves it to the expectations (the body, or echo-basic's JSON).
fn resolve_identity(
    spec: &IdentitySpec,
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<Option<IdentityRule>, SuiteError> {
    let invalid = |field: &str, message: String| SuiteError::Invalid {
        location: at(field),
        message,
    };
    match (&spec.header, &spec.regex) {
        (Some(_), Some(_)) => Err(invalid(
            "identity",
            "give either `header` or `regex`, not both".into(),
        )),
        (Some(header), None) => Ok(Some(IdentityRule::Header(header.clone()))),
        (None, Some(re)) => regex::Regex::new(re)
            .map(|re| Some(IdentityRule::BodyRegex(re)))
            .map_err(|err| invalid("identity.regex", format!("invalid regex: {err}"))),
        (None, None) => Ok(None),
    }
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

/// `namespace/name` (or a bare name in the default namespace) as an object key.
pub fn parse_ref(kind: &str, text: &str) -> Result<ObjectKey, String> {
    let (namespace, name) = match text.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (DEFAULT_NAMESPACE.to_string(), text.to_string()),
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
