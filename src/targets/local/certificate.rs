//! The certificate of an HTTPS listener: `tls.crt` and `tls.key` of a Kubernetes TLS
//! Secret, checked the way Envoy will load them (PEM that parses, a key that belongs to
//! the certificate), so a broken Secret is a located error at the Secret rather than an
//! Envoy that refuses to start. The private key never shows in Debug output or logs:
//! plans end up in test failure messages.

use std::fmt;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::Secret;
use regex::Regex;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{Error as RustlsError, InconsistentKeys};

use crate::manifest::yaml::PathSegment;
use crate::manifest::{Manifest, ManifestError, ObjectKey, SourceLocation};

/// What replaces a private key in anything printed.
pub const REDACTED_KEY: &str = "<redacted private key>";

/// The Secret keys a TLS Secret keeps its certificate chain and key under.
const CERTIFICATE_KEY: &str = "tls.crt";
const PRIVATE_KEY_KEY: &str = "tls.key";

/// A certificate chain and its private key, as the listener serves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsCertificate {
    /// The Secret they come from, for messages.
    pub secret: ObjectKey,
    /// PEM certificates, the server's first.
    pub chain_pem: String,
    pub private_key: PrivateKeyPem,
}

/// A PEM private key. Debug prints only that there is one.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// The PEM text, for the one place that needs it: Envoy's configuration.
    pub fn pem(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKeyPem({REDACTED_KEY})")
    }
}

/// One value of the Secret: where it is written and its bytes. `stringData` wins over
/// `data`, as the API server merges them.
struct SecretValue {
    field: String,
    location: SourceLocation,
    bytes: Vec<u8>,
}

/// Reads and checks the certificate and key of a Secret a listener names.
pub(crate) fn from_secret(manifest: &Manifest) -> Result<TlsCertificate, ManifestError> {
    let secret: Secret = manifest.decode()?;
    match secret.type_.as_deref() {
        None | Some("kubernetes.io/tls" | "Opaque") => {}
        Some(other) => {
            return Err(invalid_at(
                manifest,
                manifest.location_of("type"),
                "type",
                format!(
                    "a listener certificate needs a kubernetes.io/tls Secret, not type `{other}`"
                ),
            ));
        }
    }
    let chain = value(manifest, &secret, CERTIFICATE_KEY)?;
    let key = value(manifest, &secret, PRIVATE_KEY_KEY)?;

    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain.bytes)
        .collect::<Result<_, _>>()
        .map_err(|err| {
            invalid_value(
                &chain,
                manifest,
                format!("not valid PEM certificates: {err}"),
            )
        })?;
    if certificates.is_empty() {
        return Err(invalid_value(
            &chain,
            manifest,
            "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key.bytes).map_err(|err| {
        invalid_value(
            &key,
            manifest,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {err}"),
        )
    })?;
    let signing_key = ring::default_provider()
        .key_provider
        .load_private_key(private_key)
        .map_err(|err| {
            invalid_value(
                &key,
                manifest,
                format!("is not a usable private key: {err}"),
            )
        })?;
    // The same check Envoy's TLS library makes when it loads the pair.
    match CertifiedKey::new(certificates, signing_key).keys_match() {
        Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(invalid_value(
                &key,
                manifest,
                format!(
                    "is not the key of the first certificate in `{}`",
                    chain.field
                ),
            ));
        }
        Err(err) => {
            return Err(invalid_value(
                &chain,
                manifest,
                format!("the first certificate cannot be read: {err}"),
            ));
        }
    }
    Ok(TlsCertificate {
        secret: manifest.key(),
        chain_pem: utf8(&chain, manifest)?,
        private_key: PrivateKeyPem(utf8(&key, manifest)?),
    })
}

