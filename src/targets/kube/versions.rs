//! What a cluster runs, read from what it serves: the Kubernetes server version, the
//! Gateway API CRD bundle, the Istio control plane. IO-free: the client side fetches
//! the objects (`KubeEnvironment::versions`), this reads them.

use serde_json::Value;

use crate::runner::UnknownVersion;

/// The CRD whose annotations name the installed Gateway API bundle. Every CRD of a
/// bundle carries the same two annotations; HTTPRoute is the one meshcheck cannot run
/// without.
pub const GATEWAY_API_CRD: &str = "httproutes.gateway.networking.k8s.io";

/// The annotations the Gateway API puts on each of its CRDs (`BundleVersionAnnotation`
/// and `ChannelAnnotation` in kubernetes-sigs/gateway-api `pkg/consts/consts.go`).
pub const BUNDLE_VERSION_ANNOTATION: &str = "gateway.networking.k8s.io/bundle-version";
pub const CHANNEL_ANNOTATION: &str = "gateway.networking.k8s.io/channel";

/// Where istiod runs in a default install, and its container: the `discovery`
/// container of Deployment `istiod` in `istio-system` (istio/istio
/// `manifests/charts/istio-control/istio-discovery/templates/deployment.yaml`).
pub const ISTIOD_NAMESPACE: &str = "istio-system";
pub const ISTIOD_DEPLOYMENT: &str = "istiod";
const ISTIOD_CONTAINER: &str = "discovery";
/// Image variants Istio appends to the tag (`-{{ variant }}` in the same template).
const ISTIO_IMAGE_VARIANTS: &[&str] = &["-distroless", "-debug"];

/// The versions of a cluster, each known or with the reason it is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterVersions {
    pub kubernetes: Result<String, String>,
    pub gateway_api: Result<GatewayApiBundle, String>,
    pub istio: Result<String, String>,
}

/// The Gateway API bundle the CRDs come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayApiBundle {
    pub version: String,
    /// `standard` or `experimental`; `None` when the CRD does not say.
    pub channel: Option<String>,
}

impl ClusterVersions {
    /// The known versions as fields, and one reason per unknown one.
    pub fn split(self) -> (KnownVersions, Vec<UnknownVersion>) {
        let mut unknown = Vec::new();
        let mut keep = |component: &'static str, found: Result<String, String>| match found {
            Ok(version) => Some(version),
            Err(reason) => {
                unknown.push(UnknownVersion { component, reason });
                None
            }
        };
        let kubernetes = keep("Kubernetes", self.kubernetes);
        let (gateway_api, gateway_api_channel) = match self.gateway_api {
            Ok(bundle) => (Some(bundle.version), bundle.channel),
            Err(reason) => (keep("Gateway API", Err(reason)), None),
        };
        let istio = keep("Istio", self.istio);
        (
            KnownVersions {
                kubernetes,
                gateway_api,
                gateway_api_channel,
                istio,
            },
            unknown,
        )
    }
}

/// [`ClusterVersions`] without the reasons.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownVersions {
    pub kubernetes: Option<String>,
    pub gateway_api: Option<String>,
    pub gateway_api_channel: Option<String>,
    pub istio: Option<String>,
}

