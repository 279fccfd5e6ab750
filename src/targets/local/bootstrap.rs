//! The Envoy bootstrap for a plan: static clusters with the echo endpoints, one
//! listener per gateway port, routes inline. Field values follow what Istio sends to a
//! gateway for the same objects.
//!
//! An HTTPS port carries its certificates' private keys inline: the bootstrap is written
//! only to the run's private temporary directory, and [`redacted_bootstrap`] is what anything
//! printable keeps.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use super::certificate::REDACTED_KEY;
use super::plan::{
    ClusterPlan, GatewayPort, HttpsServer, InboundPlan, LbPolicy, MeshServicePlan, PathMatch, Plan,
    PortServing, RouteAction, RoutePlan, TrafficPolicy, VirtualHost,
};
use super::route_rule::{
    HeaderEdits, HeaderFilters, MatchCondition, PathRewrite, Redirect, RedirectPath, StringMatch,
};
use crate::fixtures::istio::PortProtocol;

/// Istio leaves every circuit breaker threshold it is not told about at 2^32-1, so a
/// limit is only in effect when a DestinationRule sets it.
pub const UNLIMITED: u32 = u32::MAX;
/// Istio's default upstream connect timeout (meshConfig.connectTimeout).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Istio's load balancer when a DestinationRule does not choose one.
const DEFAULT_LB_POLICY: LbPolicy = LbPolicy::LeastRequest;
/// The protocols an Istio gateway offers in the TLS handshake of an HTTPS server.
const GATEWAY_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// Envoy's JSON form of a protobuf Duration.
pub fn proto_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}.{:09}s", duration.as_secs(), duration.subsec_nanos())
    }
}

/// Names of a gateway port's Envoy listener, as the admin API lists it.
pub fn listener_name(gateway: &crate::manifest::ObjectKey, port: u16) -> String {
    format!(
        "{}/{}/0.0.0.0_{port}",
        gateway.namespace_or_default(),
        gateway.name
    )
}

/// The in-mesh client sidecar's listener for one Service port as some callers see it
/// ([`MeshServicePlan::consumer_namespace`]): Istio's name for the Service port's
/// outbound listener, with the consumer namespace after it when only callers there get
/// these routes.
pub fn mesh_listener_name(mesh: &MeshServicePlan) -> String {
    let name = listener_name(&mesh.service, mesh.port);
    match &mesh.consumer_namespace {
        None => name,
        Some(namespace) => format!("{name}~from~{namespace}"),
    }
}

/// The whole bootstrap. `pods[i]` are the addresses of workload `i`'s echo processes.
pub fn bootstrap(plan: &Plan, pods: &[Vec<SocketAddr>]) -> Value {
    json!({
        "node": {"id": "meshcheck-local", "cluster": "meshcheck"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
        },
        "static_resources": {
            "listeners": plan.gateways.iter().flat_map(|g| g.ports.iter().map(move |p| {
                gateway_listener(&listener_name(&g.gateway, p.port), p)
            })).collect::<Vec<_>>(),
            "clusters": plan.clusters.iter().map(|c| cluster(c, pods)).collect::<Vec<_>>(),
        }
    })
}

/// The bootstrap of the in-mesh client's sidecar: one outbound listener per Service
/// port with GAMMA routes (standing for the Service's cluster IP and port), the same
/// clusters as the gateway, so DestinationRules apply to mesh callers too.
pub fn sidecar_bootstrap(plan: &Plan, pods: &[Vec<SocketAddr>]) -> Value {
    json!({
        "node": {"id": "meshcheck-local-sidecar", "cluster": "meshcheck"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
        },
        "static_resources": {
            "listeners": plan.mesh.iter().map(|m| {
                let vhost = VirtualHost { hostname: "*".into(), routes: m.routes.clone() };
                listener(ProxyRole::Sidecar, &mesh_listener_name(m), m.port, std::slice::from_ref(&vhost))
            }).collect::<Vec<_>>(),
            "clusters": plan.clusters.iter().map(|c| cluster(c, pods)).collect::<Vec<_>>(),
        }
    })
}

/// The listener of one pod's server-side sidecar, as the admin API lists it.
pub fn inbound_listener_name(pod: &str) -> String {
    format!("inbound~{pod}")
}

