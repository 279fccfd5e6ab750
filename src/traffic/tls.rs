//! The client TLS configuration of a run: built once in [`super::worker::Prepared`]
//! and shared by every worker's connections.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use url::Url;

use super::{HttpVersion, TlsOptions, TrafficError, TrafficErrorKind};

/// The client configuration for `url` per `options`.
///
/// Verification uses the platform's trust store plus `options.extra_ca_file`; with
/// `options.insecure_skip_verify` any certificate is accepted (handshake signatures
/// are still checked, so the peer must hold the key of the certificate it sent).
pub(crate) fn client_config(
    url: &Url,
    options: &TlsOptions,
    version: HttpVersion,
) -> Result<Arc<ClientConfig>, TrafficError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| TrafficError::new(url, TrafficErrorKind::TlsConfig { source }))?;
    let mut config = if options.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // A platform store that cannot be read (or is missing) leaves only the extra
        // CA; verification then fails per request with the reason, which is louder
        // than a setup error on machines that only ever talk to a private CA.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(path) = &options.extra_ca_file {
            for cert in read_ca_file(url, path)? {
                roots.add(cert).map_err(|source| {
                    TrafficError::new(
                        url,
                        TrafficErrorKind::InvalidCaFile {
                            path: path.clone(),
                            detail: source.to_string(),
                        },
                    )
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // Offer only the version the load speaks, so the server cannot pick another.
    config.alpn_protocols = vec![match version {
        HttpVersion::Http1 => b"http/1.1".to_vec(),
        HttpVersion::Http2 => b"h2".to_vec(),
    }];
    Ok(Arc::new(config))
}

fn read_ca_file(url: &Url, path: &Path) -> Result<Vec<CertificateDer<'static>>, TrafficError> {
    let invalid = |detail: String| {
        TrafficError::new(
            url,
            TrafficErrorKind::InvalidCaFile {
                path: path.to_owned(),
                detail,
            },
        )
    };
    let bytes = std::fs::read(path).map_err(|source| {
        TrafficError::new(
            url,
            TrafficErrorKind::ReadCaFile {
                path: path.to_owned(),
                source,
            },
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(error.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificates in it".to_owned()));
    }
    Ok(certs)
}

/// The name the certificate must carry and the SNI sent: the URL's host, even when
/// the socket is pinned elsewhere (`connect_to`), like `curl --resolve`.
pub(crate) fn server_name(url: &Url) -> Result<ServerName<'static>, TrafficError> {
    let name = match url.host() {
        Some(url::Host::Domain(domain)) => ServerName::try_from(domain.to_owned()).ok(),
        Some(url::Host::Ipv4(addr)) => Some(ServerName::from(std::net::IpAddr::V4(addr))),
        Some(url::Host::Ipv6(addr)) => Some(ServerName::from(std::net::IpAddr::V6(addr))),
        None => None,
    };
    name.ok_or_else(|| TrafficError::new(url, TrafficErrorKind::InvalidServerName))
}

/// `--insecure`: trusts any certificate chain for any name.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