/// The server's `gitVersion` from its `/version` answer (`v1.33.1`).
pub fn kubernetes_version(info: &Value) -> Result<String, String> {
    info.get("gitVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("the API server's /version names no gitVersion: {info}"))
}

/// The bundle version and channel from the Gateway API CRD's annotations.
pub fn gateway_api_bundle(crd: &Value) -> Result<GatewayApiBundle, String> {
    let annotation = |name: &str| {
        crd.pointer("/metadata/annotations")
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let version = annotation(BUNDLE_VERSION_ANNOTATION).ok_or_else(|| {
        format!(
            "CRD {GATEWAY_API_CRD} has no {BUNDLE_VERSION_ANNOTATION} annotation (installed from something other than a Gateway API release bundle?)"
        )
    })?;
    Ok(GatewayApiBundle {
        version,
        channel: annotation(CHANNEL_ANNOTATION),
    })
}

/// Istio's version from istiod's Deployment: the tag of its `discovery` container's
/// image (`docker.io/istio/pilot:1.26.2-distroless` is `1.26.2`).
pub fn istio_version(deployment: &Value) -> Result<String, String> {
    let containers = deployment
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let container = containers
        .iter()
        .find(|c| c["name"] == ISTIOD_CONTAINER)
        .or_else(|| containers.first())
        .ok_or_else(|| {
            format!("Deployment {ISTIOD_NAMESPACE}/{ISTIOD_DEPLOYMENT} has no containers")
        })?;
    let image = container["image"].as_str().unwrap_or_default();
    image_tag(image)
        .map(|tag| {
            ISTIO_IMAGE_VARIANTS
                .iter()
                .find_map(|variant| tag.strip_suffix(variant))
                .unwrap_or(tag)
                .to_owned()
        })
        .ok_or_else(|| {
            format!(
                "istiod's image {image:?} has no tag to read a version from (pinned by digest or untagged)"
            )
        })
}

/// The tag of an image reference: after the last `:` of the last path segment, before
/// any `@digest`. A registry port (`localhost:5000/pilot`) is not a tag.
fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last_segment
        .split_once(':')
        .map(|(_, tag)| tag)
        .filter(|tag| !tag.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn istiod(image: &str) -> Value {
        json!({"spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": image}]}}}})
    }

    #[test]
    fn istio_version_is_the_discovery_image_tag_without_variant() {
        assert_eq!(
            istio_version(&istiod("docker.io/istio/pilot:1.26.2")),
            Ok("1.26.2".into())
        );
        assert_eq!(
            istio_version(&istiod("gcr.io/istio-release/pilot:1.27.0-distroless")),
            Ok("1.27.0".into())
        );
        assert_eq!(
            istio_version(&istiod("localhost:5000/istio/pilot:1.26.2@sha256:abcd")),
            Ok("1.26.2".into())
        );
    }

    #[test]
    fn istio_version_is_unknown_without_a_tag() {
        for image in ["localhost:5000/istio/pilot", "istio/pilot@sha256:abcd", ""] {
            let reason = istio_version(&istiod(image)).unwrap_err();
            assert!(reason.contains("has no tag"), "{image}: {reason}");
        }
        let reason = istio_version(&json!({"spec": {}})).unwrap_err();
        assert!(reason.contains("has no containers"), "{reason}");
    }

    #[test]
    fn gateway_api_bundle_reads_both_annotations() {
        let crd = json!({"metadata": {"annotations": {
            BUNDLE_VERSION_ANNOTATION: "v1.3.0", CHANNEL_ANNOTATION: "experimental"}}});
        assert_eq!(
            gateway_api_bundle(&crd),
            Ok(GatewayApiBundle {
                version: "v1.3.0".into(),
                channel: Some("experimental".into())
            })
        );
        let reason = gateway_api_bundle(&json!({"metadata": {}})).unwrap_err();
        assert!(reason.contains(BUNDLE_VERSION_ANNOTATION), "{reason}");
    }

    #[test]
    fn split_keeps_one_reason_per_unknown_component() {
        let (known, unknown) = ClusterVersions {
            kubernetes: Ok("v1.33.1".into()),
            gateway_api: Err("no CRD".into()),
            istio: Err("no istiod".into()),
        }
        .split();
        assert_eq!(known.kubernetes.as_deref(), Some("v1.33.1"));
        assert_eq!((known.gateway_api, known.gateway_api_channel), (None, None));
        let components: Vec<_> = unknown.iter().map(|u| u.component).collect();
        assert_eq!(components, ["Gateway API", "Istio"]);
    }
}
