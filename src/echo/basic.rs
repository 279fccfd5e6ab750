//! The Gateway API conformance backend's answer: what `echo-basic`
//! (`gcr.io/k8s-staging-gateway-api/echo-basic`, source in kubernetes-sigs/gateway-api
//! `conformance/echo-basic/echo-basic.go`) says it received, and which pod said it.
//!
//! Every request echo-basic echoes gets a JSON body in the shape of
//! [`EchoedRequest`]; `meshcheck echo` answers in the same shape in its echo-basic
//! mode, so a body parses the same way whether the real image or the local target
//! served it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The JSON body echo-basic answers with (upstream `RequestAssertions`, with its
/// `Context` inlined), field for field and in its order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoedRequest {
    /// The request target as the backend received it (Go's `RequestURI`): the path
    /// *with* the query string, if any (`/path?query=1`), slashes as sent.
    pub path: String,
    /// The `Host` header (or HTTP/2 `:authority`), port included when sent.
    pub host: String,
    /// The method, as sent (`GET`).
    pub method: String,
    /// The protocol version, as Go writes it: `HTTP/1.1`, `HTTP/2.0`.
    pub proto: String,
    /// The request headers, names in Go's canonical form (`X-Echo-Set-Header`), each
    /// with its values in the order received. `Host` is not among them (it is
    /// [`EchoedRequest::host`]), as in Go's `http.Request.Header`.
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,
    /// The `NAMESPACE` environment variable (the manifests set it from
    /// `metadata.namespace`); empty when unset.
    #[serde(default)]
    pub namespace: String,
    /// The `INGRESS_NAME` environment variable; empty when unset (the conformance
    /// manifests never set it).
    #[serde(default)]
    pub ingress: String,
    /// The `SERVICE_NAME` environment variable; empty when unset (the conformance
    /// manifests never set it).
    #[serde(default)]
    pub service: String,
    /// The `POD_NAME` environment variable (the manifests set it from
    /// `metadata.name`): `<deployment>-<pod-template-hash>-<suffix>`, see
    /// [`deployment_of_pod`].
    #[serde(default)]
    pub pod: String,
    /// The TLS connection the request came on, when it came over TLS (omitted
    /// otherwise, as upstream does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EchoedTls>,
    /// The server name a backend-TLS request (`/backendTLS`) asked for; empty
    /// otherwise. Newer echo-basic builds write it (empty when there is none); the
    /// build the v1.3.0 manifests pin does not, and neither does `meshcheck echo`
    /// when it is empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
}

/// The TLS part of [`EchoedRequest`] (upstream `TLSAssertions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoedTls {
    /// `TLSv1.3`, `TLSv1.2`, ...
    pub version: String,
    /// The client's certificates, PEM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer_certificates: Vec<String>,
    /// Certificates the gateway presented to authenticate itself to the backend, PEM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_certificates: Vec<String>,
    /// The SNI the client sent.
    #[serde(default)]
    pub server_name: String,
    /// The ALPN protocol agreed on, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub negotiated_protocol: String,
    /// Go's name of the cipher suite (`TLS_AES_128_GCM_SHA256`).
    #[serde(default)]
    pub cipher_suite: String,
}

impl EchoedRequest {
    /// The path without the query string: what a route matched on.
    pub fn path_without_query(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(self.path.as_str(), |(path, _)| path)
    }

    /// The values of a header, its name compared case-insensitively (echo-basic
    /// writes names canonicalised; a name that Go leaves as sent is still found).
    pub fn header(&self, name: &str) -> Option<&[String]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, values)| values.as_slice())
    }

    /// The Deployment of the pod that answered ([`deployment_of_pod`] of
    /// [`EchoedRequest::pod`]).
    pub fn deployment(&self) -> Option<&str> {
        deployment_of_pod(&self.pod)
    }

    /// The same facts from the text Istio's echo server (the mesh image
    /// echo-advanced, `meshcheck echo -echo-advanced`) answers with, one `Field=value`
    /// line each: `URL` is [`EchoedRequest::path`], `Host`, `Method`, `Proto`, each
    /// `RequestHeader=Name:value` a header value, `Hostname` (the pod's name) is
    /// [`EchoedRequest::pod`]. That text names no namespace, ingress or service: they
    /// stay empty. `None` when the text has no `Hostname=` line, so is not such an
    /// answer.
    pub fn from_istio_echo(text: &str) -> Option<EchoedRequest> {
        let mut echoed = EchoedRequest::default();
        let mut hostname = None;
        for line in text.lines() {
            let Some((field, value)) = line.split_once('=') else {
                continue;
            };
            match field {
                "URL" => echoed.path = value.to_string(),
                "Host" => echoed.host = value.to_string(),
                "Method" => echoed.method = value.to_string(),
                "Proto" => echoed.proto = value.to_string(),
                "Hostname" => hostname = Some(value.to_string()),
                "RequestHeader" => {
                    if let Some((name, value)) = value.split_once(':') {
                        echoed
                            .headers
                            .entry(name.to_string())
                            .or_default()
                            .push(value.to_string());
                    }
                }
                _ => {}
            }
        }
        echoed.pod = hostname?;
        Some(echoed)
    }

    /// A backend's answer, whichever conformance image gave it: echo-basic's JSON, or
    /// echo-advanced's text ([`EchoedRequest::from_istio_echo`]).
    pub fn parse_body(body: &[u8]) -> Result<EchoedRequest, BodyError> {
        let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
        if text.trim_start().starts_with('{') {
            return serde_json::from_str(text).map_err(BodyError::Json);
        }
        EchoedRequest::from_istio_echo(text).ok_or(BodyError::NotAnEcho)
    }
}

