//! An HTTPS server on a loopback port with a CA made at start-up: what the API server
//! calls on the kubelet's behalf (the sidecar injection webhook, the node's
//! `/containerLogs` endpoint). One certificate for 127.0.0.1, signed by a CA whose PEM
//! the caller can hand to the API server (a webhook's caBundle).

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_util::sync::CancellationToken;

use super::KubeletError;

/// A bound HTTPS server, not yet answering; [`TlsServer::serve`] answers until
/// shutdown.
pub struct TlsServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    /// The CA that signed the serving certificate, PEM.
    pub ca_pem: String,
    pub address: SocketAddr,
}

impl TlsServer {
    /// Makes a CA named `purpose` and a serving certificate for 127.0.0.1, and binds a
    /// loopback port the kernel picks.
    pub async fn bind(purpose: &str) -> Result<TlsServer, KubeletError> {
        let certificate = |source| KubeletError::Certificate {
            purpose: purpose.to_owned(),
            source,
        };
        let ca_key = KeyPair::generate().map_err(certificate)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(certificate)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("kube-tier stand-in {purpose} CA"),
        );
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
            .map_err(|source| KubeletError::Tls {
                purpose: purpose.to_owned(),
                source,
            })?;
        let listen = |source| KubeletError::Listen {
            purpose: purpose.to_owned(),
            source,
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(listen)?;
        let address = listener.local_addr().map_err(listen)?;
        Ok(TlsServer {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: ca_cert.pem(),
            address,
        })
    }

    /// Answers each request with `handler` until `shutdown`.
    pub async fn serve<H, F>(self, shutdown: CancellationToken, handler: H)
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
    {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else { continue };
            let acceptor = self.acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handler))
                    .await;
            });
        }
    }
}
