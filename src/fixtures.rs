//! The fixtures view: a suite's Kubernetes objects indexed and decoded once, with typed
//! accessors for the facts the suite loader and both targets need (the pods behind a
//! Service port, the DestinationRule for a host, a container's echo arguments, a
//! Gateway's listeners, HTTPRoutes with their defaults applied). IO-free: it sits on
//! [`crate::manifest`] (located YAML) and below [`crate::suite`] and
//! [`crate::targets`], so every layer reads the fixtures the same way.
//!
//! Kinds are recognised by API group and kind ([`GroupKind`]): an Istio
//! `networking.istio.io` Gateway is not a Gateway API Gateway.

mod attachment;
mod backend_ref;
mod destination_rule;
mod duration;
mod error;
mod gateway;
mod generated;
mod index;
mod injection;
pub mod istio;
mod reference_grant;
mod route;
mod service;
mod status;
mod workload;

pub use crate::manifest::GroupKind;
pub use attachment::{
    AllowedNamespaces, Attachments, ListenerAttachment, ListenerRefusal, ListenerView,
    ParentAttachment, RefusalReason, RouteKind,
};
pub use backend_ref::{BackendTarget, UnresolvedBackendRef, UnresolvedReason};
pub use destination_rule::{
    ConnectionPoolSpec, DestinationRuleFixture, HttpPoolSpec, LoadBalancerSpec,
    OutlierDetectionSpec, TcpPoolSpec, TrafficPolicySpec,
};
pub use duration::{CrdDuration, DurationError, MIN_CRD_DURATION};
pub use error::LookupError;
pub use gateway::GatewayFixture;
pub use generated::{GATEWAY_NAME_LABEL, deployed_metadata, generated_objects};
pub use index::{Backend, Fixtures, IgnoredDestinationRule, IgnoredReason};
pub use injection::{IGNORED_NAMESPACES, INJECT_LABEL, INJECTION_LABEL, REVISION_LABEL, opts_out};
pub use reference_grant::{NAMESPACE_NAME_LABEL, NamespaceFixture, ReferenceGrantFixture};
pub use route::{
    BackendRef, HeaderMatch, HeaderModifier, HttpRouteFixture, ParentRef, PathModifier,
    QueryParamMatch, RequestMirror, RequestRedirect, RouteFilter, RouteFilterKind, RouteMatch,
    RoutePath, RouteRule, RouteTimeouts, UrlRewrite,
};
pub use service::ServiceFixture;
pub use status::{
    CertificateProblem, GatewayAddressView, GatewayClassStatusView, GatewayStatusView,
    GeneratedObjectView, ISTIO_CONTROLLER_NAME, ISTIO_GATEWAY_CLASS, IstioStatus,
    ListenerStatusView, ParentRefView, RouteParentStatusView, RouteStatusView, StatusCondition,
    StatusWarning,
};
pub use workload::{EchoImage, WorkloadFixture};

/// What tests across the crate build fixtures from.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    use crate::manifest::{Manifest, load_file};

    /// The conformance base manifests (`fixtures/conformance/base/`) plus one test's
    /// (`fixtures/conformance/tests/<test>`), as the conformance suites list them.
    pub fn conformance_manifests(test: &str) -> Vec<Manifest> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance");
        let mut manifests = Vec::new();
        for file in [
            "base/namespaces.yaml",
            "base/gateways.yaml",
            "base/tls-validity-checks-certificate.yaml",
            "base/infra-backends.yaml",
            "base/web-backend.yaml",
        ] {
            manifests.extend(load_file(&root.join(file)).unwrap());
        }
        manifests.extend(load_file(&root.join("tests").join(test)).unwrap());
        manifests
    }
}