/// The inbound cluster of one pod's server-side sidecar: Istio's name
/// ([`InboundPlan::istio_cluster_name`]) after the pod's, since every pod's sidecar has
/// its own and they share one Envoy here.
pub fn inbound_cluster_name(pod: &str, inbound: &InboundPlan) -> String {
    format!("{pod}~{}", inbound.istio_cluster_name())
}

/// The bootstrap of the server-side sidecars ([`InboundPlan`]): per pod a listener
/// standing for its sidecar's inbound port, routing everything to that pod's inbound
/// cluster, whose only endpoint is the pod's echo process. Like Istio's inbound routes
/// (`buildSidecarInboundHTTPRouteConfig`, istio/istio
/// `pilot/pkg/networking/core/httproute.go`), the route has no timeout and no retries:
/// those are the client's.
pub fn inbound_bootstrap(plan: &Plan, pods: &[Vec<SocketAddr>]) -> Value {
    let mut listeners = Vec::new();
    let mut clusters = Vec::new();
    for inbound in &plan.inbound {
        let workload = &plan.workloads[inbound.workload];
        let addresses = pods.get(inbound.workload).map_or(&[][..], Vec::as_slice);
        for (pod, address) in workload.pods.iter().zip(addresses) {
            let cluster_name = inbound_cluster_name(&pod.name, inbound);
            listeners.push(json!({
                "name": inbound_listener_name(&pod.name),
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": format!("inbound_0.0.0.0_{}", inbound.port),
                        "codec_type": "AUTO",
                        "route_config": {
                            "name": inbound.istio_cluster_name(),
                            "virtual_hosts": [{
                                "name": format!("inbound|http|{}", inbound.port),
                                "domains": ["*"],
                                "routes": [{
                                    "match": {"prefix": "/"},
                                    "route": {"cluster": cluster_name, "timeout": "0s"}
                                }]
                            }]
                        },
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                        }]
                    }
                }]}]
            }));
            clusters.push(inbound_cluster(&cluster_name, inbound, *address));
        }
    }
    json!({
        "node": {"id": "meshcheck-local-inbound", "cluster": "meshcheck"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
        },
        "static_resources": {"listeners": listeners, "clusters": clusters}
    })
}

/// One pod's inbound cluster with the rule's connection pool, as Istio's
/// `applyConnectionPool` sets it for both directions (istio/istio
/// `pilot/pkg/networking/core/cluster_traffic_policy.go`); no outlier detection and no
/// load balancer choice inbound.
fn inbound_cluster(name: &str, inbound: &InboundPlan, address: SocketAddr) -> Value {
    let policy = &inbound.policy;
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": proto_duration(policy.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [lb_endpoint(address)]}]
        },
        "circuit_breakers": circuit_breakers(policy),
    });
    // A port whose protocol Istio sniffs keeps the downstream's HTTP version inbound
    // (`setUpstreamProtocol`, cluster_builder.go, for sidecars).
    let options = match inbound.protocol {
        PortProtocol::Detected => {
            let mut options = protocol_options(policy, PortProtocol::Http).unwrap_or_else(|| {
                json!({
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                })
            });
            if let Some(options) = options.as_object_mut() {
                options.remove("explicit_http_config");
                options.insert("use_downstream_protocol_config".into(), json!({}));
            }
            Some(options)
        }
        protocol => protocol_options(policy, protocol),
    };
    if let Some(options) = options {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options
        });
    }
    cluster
}

/// The bootstrap with every inline private key replaced by [`REDACTED_KEY`]: what may
/// be kept, shown or printed.
pub fn redacted_bootstrap(config: &Value) -> Value {
    let mut config = config.clone();
    redact_in(&mut config);
    config
}

fn redact_in(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "private_key" {
                    *child = json!({"inline_string": REDACTED_KEY});
                } else {
                    redact_in(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_in),
        _ => {}
    }
}

fn gateway_listener(name: &str, port: &GatewayPort) -> Value {
    match &port.serving {
        PortServing::Http { virtual_hosts } => {
            listener(ProxyRole::Gateway, name, port.port, virtual_hosts)
        }
        PortServing::Https { servers } => https_listener(name, port.port, servers),
    }
}

fn listener(role: ProxyRole, name: &str, port: u16, virtual_hosts: &[VirtualHost]) -> Value {
    json!({
        "name": name,
        // Port 0: the kernel picks a free port; the admin API tells us which.
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{
            "filters": [http_connection_manager(role, Listening { port, tls: false }, &format!("http.{port}"), virtual_hosts)]
        }]
    })
}