/// Why a response body is not an echo of the request.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("the body is not echo-basic's JSON")]
    Json(#[source] serde_json::Error),
    #[error("the body is neither echo-basic's JSON nor Istio echo's text (no `Hostname=` line)")]
    NotAnEcho,
}

/// The Deployment a pod belongs to, from the pod's name alone: a Deployment's
/// ReplicaSet is `<deployment>-<pod-template-hash>` and its pods
/// `<replicaset>-<5 random characters>`, so the name is the pod's with its last two
/// `-`-separated parts taken off. `None` for a name not of that form (no two
/// trailing parts, a suffix that is not 5 lowercase alphanumerics, a hash that is not
/// lowercase alphanumerics, or nothing left for the Deployment).
///
/// Kubernetes truncates a generated name's base to 58 characters, so a pod of a
/// Deployment whose name is longer than about 47 characters loses part of the
/// Deployment's name; the conformance Deployments are far shorter.
pub fn deployment_of_pod(pod: &str) -> Option<&str> {
    let (replica_set, suffix) = pod.rsplit_once('-')?;
    let (deployment, hash) = replica_set.rsplit_once('-')?;
    let lower_alphanumeric = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let valid = suffix.len() == 5
        && lower_alphanumeric(suffix)
        && !hash.is_empty()
        && lower_alphanumeric(hash)
        && !deployment.is_empty();
    valid.then_some(deployment)
}

/// The characters Kubernetes puts in generated names (`rand.SafeEncodeString`'s
/// alphabet: no vowels, no 0, 1 or 3, so no words).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Kubernetes cuts a generated name's base to this length before the 5 random
/// characters (`names.SimpleNameGenerator`), so a pod name fits 63.
const MAX_GENERATED_BASE: usize = 58;

