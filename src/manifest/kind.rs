//! Kinds with their API group: `Gateway` alone could be Gateway API's or Istio's
//! (`networking.istio.io`), so objects are recognised by group and kind together.

use std::fmt;

/// An API group and kind, as Kubernetes identifies a type apart from its version.
/// The core group is `""`; Gateway API references may spell it `core`, which
/// [`GroupKind::new`] folds into `""`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind<'a> {
    pub group: &'a str,
    pub kind: &'a str,
}

impl GroupKind<'static> {
    pub const NAMESPACE: GroupKind<'static> = GroupKind::core("Namespace");
    pub const SERVICE: GroupKind<'static> = GroupKind::core("Service");
    pub const SECRET: GroupKind<'static> = GroupKind::core("Secret");
    pub const DEPLOYMENT: GroupKind<'static> = GroupKind {
        group: "apps",
        kind: "Deployment",
    };
    pub const CUSTOM_RESOURCE_DEFINITION: GroupKind<'static> = GroupKind {
        group: "apiextensions.k8s.io",
        kind: "CustomResourceDefinition",
    };
    pub const GATEWAY: GroupKind<'static> = GroupKind {
        group: GATEWAY_API_GROUP,
        kind: "Gateway",
    };
    /// Cluster-scoped: a GatewayClass has no namespace.
    pub const GATEWAY_CLASS: GroupKind<'static> = GroupKind {
        group: GATEWAY_API_GROUP,
        kind: "GatewayClass",
    };
    pub const HTTP_ROUTE: GroupKind<'static> = GroupKind {
        group: GATEWAY_API_GROUP,
        kind: "HTTPRoute",
    };
    /// `gateway.networking.k8s.io` ReferenceGrant (served as v1beta1 and v1).
    pub const REFERENCE_GRANT: GroupKind<'static> = GroupKind {
        group: GATEWAY_API_GROUP,
        kind: "ReferenceGrant",
    };
    pub const ENDPOINT_SLICE: GroupKind<'static> = GroupKind {
        group: "discovery.k8s.io",
        kind: "EndpointSlice",
    };
    pub const DESTINATION_RULE: GroupKind<'static> = GroupKind {
        group: "networking.istio.io",
        kind: "DestinationRule",
    };

    const fn core(kind: &'static str) -> GroupKind<'static> {
        GroupKind { group: "", kind }
    }
}

/// The Gateway API's group, the default `group` of a route's parentRef.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

impl<'a> GroupKind<'a> {
    /// A group and kind as written in a reference; `core` is the core group `""`
    /// (Gateway API allows both spellings, `apis/v1/object_reference_types.go` in
    /// kubernetes-sigs/gateway-api).
    pub fn new(group: &'a str, kind: &'a str) -> GroupKind<'a> {
        GroupKind {
            group: if group == "core" { "" } else { group },
            kind,
        }
    }
}

impl fmt::Display for GroupKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}/{}", self.group, self.kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_is_the_empty_group() {
        assert_eq!(GroupKind::new("core", "Service"), GroupKind::SERVICE);
        assert_eq!(GroupKind::new("", "Service"), GroupKind::SERVICE);
        assert_ne!(
            GroupKind::new("networking.istio.io", "Gateway"),
            GroupKind::GATEWAY
        );
        assert_eq!(
            GroupKind::GATEWAY.to_string(),
            "gateway.networking.k8s.io/Gateway"
        );
    }
}