/// An HTTPS port: the TLS inspector reads the SNI, which picks one filter chain per
/// HTTPS listener; each terminates TLS with its listener's certificate and routes with
/// only that listener's virtual hosts.
fn https_listener(name: &str, port: u16, servers: &[HttpsServer]) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "listener_filters": [{
            "name": "envoy.filters.listener.tls_inspector",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}
        }],
        "filter_chains": servers.iter().map(|s| https_filter_chain(port, s)).collect::<Vec<_>>(),
    })
}

fn https_filter_chain(port: u16, server: &HttpsServer) -> Value {
    let mut chain = json!({
        "name": server.route_name,
        "filters": [http_connection_manager(ProxyRole::Gateway, Listening { port, tls: true }, &server.route_name, &server.virtual_hosts)],
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "alpn_protocols": GATEWAY_ALPN,
                    "tls_certificates": [{
                        "certificate_chain": {"inline_string": server.certificate.chain_pem},
                        "private_key": {"inline_string": server.certificate.private_key.pem()}
                    }]
                },
                "require_client_certificate": false
            }
        }
    });
    // A listener without a hostname takes any SNI and clients that send none; Envoy
    // prefers the chain with the most specific server name.
    if let Some(hostname) = &server.hostname {
        chain["filter_chain_match"] = json!({"server_names": [hostname]});
    }
    chain
}

/// Istio names the connection manager's stats after the Envoy listener
/// (`outbound_0.0.0.0_443`) on HTTPS ports too: the Gateway API servers it builds have
/// no server name that would take over. The route config is named per server.
fn http_connection_manager(
    role: ProxyRole,
    listening: Listening,
    route_name: &str,
    virtual_hosts: &[VirtualHost],
) -> Value {
    let port = listening.port;
    let mut manager = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": format!("outbound_0.0.0.0_{port}"),
        "codec_type": "AUTO",
        "route_config": {
            "name": route_name,
            "virtual_hosts": virtual_hosts.iter().map(|v| virtual_host(role, v, listening)).collect::<Vec<_>>(),
            // A route may name a cluster that does not exist (a backendRef that
            // resolves to nothing, as Istio names it); Envoy refuses such an inline
            // table unless told not to check, as Istio's RDS tables are not checked.
            "validate_clusters": false,
        },
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
        }]
    });
    if role == ProxyRole::Gateway {
        for (key, value) in gateway_connection_manager_defaults() {
            manager[key] = value;
        }
        // Istio matches virtual hosts on the Host header without its port (every
        // route table it builds, istio/istio pilot/pkg/networking/core/httproute.go).
        manager["route_config"]["ignore_port_in_host_matching"] = json!(true);
        // A gateway server no route attaches to gets one catch-all virtual host
        // without routes, so every request is a 404 "no route" (`buildGatewayHTTPRouteConfig`,
        // istio/istio pilot/pkg/networking/core/gateway.go).
        if virtual_hosts.is_empty() {
            manager["route_config"]["virtual_hosts"] = json!([{
                "name": format!("blackhole:{port}"),
                "domains": ["*"],
                "routes": [],
            }]);
        }
    }
    json!({"name": "envoy.filters.network.http_connection_manager", "typed_config": manager})
}

/// Which proxy a connection manager belongs to: Istio configures a gateway's
/// differently from a sidecar's. Only the gateway's settings are checked against
/// Istio so far (`tests/integration/istio_oracle.rs`); the sidecar keeps Envoy's
/// defaults until the oracle compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProxyRole {
    Gateway,
    Sidecar,
}

