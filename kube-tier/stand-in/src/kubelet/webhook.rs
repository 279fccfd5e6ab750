//! The sidecar injection webhook, served on 127.0.0.1 over TLS with a CA made at
//! startup, and registered as Istio registers its injector: a
//! MutatingWebhookConfiguration with the four webhooks of Istio's default revision
//! (istio `manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml`:
//! namespaces labelled `istio-injection=enabled`, or `istio.io/rev=default`, and pods
//! labelled `sidecar.istio.io/inject=true` or `istio.io/rev=default` elsewhere), so the
//! real API server decides which pods reach it, as on a cluster.

use std::convert::Infallible;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::KubeletError;
use super::inject::{INJECT_LABEL, injection_patch, injection_required};
use super::tls_server::TlsServer;

/// The MutatingWebhookConfiguration the stand-in registers (and removes at shutdown).
pub const CONFIGURATION: &str = "kube-tier-sidecar-injector";
/// The path Istio's injector serves.
const PATH: &str = "/inject";

/// The webhook, listening; [`Injector::serve`] answers until shutdown.
pub struct Injector {
    server: TlsServer,
}

impl Injector {
    /// Makes a CA and a serving certificate for 127.0.0.1 and binds a loopback port.
    pub async fn bind() -> Result<Injector, KubeletError> {
        Ok(Injector {
            server: TlsServer::bind("injector").await?,
        })
    }

    /// Registers the configuration pointing at this webhook (server-side apply, so a
    /// stale one from an earlier run is replaced).
    pub async fn register(&self, client: &kube::Client) -> Result<(), KubeletError> {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let configuration = configuration(&self.url(), &self.server.ca_pem)
            .map_err(KubeletError::WebhookConfiguration)?;
        api.patch(
            CONFIGURATION,
            &PatchParams::apply("kube-tier-stand-in").force(),
            &Patch::Apply(configuration),
        )
        .await
        .map_err(|source| KubeletError::Api {
            what: format!("register MutatingWebhookConfiguration {CONFIGURATION}"),
            source,
        })?;
        Ok(())
    }

    fn url(&self) -> String {
        format!("https://{}{PATH}", self.server.address)
    }

    /// Answers admission reviews until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) {
        self.server.serve(shutdown, answer).await;
    }
}

/// Removes the configuration, so pods created after the stand-in stopped are not
/// refused by a webhook nobody serves (failurePolicy Fail).
pub async fn unregister(client: &kube::Client) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    if let Err(err) = api.delete(CONFIGURATION, &DeleteParams::default()).await {
        eprintln!(
            "kube-stand-in: could not remove MutatingWebhookConfiguration {CONFIGURATION}: {err}"
        );
    }
}

/// Istio's four injection webhooks of the default revision, all calling `url`.
fn configuration(
    url: &str,
    ca_pem: &str,
) -> Result<MutatingWebhookConfiguration, serde_json::Error> {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let webhook = |name: &str, namespace_selector: Value, object_selector: Value| {
        json!({
            "name": name,
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
            "reinvocationPolicy": "Never",
            "namespaceSelector": {"matchExpressions": namespace_selector},
            "objectSelector": {"matchExpressions": object_selector},
        })
    };
    let expr = |key: &str, operator: &str, values: &[&str]| {
        if values.is_empty() {
            json!({"key": key, "operator": operator})
        } else {
            json!({"key": key, "operator": operator, "values": values})
        }
    };
    let not_opted_out = expr(INJECT_LABEL, "NotIn", &["false"]);
    let value = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION, "labels": {"app": "sidecar-injector", "istio.io/rev": "default"}},
        "webhooks": [
            webhook(
                "rev.namespace.sidecar-injector.istio.io",
                json!([expr("istio.io/rev", "In", &["default"]), expr("istio-injection", "DoesNotExist", &[])]),
                json!([not_opted_out]),
            ),
            webhook(
                "rev.object.sidecar-injector.istio.io",
                json!([expr("istio.io/rev", "DoesNotExist", &[]), expr("istio-injection", "DoesNotExist", &[])]),
                json!([not_opted_out, expr("istio.io/rev", "In", &["default"])]),
            ),
            webhook(
                "namespace.sidecar-injector.istio.io",
                json!([expr("istio-injection", "In", &["enabled"])]),
                json!([not_opted_out]),
            ),
            webhook(
                "object.sidecar-injector.istio.io",
                json!([expr("istio-injection", "DoesNotExist", &[]), expr("istio.io/rev", "DoesNotExist", &[])]),
                json!([expr(INJECT_LABEL, "In", &["true"]), expr("istio.io/rev", "DoesNotExist", &[])]),
            ),
        ],
    });
    serde_json::from_value(value)
}

/// One AdmissionReview (admission.k8s.io/v1) in, its answer out.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::new(Bytes::from_static(
                b"the request body was cut off",
            )))
            .unwrap_or_default());
    };
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::new(Bytes::from_static(b"not an AdmissionReview")))
            .unwrap_or_default());
    };
    let response = review_response(&review);
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(response.to_string())))
        .unwrap_or_default())
}

/// The AdmissionReview response: allowed, with the injection patch when Istio would
/// inject.
fn review_response(review: &Value) -> Value {
    let request = &review["request"];
    let pod = &request["object"];
    let namespace = request["namespace"].as_str().unwrap_or_default();
    let mut response = json!({"uid": request["uid"], "allowed": true});
    if injection_required(pod, namespace) {
        let patch = injection_patch(pod).to_string();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_has_istios_four_webhooks_with_the_ca_and_url() {
        let c = configuration("https://127.0.0.1:1/inject", "PEM").unwrap();
        let webhooks = c.webhooks.unwrap();
        assert_eq!(webhooks.len(), 4);
        assert_eq!(
            webhooks[2].client_config.url.as_deref(),
            Some("https://127.0.0.1:1/inject")
        );
        assert!(webhooks.iter().all(|w| w.client_config.ca_bundle.is_some()));
    }

    #[test]
    fn a_review_is_answered_with_its_uid_and_a_patch_only_when_injected() {
        let pod = json!({"metadata": {"labels": {}}, "spec": {"containers": []}});
        let yes =
            review_response(&json!({"request": {"uid": "u1", "namespace": "a", "object": pod}}));
        assert_eq!(yes["response"]["uid"], "u1");
        assert_eq!(yes["response"]["patchType"], "JSONPatch");
        let off =
            json!({"metadata": {"labels": {INJECT_LABEL: "false"}}, "spec": {"containers": []}});
        let no =
            review_response(&json!({"request": {"uid": "u2", "namespace": "a", "object": off}}));
        assert_eq!(no["response"]["allowed"], true);
        assert!(no["response"].get("patch").is_none());
    }
}
