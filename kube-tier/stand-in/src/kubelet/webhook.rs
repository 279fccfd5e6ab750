//! The sidecar injection webhook, served on 127.0.0.1 over TLS with a CA made at
//! startup, and registered as Istio registers its injector: a
//! MutatingWebhookConfiguration with the four webhooks of Istio's default revision
//! (istio `manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml`:
//! namespaces labelled `istio-injection=enabled`, or `istio.io/rev=default`, and pods
//! labelled `sidecar.istio.io/inject=true` or `istio.io/rev=default` elsewhere), so the
//! real API server decides which pods reach it, as on a cluster.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_util::sync::CancellationToken;

use super::KubeletError;
use super::inject::{INJECT_LABEL, injection_patch, injection_required};

/// The MutatingWebhookConfiguration the stand-in registers (and removes at shutdown).
pub const CONFIGURATION: &str = "kube-tier-sidecar-injector";
/// The path Istio's injector serves.
const PATH: &str = "/inject";

/// The webhook, listening; [`Injector::serve`] answers until shutdown.
pub struct Injector {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    /// The CA that signed the serving certificate, PEM: the configuration's caBundle.
    ca_pem: String,
    pub address: SocketAddr,
}

impl Injector {
    /// Makes a CA and a serving certificate for 127.0.0.1 and binds a loopback port.
    pub async fn bind() -> Result<Injector, KubeletError> {
        let certificate = KubeletError::WebhookCertificate;
        let ca_key = KeyPair::generate().map_err(certificate)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(certificate)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kube-tier stand-in injector CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(certificate)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().map_err(certificate)?;
        let mut server_params =
            CertificateParams::new(Vec::<String>::new()).map_err(certificate)?;
        server_params.subject_alt_names = vec![SanType::IpAddress(std::net::IpAddr::V4(
            Ipv4Addr::LOCALHOST,
        ))];
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(certificate)?;
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![server_cert.der().clone()],
                    PrivateKeyDer::from(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
                )
            })
            .map_err(KubeletError::WebhookTls)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(KubeletError::WebhookListen)?;
        let address = listener.local_addr().map_err(KubeletError::WebhookListen)?;
        Ok(Injector {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: ca_cert.pem(),
            address,
        })
    }

    /// Registers the configuration pointing at this webhook (server-side apply, so a
    /// stale one from an earlier run is replaced).
    pub async fn register(&self, client: &kube::Client) -> Result<(), KubeletError> {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let configuration =
            configuration(&self.url(), &self.ca_pem).map_err(KubeletError::WebhookConfiguration)?;
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
        format!("https://{}{PATH}", self.address)
    }

    /// Answers admission reviews until `shutdown`.
    pub async fn serve(self, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let acceptor = self.acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
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
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
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