fn value(manifest: &Manifest, secret: &Secret, key: &str) -> Result<SecretValue, ManifestError> {
    // At the key: a PEM block scalar starts a line below it. (A dotted path would
    // split `tls.crt`.)
    let located = |section: &str| SourceLocation {
        file: manifest.file.clone(),
        position: manifest.root.key_position_of(&[
            PathSegment::Key(section.to_string()),
            PathSegment::Key(key.to_string()),
        ]),
    };
    if let Some(text) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Ok(SecretValue {
            field: format!("stringData.{key}"),
            location: located("stringData"),
            bytes: text.clone().into_bytes(),
        });
    }
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Ok(SecretValue {
            field: format!("data.{key}"),
            location: located("data"),
            bytes: bytes.0.clone(),
        });
    }
    let section =
        if manifest.root.get("data").is_some() || manifest.root.get("stringData").is_none() {
            "data"
        } else {
            "stringData"
        };
    Err(invalid_at(
        manifest,
        manifest.location_of(section),
        section,
        format!(
            "no `{key}` in data or stringData: a listener certificate needs `{CERTIFICATE_KEY}` and `{PRIVATE_KEY_KEY}`"
        ),
    ))
}

/// PEM is ASCII; Envoy takes it as a string.
fn utf8(value: &SecretValue, manifest: &Manifest) -> Result<String, ManifestError> {
    String::from_utf8(value.bytes.clone())
        .map_err(|_| invalid_value(value, manifest, "is not PEM text".into()))
}

fn invalid_value(value: &SecretValue, manifest: &Manifest, message: String) -> ManifestError {
    invalid_at(manifest, value.location.clone(), &value.field, message)
}

fn invalid_at(
    manifest: &Manifest,
    location: SourceLocation,
    field: &str,
    message: String,
) -> ManifestError {
    ManifestError::Invalid {
        location,
        message: format!(
            "{} {}: field `{field}`: {message}",
            manifest.kind, manifest.name
        ),
    }
}

/// A PEM private key block in any text: Envoy output, a config dump. The key may be
/// cut off by a log tail, or have its newlines escaped (`\n`) inside a quoted string.
static PRIVATE_KEY_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\z)")
        .expect("the private key pattern is valid")
});

/// The end of a PEM private key block, for a tail that starts inside one.
static PRIVATE_KEY_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----END [A-Z ]*PRIVATE KEY-----").expect("the key end pattern is valid")
});

/// Replaces every PEM private key in `text` with [`REDACTED_KEY`], including the end of
/// one that a log tail cut the beginning off.
pub fn redact_private_keys(text: &str) -> String {
    let begin = text.find("-----BEGIN ");
    let text = match PRIVATE_KEY_END.find(text) {
        Some(end) if begin.is_none_or(|b| end.start() < b) => {
            format!("{REDACTED_KEY}{}", &text[end.end()..])
        }
        _ => text.to_owned(),
    };
    PRIVATE_KEY_BLOCK
        .replace_all(&text, REDACTED_KEY)
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ib2R5\n-----END PRIVATE KEY-----\n";

    #[test]
    fn keys_are_redacted_raw_escaped_and_cut_off() {
        let raw = format!("before\n{KEY}after");
        assert_eq!(
            redact_private_keys(&raw),
            format!("before\n{REDACTED_KEY}\nafter")
        );
        // Envoy's proto dumps quote the key with escaped newlines.
        let escaped = format!("inline_string: {:?} }}", KEY);
        let redacted = redact_private_keys(&escaped);
        assert!(!redacted.contains("c2VjcmV0"), "{redacted}");
        assert!(redacted.contains(REDACTED_KEY), "{redacted}");
        // A tail that starts inside a key, or ends inside one.
        let tail = "c2VjcmV0LWtleS1ib2R5\n-----END EC PRIVATE KEY-----\nnext line";
        assert_eq!(
            redact_private_keys(tail),
            format!("{REDACTED_KEY}\nnext line")
        );
        let cut = "line\n-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0";
        assert_eq!(redact_private_keys(cut), format!("line\n{REDACTED_KEY}"));
        // Certificates are public and stay.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        assert_eq!(redact_private_keys(cert), cert);
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = PrivateKeyPem(KEY.to_string());
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert_eq!(key.pem(), KEY);
    }
}
