//! A suite's place in the Gateway API conformance suite: which upstream test it
//! stands for, in which profile, exercising which features. The conformance report
//! (`report/conformance.rs`) counts suites by it, the way upstream counts tests.
//!
//! The profiles and feature names are Gateway API v1.3.0's (kubernetes-sigs/gateway-api
//! `conformance/utils/suite/profiles.go` and `pkg/features/*.go`): a profile has core
//! features, which every conformant implementation supports, and extended ones it may
//! claim. A test counts as extended when any of its features is not core to its
//! profile (`conformance/utils/suite/reports.go`).

use serde::Deserialize;

/// The `conformance:` key of a suite file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConformanceSpec {
    /// The upstream test's ShortName, e.g. `HTTPRouteExactPathMatching`.
    pub test: String,
    pub profile: Profile,
    /// The upstream test's features, e.g. `[Gateway, HTTPRoute]`.
    pub features: Vec<String>,
}

/// The conformance profiles meshcheck has scenarios for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    #[serde(rename = "GATEWAY-HTTP")]
    GatewayHttp,
    #[serde(rename = "MESH-HTTP")]
    MeshHttp,
}

/// Core to GATEWAY-HTTP (`GatewayHTTPConformanceProfile`).
const GATEWAY_HTTP_CORE: &[&str] = &["Gateway", "ReferenceGrant", "HTTPRoute"];
/// Core to MESH-HTTP (`MeshHTTPConformanceProfile`).
const MESH_HTTP_CORE: &[&str] = &["Mesh", "HTTPRoute"];

/// `GatewayExtendedFeatures` (`pkg/features/gateway.go`).
const GATEWAY_EXTENDED: &[&str] = &[
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "GatewayHTTPListenerIsolation",
    "GatewayInfrastructurePropagation",
    "GatewayAddressEmpty",
];
/// `MeshExtendedFeatures` (`pkg/features/mesh.go`).
const MESH_EXTENDED: &[&str] = &["MeshClusterIPMatching", "MeshConsumerRoute"];
/// `HTTPRouteExtendedFeatures` (`pkg/features/httproute.go`).
const HTTP_ROUTE_EXTENDED: &[&str] = &[
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteNamedRouteRule",
];

impl Profile {
    /// The name upstream reports use.
    pub fn name(self) -> &'static str {
        match self {
            Profile::GatewayHttp => "GATEWAY-HTTP",
            Profile::MeshHttp => "MESH-HTTP",
        }
    }

    pub fn core_features(self) -> &'static [&'static str] {
        match self {
            Profile::GatewayHttp => GATEWAY_HTTP_CORE,
            Profile::MeshHttp => MESH_HTTP_CORE,
        }
    }

    /// Every extended feature of the profile, in upstream's order.
    pub fn extended_features(self) -> impl Iterator<Item = &'static str> {
        let resource = match self {
            Profile::GatewayHttp => GATEWAY_EXTENDED,
            Profile::MeshHttp => MESH_EXTENDED,
        };
        resource.iter().chain(HTTP_ROUTE_EXTENDED).copied()
    }
}

/// A suite's conformance test, checked against the profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conformance {
    pub test: String,
    pub profile: Profile,
    pub features: Vec<String>,
    /// Some feature is not core to the profile: the test counts as extended.
    pub extended: bool,
}

impl Conformance {
    /// Checks the spec; the error names the offending field (`features[2]`) and why.
    pub(super) fn resolve(spec: &ConformanceSpec) -> Result<Conformance, (String, String)> {
        let test_name_ok = spec.test.starts_with(|c: char| c.is_ascii_uppercase())
            && spec.test.chars().all(|c| c.is_ascii_alphanumeric());
        if !test_name_ok {
            return Err((
                "test".into(),
                format!(
                    "`{}` is not a conformance test ShortName (such as HTTPRouteExactPathMatching)",
                    spec.test
                ),
            ));
        }
        if spec.features.is_empty() {
            return Err((
                "features".into(),
                "a conformance test has at least one feature".into(),
            ));
        }
        let profile = spec.profile;
        let mut extended = false;
        for (i, feature) in spec.features.iter().enumerate() {
            let core = profile.core_features().contains(&feature.as_str());
            if !core && !profile.extended_features().any(|f| f == feature) {
                return Err((
                    format!("features[{i}]"),
                    format!(
                        "`{feature}` is not a feature of the {} profile (Gateway API v1.3.0)",
                        profile.name()
                    ),
                ));
            }
            if spec.features[..i].contains(feature) {
                return Err((
                    format!("features[{i}]"),
                    format!("`{feature}` is listed twice"),
                ));
            }
            extended |= !core;
        }
        Ok(Conformance {
            test: spec.test.clone(),
            profile,
            features: spec.features.clone(),
            extended,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(profile: Profile, features: &[&str]) -> ConformanceSpec {
        ConformanceSpec {
            test: "HTTPRouteQueryParamMatching".into(),
            profile,
            features: features.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn a_test_with_only_core_features_is_core() {
        let core = Conformance::resolve(&spec(Profile::GatewayHttp, &["Gateway", "HTTPRoute"]));
        assert!(!core.unwrap().extended);
        let extended = Conformance::resolve(&spec(
            Profile::GatewayHttp,
            &["Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching"],
        ));
        assert!(extended.unwrap().extended);
    }

    #[test]
    fn features_outside_the_profile_are_refused() {
        let (field, message) = Conformance::resolve(&spec(
            Profile::GatewayHttp,
            &["Gateway", "MeshConsumerRoute"],
        ))
        .unwrap_err();
        assert_eq!(field, "features[1]");
        assert!(
            message.contains("not a feature of the GATEWAY-HTTP profile"),
            "{message}"
        );
        let (field, _) =
            Conformance::resolve(&spec(Profile::MeshHttp, &["Mesh", "Mesh"])).unwrap_err();
        assert_eq!(field, "features[1]");
    }

    #[test]
    fn the_test_name_is_a_short_name() {
        let mut bad = spec(Profile::MeshHttp, &["Mesh"]);
        bad.test = "mesh split".into();
        assert_eq!(Conformance::resolve(&bad).unwrap_err().0, "test");
    }
}