/// What Istio sets on a gateway's HTTP connection manager, all of it visible to
/// clients: paths normalized as meshConfig `pathNormalization: BASE` (the default)
/// says, escaped slashes kept, websocket upgrades allowed, no idle-stream timeout,
/// `server: istio-envoy`, the client's address taken from the connection and
/// appended to x-forwarded-for, incoming client-certificate headers replaced, and
/// `Expect: 100-continue` answered by the proxy. Sources, istio/istio:
/// `pilot/pkg/networking/core/listener_builder.go` (`buildHTTPConnectionManager`:
/// normalization, upgrades, stream idle timeout), `gateway.go`
/// (`buildGatewayConnectionManager`: server name, remote address, client
/// certificate details), `listener.go` (100-continue).
fn gateway_connection_manager_defaults() -> [(&'static str, Value); 8] {
    [
        ("normalize_path", json!(true)),
        ("path_with_escaped_slashes_action", json!("KEEP_UNCHANGED")),
        ("upgrade_configs", json!([{"upgrade_type": "websocket"}])),
        ("stream_idle_timeout", json!("0s")),
        ("server_name", json!("istio-envoy")),
        ("use_remote_address", json!(true)),
        ("forward_client_cert_details", json!("SANITIZE_SET")),
        ("proxy_100_continue", json!(true)),
    ]
}

/// The port a route table serves (as the Gateway or Service declares it, not the
/// kernel-chosen one) and whether it is served over TLS: a redirect's Location
/// depends on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listening {
    port: u16,
    tls: bool,
}

fn virtual_host(role: ProxyRole, vhost: &VirtualHost, listening: Listening) -> Value {
    let port = listening.port;
    // A gateway's route table ignores the Host header's port, so one domain per
    // hostname serves `name` and `name:port` alike, wildcards included.
    let domains = match role {
        ProxyRole::Gateway => vec![vhost.hostname.clone()],
        ProxyRole::Sidecar if vhost.hostname == "*" => vec!["*".to_string()],
        ProxyRole::Sidecar => vec![vhost.hostname.clone(), format!("{}:*", vhost.hostname)],
    };
    let mut host = json!({
        "name": format!("{}:{port}", vhost.hostname),
        "domains": domains,
        "routes": reachable(&vhost.routes).iter().map(|r| route(r, listening)).collect::<Vec<_>>(),
    });
    if role == ProxyRole::Gateway {
        // Istio's default proxy headers: upstream requests carry x-envoy-attempt-count.
        host["include_request_attempt_count"] = json!(true);
    }
    host
}

/// The routes up to the first that matches every request: Istio writes none after it
/// (`BuildHTTPRoutesForVirtualService` stops at a route `IsCatchAllRoute` accepts: a
/// `/` prefix or the regex `.*`, with no header, method or query condition;
/// `pilot/pkg/networking/core/route/route.go`).
fn reachable(routes: &[RoutePlan]) -> &[RoutePlan] {
    let catch_all = |r: &RoutePlan| {
        let every_path = match &r.path {
            PathMatch::Prefix(prefix) => prefix.trim_end_matches('/').is_empty(),
            PathMatch::Regex(regex) => regex == ".*",
            PathMatch::Exact(_) => false,
        };
        every_path && r.headers.is_empty() && r.query_params.is_empty() && r.method.is_none()
    };
    match routes.iter().position(catch_all) {
        Some(last) => &routes[..=last],
        None => routes,
    }
}

/// One route, as Istio's `TranslateRoute` writes it (istio/istio
/// `pilot/pkg/networking/core/route/route.go`): the match, the rule's header edits,
/// then a redirect, a direct response or the route action.
fn route(plan: &RoutePlan, listening: Listening) -> Value {
    let mut out = json!({"name": plan.name, "match": route_match(plan)});
    let mut headers = plan.filters.headers.clone();
    // A single destination's header modifiers join the route's, after them
    // (`processDestination`); weighted clusters carry their own.
    let single_backend = match &plan.action {
        RouteAction::Cluster(_) => plan.backend_headers.first(),
        _ => None,
    };
    if let Some(backend) = single_backend {
        append_edits(&mut headers.request, &backend.request);
        append_edits(&mut headers.response, &backend.response);
    }
    write_header_edits(&mut out, "request", &headers.request);
    write_header_edits(&mut out, "response", &headers.response);
    if let Some(redirect) = &plan.filters.redirect {
        out["redirect"] = redirect_action(redirect, listening);
        return out;
    }
    let target = match &plan.action {
        RouteAction::DirectResponse(status) => {
            out["direct_response"] = json!({"status": status});
            return out;
        }
        RouteAction::Cluster(name) => json!({"cluster": name}),
        RouteAction::Weighted(clusters) => json!({"weighted_clusters": {
            "clusters": clusters.iter().enumerate().map(|(i, (name, weight))| {
                let mut cluster = json!({"name": name, "weight": weight});
                if let Some(edits) = plan.backend_headers.get(i) {
                    write_header_edits(&mut cluster, "request", &edits.request);
                    write_header_edits(&mut cluster, "response", &edits.response);
                    if let Some(authority) = &edits.request.authority {
                        cluster["host_rewrite_literal"] = json!(authority);
                    }
                }
                cluster
            }).collect::<Vec<_>>()
        }}),
    };
    let mut action = route_action(target, plan.timeout);
    rewrite_into(&mut action, plan, &headers);
    if !plan.filters.mirrors.is_empty() {
        action["request_mirror_policies"] = plan
            .filters
            .mirrors
            .iter()
            .map(|m| {
                let mut fraction = json!({"numerator": m.numerator});
                fraction["denominator"] = json!(if m.per_million { "MILLION" } else { "HUNDRED" });
                // The mirrored request keeps its Host: Istio turns off Envoy's
                // `-shadow` suffix (`DISABLE_SHADOW_HOST_SUFFIX`, on by default,
                // `TranslateRequestMirrorPolicy`).
                json!({
                    "cluster": m.cluster,
                    "runtime_fraction": {"default_value": fraction},
                    "trace_sampled": false,
                    "disable_shadow_host_suffix_append": true
                })
            })
            .collect();
    }
    out["route"] = action;
    out
}

