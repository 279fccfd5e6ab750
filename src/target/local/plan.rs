//! Fixtures to a plan: which echo processes to run, which Envoy clusters, listeners and
//! routes to configure. Pure: no processes, no files, so it can be checked in unit
//! tests and snapshot-compared.
//!
//! The translation follows what Istio's gateway controller and pilot generate for the
//! same objects (cluster names, circuit breaker defaults, route precedence, the default
//! retry policy), so that Envoy stats and behaviour line up with a cluster run.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_api::gateways::Gateway;
use gateway_api::httproutes::{
    HttpRoute, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;

use crate::echo::EchoArgs;
use crate::manifest::{Manifest, ManifestError, ObjectKey};

use super::fields;

/// Kubernetes puts an object without a namespace in `default`.
const DEFAULT_NAMESPACE: &str = "default";
/// Istio's suffix for in-cluster service names.
const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// Everything the local target will run, derived from the fixtures.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub workloads: Vec<Workload>,
    pub clusters: Vec<ClusterPlan>,
    pub gateways: Vec<GatewayPlan>,
    /// Service ports with GAMMA routes, as an in-mesh client's sidecar routes them.
    pub mesh: Vec<MeshServicePlan>,
    /// Things that are not errors but change behaviour: a route a listener does not
    /// allow is not attached, as on a cluster. Shown in diagnostics.
    pub notes: Vec<String>,
}

/// One Deployment: `replicas` echo processes with the same arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub deployment: ObjectKey,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub replicas: u32,
    /// http-echo flags without `-listen`, which the local target sets itself.
    pub echo_args: Vec<String>,
    /// The port http-echo listens on inside a pod (its `-listen`, default 5678): what a
    /// Service's `targetPort` has to name.
    pub pod_port: u16,
    /// Named container ports, for a named `targetPort`.
    pub named_ports: BTreeMap<String, u16>,
}

/// One Envoy cluster: a Service port, as Istio names it
/// (`outbound|80||backend-v1.istio-test.svc.cluster.local`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPlan {
    pub name: String,
    pub service: ObjectKey,
    pub port: u16,
    /// Indices into [`Plan::workloads`] whose pods are this Service's endpoints.
    pub workloads: Vec<usize>,
    pub policy: Option<TrafficPolicy>,
}

/// One Gateway: its listeners grouped by port, as Istio merges listeners that share a
/// port into one Envoy listener.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayPlan {
    pub gateway: ObjectKey,
    pub ports: Vec<GatewayPort>,
}