fn fnv1a32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The names of a Deployment's pods, as a ReplicaSet would name them
/// (`<deployment>-<pod-template-hash>-<5 characters>`), but deterministic: the hash
/// is Kubernetes' encoding of a 32-bit FNV-1a hash of `namespace/deployment` (the
/// decimal digits mapped onto the safe alphabet, as `SafeEncodeString` does), each
/// suffix 5 safe characters from the hash of `namespace/deployment/replica`, distinct
/// within the Deployment. [`deployment_of_pod`] gives the Deployment back (unless
/// the name was long enough to be cut to 58 characters before the suffix).
pub fn replica_set_pod_names(namespace: &str, deployment: &str, replicas: u32) -> Vec<String> {
    let template_hash: String = fnv1a32(&format!("{namespace}/{deployment}"))
        .to_string()
        .bytes()
        .map(|digit| char::from(SAFE_ALPHABET[usize::from(digit) % SAFE_ALPHABET.len()]))
        .collect();
    let mut base = format!("{deployment}-{template_hash}-");
    if base.len() > MAX_GENERATED_BASE {
        let mut cut = MAX_GENERATED_BASE;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    let mut names: Vec<String> = Vec::new();
    for replica in 0..replicas {
        // A collision (about one in 14 million per pair) takes the next salt.
        for salt in 0u32.. {
            let mut hash = fnv1a32(&format!("{namespace}/{deployment}/{replica}/{salt}"));
            let suffix: String = (0..5)
                .map(|_| {
                    let radix = SAFE_ALPHABET.len() as u32;
                    let c = SAFE_ALPHABET[(hash % radix) as usize];
                    hash /= radix;
                    char::from(c)
                })
                .collect();
            let name = format!("{base}{suffix}");
            if !names.contains(&name) {
                names.push(name);
                break;
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pod_names_are_deterministic_and_give_the_deployment_back() {
        let names = replica_set_pod_names("gateway-conformance-infra", "infra-backend-v1", 3);
        assert_eq!(names.len(), 3);
        assert_eq!(
            names,
            replica_set_pod_names("gateway-conformance-infra", "infra-backend-v1", 3)
        );
        for name in &names {
            assert_eq!(deployment_of_pod(name), Some("infra-backend-v1"), "{name}");
            assert!(name.len() <= 63);
        }
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique.len(), 3);
        // Another namespace, another template hash.
        let other = replica_set_pod_names("other", "infra-backend-v1", 1);
        assert_ne!(
            other[0].rsplit_once('-').unwrap().0,
            names[0].rsplit_once('-').unwrap().0
        );
        let long = "d".repeat(70);
        let cut = replica_set_pod_names("ns", &long, 1);
        assert_eq!(cut[0].len(), 63);
    }

    #[test]
    fn parses_istio_echo_text() {
        let text = "ServiceVersion=\nServicePort=8080\nHost=echo:80\nURL=/path?x=1\nCluster=\nIstioVersion=\nMethod=GET\nProto=HTTP/1.1\nIP=10.0.0.1\nAlpn=\nRequestHeader=A-Header:1\nRequestHeader=A-Header:3\nRequestHeader=X-Colon:a:b\nHostname=echo-v1-7d9b8f5c6-x2x4z\n";
        let echoed = EchoedRequest::parse_body(text.as_bytes()).unwrap();
        assert_eq!(echoed.path, "/path?x=1");
        assert_eq!(echoed.host, "echo:80");
        assert_eq!(echoed.method, "GET");
        assert_eq!(echoed.proto, "HTTP/1.1");
        assert_eq!(
            echoed.header("a-header"),
            Some(&["1".to_string(), "3".to_string()][..])
        );
        assert_eq!(echoed.header("x-colon"), Some(&["a:b".to_string()][..]));
        assert_eq!(echoed.deployment(), Some("echo-v1"));
        assert_eq!(echoed.namespace, "");
        assert!(matches!(
            EchoedRequest::parse_body(b"hello from backend v1\n"),
            Err(BodyError::NotAnEcho)
        ));
        assert!(matches!(
            EchoedRequest::parse_body(b"{\"path\": 1}"),
            Err(BodyError::Json(_))
        ));
        let json = br#"{"path":"/","host":"h","method":"GET","proto":"HTTP/1.1","headers":{},"namespace":"ns","ingress":"","service":"","pod":"p-abc-defgh"}"#;
        assert_eq!(EchoedRequest::parse_body(json).unwrap().namespace, "ns");
    }

    #[test]
    fn deployment_of_a_replica_set_pod() {
        assert_eq!(
            deployment_of_pod("infra-backend-v1-7d9b8f5c6-x2x4z"),
            Some("infra-backend-v1")
        );
        assert_eq!(deployment_of_pod("a-b-ccccc"), Some("a"));
        // Not a Deployment's pod: a StatefulSet's, a bare pod, a short suffix.
        assert_eq!(deployment_of_pod("web-0"), None);
        assert_eq!(deployment_of_pod("client"), None);
        assert_eq!(deployment_of_pod("backend-7d9b8f5c6-x2x4"), None);
        assert_eq!(deployment_of_pod("backend-7d9b8f5c6-X2X4Z"), None);
        assert_eq!(deployment_of_pod("-7d9b8f5c6-x2x4z"), None);
        assert_eq!(deployment_of_pod("backend--x2x4z"), None);
        assert_eq!(deployment_of_pod(""), None);
    }

    /// A body as the real image writes it (Go's `json.MarshalIndent` with one space),
    /// parsed and written back.
    #[test]
    fn parses_echo_basic_json() {
        let body = r#"{
 "path": "/prefix/foo?query=1",
 "host": "example.com",
 "method": "GET",
 "proto": "HTTP/1.1",
 "headers": {
  "Accept-Encoding": [
   "gzip"
  ],
  "X-Multi": [
   "a",
   "b"
  ]
 },
 "namespace": "gateway-conformance-infra",
 "ingress": "",
 "service": "",
 "pod": "infra-backend-v1-7d9b8f5c6-x2x4z"
}"#;
        let echoed: EchoedRequest = serde_json::from_str(body).unwrap();
        assert_eq!(echoed.path_without_query(), "/prefix/foo");
        assert_eq!(echoed.host, "example.com");
        assert_eq!(
            echoed.header("x-multi"),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(echoed.deployment(), Some("infra-backend-v1"));
        assert_eq!(echoed.namespace, "gateway-conformance-infra");
        assert_eq!(echoed.tls, None);
        assert_eq!(echoed.sni, "");
        let written = serde_json::to_value(&echoed).unwrap();
        let keys: Vec<&str> = written
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "headers",
                "host",
                "ingress",
                "method",
                "namespace",
                "path",
                "pod",
                "proto",
                "service",
            ]
        );
    }
}