fn route_match(plan: &RoutePlan) -> serde_json::Map<String, Value> {
    let mut matcher = serde_json::Map::new();
    match &plan.path {
        PathMatch::Exact(path) => {
            matcher.insert("path".into(), json!(path));
        }
        PathMatch::Prefix(prefix) => {
            // Gateway API prefixes match whole segments ("/foo" matches "/foo/bar",
            // not "/foobar"), which is Envoy's path_separated_prefix; it refuses a
            // trailing slash, and "/" is every path.
            let trimmed = prefix.trim_end_matches('/');
            if trimmed.is_empty() {
                matcher.insert("prefix".into(), json!("/"));
            } else {
                matcher.insert("path_separated_prefix".into(), json!(trimmed));
            }
        }
        PathMatch::Regex(regex) => {
            matcher.insert("safe_regex".into(), json!({"regex": regex}));
        }
    }
    let mut headers: Vec<Value> = plan
        .headers
        .iter()
        .map(|c| condition(c, "string_match"))
        .collect();
    if let Some(method) = &plan.method {
        headers.push(json!({"name": ":method", "string_match": {"exact": method.as_str()}}));
    }
    if !headers.is_empty() {
        matcher.insert("headers".into(), Value::Array(headers));
    }
    if !plan.query_params.is_empty() {
        matcher.insert(
            "query_parameters".into(),
            plan.query_params
                .iter()
                .map(|c| condition(c, "string_match"))
                .collect(),
        );
    }
    matcher
}

/// A header or query parameter matcher (`translateHeaderMatch`,
/// `translateQueryParamMatch`).
fn condition(condition: &MatchCondition, string_key: &str) -> Value {
    let mut out = json!({"name": condition.name});
    match &condition.value {
        StringMatch::Exact(value) => out[string_key] = json!({"exact": value}),
        StringMatch::Regex(regex) => out[string_key] = json!({"safe_regex": {"regex": regex}}),
        StringMatch::Present => out["present_match"] = json!(true),
    }
    out
}

fn append_edits(to: &mut HeaderEdits, from: &HeaderEdits) {
    to.set.extend(from.set.iter().cloned());
    to.add.extend(from.add.iter().cloned());
    to.remove.extend(from.remove.iter().cloned());
    // The route's own host rewrite wins over a backend's.
    if to.authority.is_none() {
        to.authority.clone_from(&from.authority);
    }
}

/// `request_headers_to_add` / `_to_remove` (or the response ones): `set` entries
/// overwrite, `add` entries append (`translateAppendHeaders`).
fn write_header_edits(out: &mut Value, direction: &str, edits: &HeaderEdits) {
    let to_add: Vec<Value> = edits
        .set
        .iter()
        .map(|h| (h, "OVERWRITE_IF_EXISTS_OR_ADD"))
        .chain(edits.add.iter().map(|h| (h, "APPEND_IF_EXISTS_OR_ADD")))
        .map(|((name, value), action)| {
            json!({"header": {"key": name, "value": value}, "append_action": action})
        })
        .collect();
    if !to_add.is_empty() {
        out[format!("{direction}_headers_to_add")] = Value::Array(to_add);
    }
    if !edits.remove.is_empty() {
        out[format!("{direction}_headers_to_remove")] = json!(edits.remove);
    }
}