/// One Service port with the GAMMA routes attached to it (parentRef kind Service): the
/// routes replace plain Service routing for in-mesh callers of that port.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshServicePlan {
    pub service: ObjectKey,
    pub port: u16,
    pub routes: Vec<RoutePlan>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GatewayPort {
    pub port: u16,
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualHost {
    /// The hostname the virtual host serves, `*` for any.
    pub hostname: String,
    pub routes: Vec<RoutePlan>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RoutePlan {
    /// `namespace/name` of the HTTPRoute and the rule and match index, for stats and
    /// messages.
    pub name: String,
    pub path: PathMatch,
    pub headers: Vec<(String, String)>,
    pub method: Option<String>,
    pub action: RouteAction,
    /// Precedence key among routes on the same virtual host.
    order: (
        u8,
        std::cmp::Reverse<usize>,
        u8,
        std::cmp::Reverse<usize>,
        String,
        usize,
        usize,
    ),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// A Gateway API prefix: whole path segments, trailing slash ignored.
    Prefix(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    Cluster(String),
    Weighted(Vec<(String, u32)>),
    /// Every backend has weight 0: Gateway API says answer 500.
    DirectResponse(u16),
}

/// The DestinationRule traffic policy fields the local target translates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficPolicy {
    pub lb_policy: Option<&'static str>,
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    pub idle_timeout: Option<Duration>,
    pub outlier: Option<OutlierDetection>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
    pub min_health_percent: Option<u32>,
}

/// Istio's DestinationRule, only the part [`fields`] lets through.
#[derive(Deserialize)]
struct DestinationRule {
    spec: DestinationRuleSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DestinationRuleSpec {
    host: String,
    traffic_policy: Option<DrTrafficPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrTrafficPolicy {
    load_balancer: Option<DrLoadBalancer>,
    connection_pool: Option<DrConnectionPool>,
    outlier_detection: Option<DrOutlier>,
}

#[derive(Deserialize)]
struct DrLoadBalancer {
    simple: Option<String>,
}

#[derive(Deserialize)]
struct DrConnectionPool {
    tcp: Option<DrTcp>,
    http: Option<DrHttp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrTcp {
    max_connections: Option<u32>,
    connect_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrHttp {
    http1_max_pending_requests: Option<u32>,
    http2_max_requests: Option<u32>,
    max_requests_per_connection: Option<u32>,
    max_retries: Option<u32>,
    idle_timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DrOutlier {
    #[serde(rename = "consecutive5xxErrors")]
    consecutive_5xx_errors: Option<u32>,
    consecutive_gateway_errors: Option<u32>,
    interval: Option<String>,
    base_ejection_time: Option<String>,
    max_ejection_percent: Option<u32>,
    min_health_percent: Option<u32>,
}

/// Istio's cluster name for a Service port.
pub fn cluster_name(namespace: &str, service: &str, port: u16) -> String {
    format!("outbound|{port}||{service}.{namespace}.{CLUSTER_DOMAIN}")
}

fn namespace_of(manifest: &Manifest) -> String {
    manifest
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

fn invalid(manifest: &Manifest, field: &str, message: String) -> ManifestError {
    ManifestError::Invalid {
        location: manifest.location_of(field),
        message: format!(
            "{} {}: field `{field}`: {message}",
            manifest.kind, manifest.name
        ),
    }
}

fn unsupported(manifest: &Manifest, field: &str, detail: impl Into<String>) -> ManifestError {
    manifest.unsupported(field, "local", Some(detail.into()))
}

fn port_u16(manifest: &Manifest, field: &str, value: i32) -> Result<u16, ManifestError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid(manifest, field, format!("{value} is not a TCP port")))
}

/// Builds the plan, refusing anything the local target cannot honour.
pub fn plan(manifests: &[Manifest]) -> Result<Plan, ManifestError> {
    crate::manifest::check_unique(manifests)?;
    for manifest in manifests {
        fields::check(manifest)?;
    }
    let of_kind = |kind: &'static str| manifests.iter().filter(move |m| m.kind == kind);

    let mut workloads = Vec::new();
    for manifest in of_kind("Deployment") {
        workloads.push(workload(manifest)?);
    }

    let mut clusters = Vec::new();
    for manifest in of_kind("Service") {
        clusters.extend(service_clusters(manifest, &workloads)?);
    }

    for manifest in of_kind("DestinationRule") {
        apply_destination_rule(manifest, &mut clusters)?;
    }

    let mut gateways = Vec::new();
    let mut notes = Vec::new();
    let gateway_manifests: Vec<&Manifest> = of_kind("Gateway").collect();
    let mut decoded_gateways = Vec::new();
    for manifest in &gateway_manifests {
        decoded_gateways.push(gateway(manifest)?);
    }
    let routes: Vec<&Manifest> = of_kind("HTTPRoute").collect();
    for (manifest, listeners) in gateway_manifests.iter().zip(&decoded_gateways) {
        let mut ports: BTreeMap<u16, BTreeMap<String, Vec<RoutePlan>>> = BTreeMap::new();
        for listener in listeners {
            ports.entry(listener.port).or_default();
        }
        for route in &routes {
            attach_route(
                route, manifest, listeners, &clusters, &mut ports, &mut notes,
            )?;
        }
        gateways.push(GatewayPlan {
            gateway: manifest.key(),
            ports: ports
                .into_iter()
                .map(|(port, hosts)| GatewayPort {
                    port,
                    virtual_hosts: hosts
                        .into_iter()
                        .map(|(hostname, mut routes)| {
                            routes.sort_by(|a, b| a.order.cmp(&b.order));
                            VirtualHost { hostname, routes }
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    // Every parentRef must name something we have: a typo must not pass as "no route".
    let services: Vec<&Manifest> = of_kind("Service").collect();
    for route in &routes {
        check_parent_refs(route, &gateway_manifests, &services)?;
    }
    let mut mesh: BTreeMap<(ObjectKey, u16), Vec<RoutePlan>> = BTreeMap::new();
    for route in &routes {
        attach_mesh_route(route, &services, &clusters, &mut mesh)?;
    }
    Ok(Plan {
        workloads,
        clusters,
        gateways,
        mesh: mesh
            .into_iter()
            .map(|((service, port), mut routes)| {
                routes.sort_by(|a, b| a.order.cmp(&b.order));
                MeshServicePlan {
                    service,
                    port,
                    routes,
                }
            })
            .collect(),
        notes,
    })
}

fn workload(manifest: &Manifest) -> Result<Workload, ManifestError> {
    let deployment: Deployment = manifest.decode()?;
    let spec = deployment.spec.unwrap_or_default();
    let replicas = match spec.replicas {
        None => 1,
        Some(n) => u32::try_from(n)
            .map_err(|_| invalid(manifest, "spec.replicas", format!("{n} is negative")))?,
    };
    let template_labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    if let Some(match_labels) = spec.selector.match_labels.as_ref() {
        for (k, v) in match_labels {
            if template_labels.get(k) != Some(v) {
                return Err(invalid(
                    manifest,
                    "spec.selector.matchLabels",
                    format!("selector {k}={v} does not match the pod template labels"),
                ));
            }
        }
    }
    let containers = spec.template.spec.map(|s| s.containers).unwrap_or_default();
    let [container] = containers.as_slice() else {
        return Err(unsupported(
            manifest,
            "spec.template.spec.containers",
            format!(
                "the local target runs pods of exactly one hashicorp/http-echo container, this one has {}",
                containers.len()
            ),
        ));
    };
    let field = "spec.template.spec.containers[0].image";
    let image = container.image.as_deref().unwrap_or_default();
    if !is_http_echo(image) {
        return Err(unsupported(
            manifest,
            field,
            format!(
                "image `{image}`: the local target runs only hashicorp/http-echo, as `meshcheck echo`"
            ),
        ));
    }
    let args = container.args.clone().unwrap_or_default();
    let parsed = EchoArgs::parse(args.clone()).map_err(|err| {
        invalid(
            manifest,
            "spec.template.spec.containers[0].args",
            format!("not valid http-echo arguments: {err}"),
        )
    })?;
    let echo_args = without_listen(&args);
    let named_ports = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
        .collect();
    Ok(Workload {
        deployment: manifest.key(),
        namespace: namespace_of(manifest),
        labels: template_labels,
        replicas,
        echo_args,
        pod_port: parsed.listen.port(),
        named_ports,
    })
}

/// `hashicorp/http-echo`, with an optional registry, tag or digest.
fn is_http_echo(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let repository = match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    };
    matches!(
        repository,
        "hashicorp/http-echo"
            | "docker.io/hashicorp/http-echo"
            | "index.docker.io/hashicorp/http-echo"
    )
}

/// Drops `-listen` in any of its Go forms; the local target picks the address.
fn without_listen(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for arg in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        let bare = arg.trim_start_matches('-');
        if arg.starts_with('-') && (bare == "listen") {
            skip_next = true;
            continue;
        }
        if arg.starts_with('-') && bare.starts_with("listen=") {
            continue;
        }
        out.push(arg.clone());
    }
    out
}

fn service_clusters(
    manifest: &Manifest,
    workloads: &[Workload],
) -> Result<Vec<ClusterPlan>, ManifestError> {
    let service: Service = manifest.decode()?;
    let namespace = namespace_of(manifest);
    let spec = service.spec.unwrap_or_default();
    if let Some(kind) = spec.type_.as_deref().filter(|t| *t != "ClusterIP") {
        return Err(unsupported(
            manifest,
            "spec.type",
            format!("type {kind}: the local target exposes Services only through Gateways"),
        ));
    }
    let selector = spec.selector.unwrap_or_default();
    let selected: Vec<usize> = if selector.is_empty() {
        Vec::new()
    } else {
        workloads
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                w.namespace == namespace && selector.iter().all(|(k, v)| w.labels.get(k) == Some(v))
            })
            .map(|(i, _)| i)
            .collect()
    };
    let mut clusters = Vec::new();
    for (index, port) in spec.ports.unwrap_or_default().iter().enumerate() {
        let field = format!("spec.ports[{index}]");
        if let Some(protocol) = port.protocol.as_deref().filter(|p| *p != "TCP") {
            return Err(unsupported(
                manifest,
                &format!("{field}.protocol"),
                format!("protocol {protocol}: only TCP"),
            ));
        }
        let service_port = port_u16(manifest, &format!("{field}.port"), port.port)?;
        for &w in &selected {
            let workload = &workloads[w];
            let target = match &port.target_port {
                None => service_port,
                Some(IntOrString::Int(n)) => {
                    port_u16(manifest, &format!("{field}.targetPort"), *n)?
                }
                Some(IntOrString::String(name)) => match workload.named_ports.get(name) {
                    Some(p) => *p,
                    None => {
                        return Err(invalid(
                            manifest,
                            &format!("{field}.targetPort"),
                            format!(
                                "{} has no container port named `{name}`",
                                workload.deployment
                            ),
                        ));
                    }
                },
            };
            if target != workload.pod_port {
                return Err(invalid(
                    manifest,
                    &format!("{field}.targetPort"),
                    format!(
                        "targets port {target}, but the http-echo pods of {} listen on {}",
                        workload.deployment, workload.pod_port
                    ),
                ));
            }
        }
        clusters.push(ClusterPlan {
            name: cluster_name(&namespace, &manifest.name, service_port),
            service: manifest.key(),
            port: service_port,
            workloads: selected.clone(),
            policy: None,
        });
    }
    Ok(clusters)
}

fn duration(
    manifest: &Manifest,
    field: &str,
    value: Option<String>,
) -> Result<Option<Duration>, ManifestError> {
    value
        .map(|text| {
            humantime::parse_duration(&text).map_err(|err| {
                invalid(
                    manifest,
                    field,
                    format!("`{text}` is not a duration: {err}"),
                )
            })
        })
        .transpose()
}

/// Istio cannot tell an explicit 0 from an unset limit and treats both as unset (so a
/// 0 does not block all traffic); so do we.
fn positive(value: Option<u32>) -> Option<u32> {
    value.filter(|n| *n > 0)
}

fn apply_destination_rule(
    manifest: &Manifest,
    clusters: &mut [ClusterPlan],
) -> Result<(), ManifestError> {
    let rule: DestinationRule = manifest.decode()?;
    let namespace = namespace_of(manifest);
    let host = rule.spec.host;
    if host.contains('*') {
        return Err(unsupported(
            manifest,
            "spec.host",
            format!("wildcard host `{host}`"),
        ));
    }
    // Istio reads a short name relative to the rule's namespace.
    let fqdn = match host.split('.').count() {
        1 => format!("{host}.{namespace}.{CLUSTER_DOMAIN}"),
        2 => format!("{host}.{CLUSTER_DOMAIN}"),
        _ => host.clone(),
    };
    let suffix = format!("||{fqdn}");
    let mut matched = clusters
        .iter_mut()
        .filter(|c| c.name.ends_with(&suffix))
        .peekable();
    if matched.peek().is_none() {
        return Err(invalid(
            manifest,
            "spec.host",
            format!("`{host}` ({fqdn}) names no Service in the fixtures"),
        ));
    }
    let policy = match rule.spec.traffic_policy {
        None => TrafficPolicy::default(),
        Some(tp) => {
            let lb_policy = match tp.load_balancer.and_then(|l| l.simple).as_deref() {
                None => None,
                Some("ROUND_ROBIN") => Some("ROUND_ROBIN"),
                // Istio maps both to Envoy's least-request balancer.
                Some("LEAST_REQUEST" | "LEAST_CONN") => Some("LEAST_REQUEST"),
                Some("RANDOM") => Some("RANDOM"),
                Some(other) => {
                    return Err(unsupported(
                        manifest,
                        "spec.trafficPolicy.loadBalancer.simple",
                        format!(
                            "`{other}`: supported are ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM"
                        ),
                    ));
                }
            };
            let pool = tp.connection_pool.unwrap_or(DrConnectionPool {
                tcp: None,
                http: None,
            });
            let tcp = pool.tcp.unwrap_or(DrTcp {
                max_connections: None,
                connect_timeout: None,
            });
            let http = pool.http.unwrap_or(DrHttp {
                http1_max_pending_requests: None,
                http2_max_requests: None,
                max_requests_per_connection: None,
                max_retries: None,
                idle_timeout: None,
            });
            let outlier = match tp.outlier_detection {
                None => None,
                Some(o) => {
                    let base = "spec.trafficPolicy.outlierDetection";
                    Some(OutlierDetection {
                        consecutive_5xx: o.consecutive_5xx_errors,
                        consecutive_gateway_errors: o.consecutive_gateway_errors,
                        interval: duration(manifest, &format!("{base}.interval"), o.interval)?,
                        base_ejection_time: duration(
                            manifest,
                            &format!("{base}.baseEjectionTime"),
                            o.base_ejection_time,
                        )?,
                        max_ejection_percent: o.max_ejection_percent,
                        min_health_percent: o.min_health_percent,
                    })
                }
            };
            TrafficPolicy {
                lb_policy,
                max_connections: positive(tcp.max_connections),
                connect_timeout: duration(
                    manifest,
                    "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
                    tcp.connect_timeout,
                )?,
                max_pending_requests: positive(http.http1_max_pending_requests),
                max_requests: positive(http.http2_max_requests),
                max_requests_per_connection: positive(http.max_requests_per_connection),
                max_retries: positive(http.max_retries),
                idle_timeout: duration(
                    manifest,
                    "spec.trafficPolicy.connectionPool.http.idleTimeout",
                    http.idle_timeout,
                )?,
                outlier,
            }
        }
    };
    for cluster in matched {
        if cluster.policy.is_some() {
            return Err(unsupported(
                manifest,
                "spec.host",
                format!(
                    "a second DestinationRule for {fqdn}: Istio's merging of rules is not modelled"
                ),
            ));
        }
        cluster.policy = Some(policy.clone());
    }
    Ok(())
}

/// A Gateway listener as the local target serves it.
struct Listener {
    name: String,
    port: u16,
    hostname: Option<String>,
    /// `allowedRoutes.namespaces.from`: `Same` (the default) or `All`.
    all_namespaces: bool,
}

fn gateway(manifest: &Manifest) -> Result<Vec<Listener>, ManifestError> {
    let gateway: Gateway = manifest.decode()?;
    if gateway.spec.gateway_class_name != "istio" {
        return Err(unsupported(
            manifest,
            "spec.gatewayClassName",
            format!(
                "class `{}`: the local target plays Istio's `istio` class",
                gateway.spec.gateway_class_name
            ),
        ));
    }
    let mut listeners = Vec::new();
    for (index, listener) in gateway.spec.listeners.iter().enumerate() {
        let field = format!("spec.listeners[{index}]");
        if listener.protocol != "HTTP" {
            return Err(unsupported(
                manifest,
                &format!("{field}.protocol"),
                format!("protocol {}: only HTTP listeners", listener.protocol),
            ));
        }
        let from = listener
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref())
            .and_then(|n| n.from.as_ref())
            .map(|f| format!("{f:?}"));
        let all_namespaces = match from.as_deref() {
            None | Some("Same") => false,
            Some("All") => true,
            Some(other) => {
                return Err(unsupported(
                    manifest,
                    &format!("{field}.allowedRoutes.namespaces.from"),
                    format!("`{other}`: only Same and All"),
                ));
            }
        };
        if let Some(kinds) = listener
            .allowed_routes
            .as_ref()
            .and_then(|a| a.kinds.as_ref())
            && !kinds.iter().any(|k| k.kind == "HTTPRoute")
        {
            return Err(unsupported(
                manifest,
                &format!("{field}.allowedRoutes.kinds"),
                "listeners that do not allow HTTPRoute",
            ));
        }
        listeners.push(Listener {
            name: listener.name.clone(),
            port: port_u16(manifest, &format!("{field}.port"), listener.port)?,
            hostname: listener.hostname.clone(),
            all_namespaces,
        });
    }
    Ok(listeners)
}

/// Whether `host` (a route hostname) falls under a listener hostname, which may be a
/// `*.example.com` wildcard.
fn host_matches(listener: &str, host: &str) -> bool {
    match listener.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        None => listener == host,
    }
}

fn is_service_parent(kind: &str, group: &str) -> bool {
    kind == "Service" && (group.is_empty() || group == "core")
}

fn check_parent_refs(
    route: &Manifest,
    gateways: &[&Manifest],
    services: &[&Manifest],
) -> Result<(), ManifestError> {
    let decoded: HttpRoute = route.decode()?;
    let namespace = namespace_of(route);
    for (index, parent) in decoded.spec.parent_refs.iter().flatten().enumerate() {
        let field = format!("{}[{index}]", "spec.parentRefs");
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        let group = parent
            .group
            .as_deref()
            .unwrap_or("gateway.networking.k8s.io");
        let parent_namespace = parent
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        if is_service_parent(kind, group) {
            // GAMMA: the route configures callers of the Service. Routes in the
            // Service's own namespace ("producer routes") only: consumer routes apply to
            // callers in the route's namespace, which the local client does not model.
            if parent_namespace != namespace {
                return Err(unsupported(
                    route,
                    &format!("{field}.namespace"),
                    "GAMMA consumer routes (a Service parent in another namespace)",
                ));
            }
            if decoded
                .spec
                .hostnames
                .as_ref()
                .is_some_and(|h| !h.is_empty())
            {
                return Err(unsupported(
                    route,
                    "spec.hostnames",
                    "hostnames on a GAMMA route (a Service parent): mesh routes match the Service, not a hostname",
                ));
            }
            let Some(service) = services
                .iter()
                .find(|s| s.name == parent.name && namespace_of(s) == parent_namespace)
            else {
                return Err(invalid(
                    route,
                    &format!("{field}.name"),
                    format!(
                        "Service {parent_namespace}/{} is not in the fixtures",
                        parent.name
                    ),
                ));
            };
            if let Some(port) = parent.port
                && !service_ports(service)?.contains(&port_u16(
                    route,
                    &format!("{field}.port"),
                    port,
                )?)
            {
                return Err(invalid(
                    route,
                    &format!("{field}.port"),
                    format!(
                        "Service {parent_namespace}/{} has no port {port}",
                        parent.name
                    ),
                ));
            }
            continue;
        }
        if kind != "Gateway" || group != "gateway.networking.k8s.io" {
            return Err(unsupported(
                route,
                &format!("{field}.kind"),
                format!("parent {group}/{kind}"),
            ));
        }
        if !gateways
            .iter()
            .any(|g| g.name == parent.name && namespace_of(g) == parent_namespace)
        {
            return Err(invalid(
                route,
                &format!("{field}.name"),
                format!(
                    "Gateway {parent_namespace}/{} is not in the fixtures",
                    parent.name
                ),
            ));
        }
    }
    Ok(())
}

fn service_ports(service: &Manifest) -> Result<Vec<u16>, ManifestError> {
    let decoded: Service = service.decode()?;
    Ok(decoded
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| u16::try_from(p.port).ok())
        .collect())
}

/// Adds a route's rules to every Service port its GAMMA parentRefs name (all ports of
/// the Service when the parentRef has none).
fn attach_mesh_route(
    route: &Manifest,
    services: &[&Manifest],
    clusters: &[ClusterPlan],
    mesh: &mut BTreeMap<(ObjectKey, u16), Vec<RoutePlan>>,
) -> Result<(), ManifestError> {
    let decoded: HttpRoute = route.decode()?;
    let namespace = namespace_of(route);
    for parent in decoded.spec.parent_refs.iter().flatten() {
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        let group = parent
            .group
            .as_deref()
            .unwrap_or("gateway.networking.k8s.io");
        if !is_service_parent(kind, group) {
            continue;
        }
        // check_parent_refs made sure the Service is there, in the route's namespace.
        let Some(service) = services
            .iter()
            .find(|s| s.name == parent.name && namespace_of(s) == namespace)
        else {
            continue;
        };
        let ports = match parent.port {
            Some(port) => vec![port_u16(route, "spec.parentRefs", port)?],
            None => service_ports(service)?,
        };
        let routes = route_plans(route, &decoded, &namespace, clusters)?;
        for port in ports {
            mesh.entry((service.key(), port))
                .or_default()
                .extend(routes.iter().cloned());
        }
    }
    Ok(())
}

fn attach_route(
    route: &Manifest,
    gateway: &Manifest,
    listeners: &[Listener],
    clusters: &[ClusterPlan],
    ports: &mut BTreeMap<u16, BTreeMap<String, Vec<RoutePlan>>>,
    notes: &mut Vec<String>,
) -> Result<(), ManifestError> {
    let decoded: HttpRoute = route.decode()?;
    let namespace = namespace_of(route);
    let gateway_namespace = namespace_of(gateway);
    for (parent_index, parent) in decoded.spec.parent_refs.iter().flatten().enumerate() {
        let parent_namespace = parent
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        let is_gateway = parent.kind.as_deref().unwrap_or("Gateway") == "Gateway";
        if !is_gateway || parent.name != gateway.name || parent_namespace != gateway_namespace {
            continue;
        }
        let selected: Vec<&Listener> = listeners
            .iter()
            .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
            .filter(|l| parent.port.is_none_or(|p| i32::from(l.port) == p))
            .collect();
        if selected.is_empty() {
            return Err(invalid(
                route,
                &format!("spec.parentRefs[{parent_index}]"),
                format!(
                    "no listener of {} matches this parentRef's sectionName/port",
                    gateway.key()
                ),
            ));
        }
        for listener in selected {
            if !listener.all_namespaces && namespace != gateway_namespace {
                notes.push(format!(
                    "{} is not attached to listener {} of {}: the listener allows routes from its own namespace only",
                    route.key(),
                    listener.name,
                    gateway.key()
                ));
                continue;
            }
            let hostnames: Vec<String> = match (&decoded.spec.hostnames, &listener.hostname) {
                (None, None) => vec!["*".to_string()],
                (None, Some(l)) => vec![l.clone()],
                (Some(hosts), None) => hosts.clone(),
                (Some(hosts), Some(l)) => hosts
                    .iter()
                    .filter(|h| host_matches(l, h) || host_matches(h, l))
                    .map(|h| {
                        if h.starts_with("*.") && !l.starts_with("*.") {
                            l.clone()
                        } else {
                            h.clone()
                        }
                    })
                    .collect(),
            };
            if hostnames.is_empty() {
                notes.push(format!(
                    "{} is not attached to listener {} of {}: no hostname in common",
                    route.key(),
                    listener.name,
                    gateway.key()
                ));
                continue;
            }
            let routes = route_plans(route, &decoded, &namespace, clusters)?;
            let hosts = ports.entry(listener.port).or_default();
            for hostname in hostnames {
                hosts
                    .entry(hostname)
                    .or_default()
                    .extend(routes.iter().cloned());
            }
        }
    }
    Ok(())
}

fn route_plans(
    route: &Manifest,
    decoded: &HttpRoute,
    namespace: &str,
    clusters: &[ClusterPlan],
) -> Result<Vec<RoutePlan>, ManifestError> {
    let mut plans = Vec::new();
    let route_name = format!("{namespace}/{}", route.name);
    for (rule_index, rule) in decoded.spec.rules.iter().flatten().enumerate() {
        let rule_field = format!("spec.rules[{rule_index}]");
        let mut weighted = Vec::new();
        for (backend_index, backend) in rule.backend_refs.iter().flatten().enumerate() {
            let field = format!("{rule_field}.backendRefs[{backend_index}]");
            let kind = backend.kind.as_deref().unwrap_or("Service");
            let group = backend.group.as_deref().unwrap_or("");
            if kind != "Service" || !group.is_empty() {
                return Err(unsupported(
                    route,
                    &format!("{field}.kind"),
                    format!("backend {group}/{kind}: only Services"),
                ));
            }
            if backend.namespace.as_deref().is_some_and(|n| n != namespace) {
                return Err(unsupported(
                    route,
                    &format!("{field}.namespace"),
                    "cross-namespace backends (they need a ReferenceGrant)",
                ));
            }
            let Some(port) = backend.port else {
                return Err(invalid(
                    route,
                    &format!("{field}.port"),
                    "a Service backend needs a port".into(),
                ));
            };
            let port = port_u16(route, &format!("{field}.port"), port)?;
            let name = cluster_name(namespace, &backend.name, port);
            if !clusters.iter().any(|c| c.name == name) {
                return Err(invalid(
                    route,
                    &format!("{field}.name"),
                    format!(
                        "Service {namespace}/{} with port {port} is not in the fixtures",
                        backend.name
                    ),
                ));
            }
            let weight = backend.weight.unwrap_or(1);
            let weight = u32::try_from(weight).map_err(|_| {
                invalid(
                    route,
                    &format!("{field}.weight"),
                    format!("{weight} is negative"),
                )
            })?;
            weighted.push((name, weight));
        }
        weighted.retain(|(_, w)| *w > 0);
        let action = match weighted.len() {
            0 => RouteAction::DirectResponse(500),
            1 => RouteAction::Cluster(weighted.remove(0).0),
            _ => RouteAction::Weighted(weighted),
        };
        let default_match = [Default::default()];
        let matches = match rule.matches.as_deref() {
            Some(m) if !m.is_empty() => m,
            _ => &default_match[..],
        };
        for (match_index, m) in matches.iter().enumerate() {
            let field = format!("{rule_field}.matches[{match_index}]");
            let value = m
                .path
                .as_ref()
                .and_then(|p| p.value.clone())
                .unwrap_or_else(|| "/".into());
            let path = match m.path.as_ref().and_then(|p| p.r#type.clone()) {
                None | Some(HttpRouteRulesMatchesPathType::PathPrefix) => PathMatch::Prefix(value),
                Some(HttpRouteRulesMatchesPathType::Exact) => PathMatch::Exact(value),
                Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
                    return Err(unsupported(
                        route,
                        &format!("{field}.path.type"),
                        "RegularExpression paths",
                    ));
                }
            };
            let mut headers = Vec::new();
            for (header_index, header) in m.headers.iter().flatten().enumerate() {
                if matches!(
                    header.r#type,
                    Some(HttpRouteRulesMatchesHeadersType::RegularExpression)
                ) {
                    return Err(unsupported(
                        route,
                        &format!("{field}.headers[{header_index}].type"),
                        "RegularExpression header matches",
                    ));
                }
                headers.push((header.name.to_ascii_lowercase(), header.value.clone()));
            }
            let method = m.method.as_ref().map(|method| {
                serde_json::to_value(method)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            });
            // Gateway API precedence: exact paths, then longer prefixes, then method,
            // then more header matches, then the route's name, rule and match order.
            let (rank, length) = match &path {
                PathMatch::Exact(p) => (0, p.len()),
                PathMatch::Prefix(p) => (1, p.trim_end_matches('/').len()),
            };
            let order = (
                rank,
                std::cmp::Reverse(length),
                u8::from(method.is_none()),
                std::cmp::Reverse(headers.len()),
                route_name.clone(),
                rule_index,
                match_index,
            );
            plans.push(RoutePlan {
                name: format!("{route_name}.{rule_index}.{match_index}"),
                path,
                headers,
                method,
                action: action.clone(),
                order,
            });
        }
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_flags_are_dropped_in_every_form() {
        let args: Vec<String> = [
            "-text=a",
            "-listen",
            ":80",
            "--listen=:81",
            "-status-code=201",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(without_listen(&args), ["-text=a", "-status-code=201"]);
    }

    #[test]
    fn http_echo_images() {
        assert!(is_http_echo("hashicorp/http-echo"));
        assert!(is_http_echo("hashicorp/http-echo:1.0"));
        assert!(is_http_echo("docker.io/hashicorp/http-echo@sha256:abc"));
        assert!(!is_http_echo("nginx"));
        assert!(!is_http_echo("hashicorp/http-echo-fork"));
    }

    #[test]
    fn wildcard_hostnames() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("a.example.com", "a.example.com"));
    }
}
