//! A real HTTPS server (rustls) around an axum router, and a client that
//! trusts its self-signed certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Extension, Router};
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use tower_pat::transport::TlsConnection;

pub struct TlsServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    handle: axum_server::Handle<SocketAddr>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serves `app` over TLS on an ephemeral loopback port. Every request on
/// this listener carries the `TlsConnection` marker.
pub async fn serve_tls(app: Router) -> TlsServer {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let server_cfg = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let mut server_cfg = server_cfg;
    server_cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = RustlsConfig::from_config(Arc::new(server_cfg));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    let app = app.layer(Extension(TlsConnection));
    let server = axum_server::from_tcp_rustls(listener, config)
        .unwrap()
        .handle(handle.clone());
    tokio::spawn(async move {
        server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    TlsServer {
        addr,
        ca_pem: cert_pem,
        handle,
    }
}

/// A reqwest client trusting only `ca_pem`.
pub fn client(ca_pem: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// A reqwest client for plain-HTTP requests (never follows redirects).
pub fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