/// A redirect (`ApplyRedirect`): the Location's parts Envoy replaces.
fn redirect_action(redirect: &Redirect, listening: Listening) -> Value {
    let mut out = json!({});
    if let Some(host) = &redirect.hostname {
        out["host_redirect"] = json!(host);
    }
    match &redirect.path {
        Some(RedirectPath::Full(path)) => out["path_redirect"] = json!(path),
        Some(RedirectPath::Prefix(prefix)) => out["prefix_rewrite"] = json!(prefix),
        // Istio always sets the path oneof; Envoy reads an empty one as "keep the path".
        None => out["path_redirect"] = json!(""),
    }
    if let Some(scheme) = redirect.scheme {
        out["scheme_redirect"] = json!(scheme);
    }
    if let Some(port) = redirect.port_for(listening.port, listening.tls) {
        out["port_redirect"] = json!(port);
    }
    out["response_code"] = json!(match redirect.status {
        302 => "FOUND",
        303 => "SEE_OTHER",
        307 => "TEMPORARY_REDIRECT",
        308 => "PERMANENT_REDIRECT",
        _ => "MOVED_PERMANENTLY",
    });
    out
}

/// A URLRewrite and the host rewrite of a `Host` header edit
/// (`applyHTTPRouteDestination`): a full path becomes a regex rewrite of `/.*`; a
/// prefix `/` a regex that drops the matched prefix; another prefix a prefix rewrite.
fn rewrite_into(action: &mut Value, plan: &RoutePlan, headers: &HeaderFilters) {
    let mut authority = headers.request.authority.clone();
    if let Some(rewrite) = &plan.filters.rewrite {
        match &rewrite.path {
            Some(PathRewrite::Full(path)) => {
                action["regex_rewrite"] =
                    json!({"pattern": {"regex": "/.*"}, "substitution": path});
            }
            Some(PathRewrite::Prefix(prefix)) if prefix == "/" => {
                let matched = match &plan.path {
                    PathMatch::Prefix(p) => p.trim_end_matches('/'),
                    _ => "",
                };
                action["regex_rewrite"] = json!({
                    "pattern": {"regex": format!("^{}(/?)(.*)", go_quote_meta(matched))},
                    // Keeps a `/` when the whole path is the prefix.
                    "substitution": "/\\2"
                });
            }
            Some(PathRewrite::Prefix(prefix)) => action["prefix_rewrite"] = json!(prefix),
            None => {}
        }
        if let Some(host) = &rewrite.hostname {
            authority = Some(host.clone());
        }
    }
    if let Some(authority) = authority {
        action["host_rewrite_literal"] = json!(authority);
    }
}

/// Go's `regexp.QuoteMeta`, which Istio quotes the prefix with: a backslash before
/// each of `\.+*?()|[]{}^$` and nothing else (the `regex` crate's `escape` also
/// escapes `-`, `#`, `&` and `~`, which would spell the pattern differently).
fn go_quote_meta(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Istio's defaults for every HTTP route: no route timeout (unless the rule sets
/// one), and two retries on
/// connection failures, each to a different host. `retriable-status-codes` stays in
/// `retry_on` with no status code listed, so no response status is retried: since
/// Istio 1.24 (`EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY`) a 503 from the backend reaches
/// the client (istio/istio `pilot/pkg/networking/core/route/retry/retry.go`,
/// `DefaultPolicy`; checked by `tests/integration/istio_oracle.rs`).
fn route_action(mut target: Value, timeout: Option<Duration>) -> Value {
    let timeout = json!(proto_duration(timeout.unwrap_or(Duration::ZERO)));
    target["timeout"] = timeout.clone();
    // Istio bounds a gRPC request's own `grpc-timeout` by the route timeout
    // (`setTimeout`, `pilot/pkg/networking/core/route/route.go`).
    target["max_grpc_timeout"] = timeout;
    // A Gateway API route answers a backend that resolves to nothing with 500 (istio/istio
    // `applyHTTPRouteDestination`, `pilot/pkg/networking/core/route/route.go`).
    target["cluster_not_found_response_code"] = json!("INTERNAL_SERVER_ERROR");
    target["retry_policy"] = json!({
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
        }],
        "host_selection_retry_max_attempts": 5
    });
    target
}

/// One STATIC cluster with the DestinationRule applied as Istio applies it.
pub fn cluster(plan: &ClusterPlan, pods: &[Vec<SocketAddr>]) -> Value {
    let policy = plan.policy.clone().unwrap_or_default();
    let endpoints: Vec<Value> = plan
        .workloads
        .iter()
        .flat_map(|&w| pods.get(w).into_iter().flatten())
        .map(|addr| lb_endpoint(*addr))
        .collect();
    let mut cluster = json!({
        "name": plan.name,
        "type": "STATIC",
        "connect_timeout": proto_duration(policy.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)),
        "lb_policy": policy.lb_policy.unwrap_or(DEFAULT_LB_POLICY).envoy_name(),
        "load_assignment": {
            "cluster_name": plan.name,
            "endpoints": [{"lb_endpoints": endpoints}]
        },
        "circuit_breakers": circuit_breakers(&policy),
    });
    if let Some(options) = protocol_options(&policy, plan.protocol) {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": options
        });
    }
    if let Some(outlier) = &policy.outlier {
        let mut out = json!({"enforcing_success_rate": 0});
        if let Some(n) = outlier.consecutive_5xx {
            out["consecutive_5xx"] = json!(n);
            out["enforcing_consecutive_5xx"] = json!(if n > 0 { 100 } else { 0 });
        }
        if let Some(n) = outlier.consecutive_gateway_errors {
            out["consecutive_gateway_failure"] = json!(n);
            out["enforcing_consecutive_gateway_failure"] = json!(if n > 0 { 100 } else { 0 });
        }
        if let Some(d) = outlier.interval {
            out["interval"] = json!(proto_duration(d));
        }
        if let Some(d) = outlier.base_ejection_time {
            out["base_ejection_time"] = json!(proto_duration(d));
        }
        if let Some(p) = outlier.max_ejection_percent.filter(|p| *p > 0) {
            out["max_ejection_percent"] = json!(p);
        }
        cluster["outlier_detection"] = out;
        // With outlier detection Istio turns Envoy's panic mode off (minHealthPercent,
        // default 0), so ejected hosts really stop getting traffic.
        cluster["common_lb_config"] = json!({
            "healthy_panic_threshold": {"value": outlier.min_health_percent.unwrap_or(0)}
        });
    }
    cluster
}

/// One endpoint of a STATIC cluster.
fn lb_endpoint(address: SocketAddr) -> Value {
    json!({"endpoint": {"address": {"socket_address": {
        "address": address.ip().to_string(), "port_value": address.port()
    }}}})
}

/// A policy's connection limits, every one not set at Istio's default.
fn circuit_breakers(policy: &TrafficPolicy) -> Value {
    json!({"thresholds": [{
        "max_connections": policy.max_connections.unwrap_or(UNLIMITED),
        "max_pending_requests": policy.max_pending_requests.unwrap_or(UNLIMITED),
        "max_requests": policy.max_requests.unwrap_or(UNLIMITED),
        "max_retries": policy.max_retries.unwrap_or(UNLIMITED),
        "track_remaining": true
    }]})
}

/// The cluster's HTTP protocol options, as Istio's cluster builder sets them
/// (`setUpstreamProtocol` and `setH2Options`, istio/istio
/// `pilot/pkg/networking/core/cluster_builder.go`): an HTTP/2 port (`http2`, `grpc`,
/// `kubernetes.io/h2c`) gets an explicit HTTP/2 upstream; any other port HTTP/1.1, which
/// is explicit only when the DestinationRule sets connection options. A gateway never
/// uses the downstream protocol (Istio does that for sidecars on sniffed ports only).
fn protocol_options(policy: &TrafficPolicy, protocol: PortProtocol) -> Option<Value> {
    let http2 = protocol == PortProtocol::Http2;
    if policy.max_requests_per_connection.is_none() && policy.idle_timeout.is_none() && !http2 {
        return None;
    }
    let mut common = serde_json::Map::new();
    if let Some(n) = policy.max_requests_per_connection {
        common.insert("max_requests_per_connection".into(), json!(n));
    }
    if let Some(d) = policy.idle_timeout {
        common.insert("idle_timeout".into(), json!(proto_duration(d)));
    }
    Some(json!({
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": common,
        "explicit_http_config": if http2 {
            json!({"http2_protocol_options": {}})
        } else {
            json!({"http_protocol_options": {}})
        }
    }))
}
