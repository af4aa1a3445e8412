//! tower-pat on a bare hyper 1 server over TLS (tokio-rustls), no framework.
//!
//! The accept loop inserts `TlsConnection` and `PeerAddr` into every request
//! of a TLS connection: that is how the layer knows a request came over
//! HTTPS. Run: `cargo run --example hyper`, then in another shell the `curl`
//! line it prints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tower::{service_fn, ServiceBuilder};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::transport::{PeerAddr, TlsConnection};
use tower_pat::{AuthLayer, Authenticated, MemoryStore};

type Body = Full<Bytes>;

async fn orders(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let who = req
        .extensions()
        .get::<Authenticated>()
        .expect("behind AuthLayer");
    let text = format!("{{\"orders\":[],\"token\":\"{}\"}}\n", who.token_id());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

/// A self-signed certificate for localhost: (rustls config, PEM to trust).
fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(config), cert.cert.pem())
}

/// Serves until the listener fails. Each TLS connection gets the markers.
async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, store: MemoryStore) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let auth = AuthLayer::new(store, token_config());
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let svc = ServiceBuilder::new()
            // Marks every request of this connection: TLS, and who sent it.
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(TlsConnection);
                req.extensions_mut().insert(PeerAddr(peer));
                req
            })
            .layer(auth.clone())
            .layer(auth.require_scopes(["orders:read"]))
            .service(service_fn(orders));
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .await;
        });
    }
}

async fn start() -> (SocketAddr, String, String) {
    let store = MemoryStore::new();
    let admin = TokenManager::new(store.clone(), token_config());
    let created = admin
        .create(NewToken::new(
            "hyper example",
            "demo-store",
            ["orders:read"],
        ))
        .await
        .expect("token");
    let (tls, ca_pem) = tls_config();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, tls, store));
    (addr, ca_pem, created.token.expose_secret().to_owned())
}

#[tokio::main]
async fn main() {
    let (addr, ca_pem, token) = start().await;
    let ca = std::env::temp_dir().join("tower-pat-hyper-example.pem");
    std::fs::write(&ca, ca_pem).expect("write CA");
    eprintln!("listening on https://localhost:{}", addr.port());
    // The token goes to curl on its standard input, never on a command line
    // (where every local user can read it in the process list).
    eprintln!("token (shown once): {token}");
    eprintln!(
        "try: read -rs TOKEN; printf 'Authorization: Bearer %s\\n' \"$TOKEN\" | curl --cacert {} -H @- https://localhost:{}/orders",
        ca.display(),
        addr.port()
    );
    std::future::pending::<()>().await;
}

/// This API's tokens: the format (`nvl_live_…`) and the scopes, as an
/// adopter defines its own.
fn token_config() -> tower_pat::TokenConfig {
    tower_pat::TokenConfig::new(
        tower_pat::TokenFormat::new("nvl", tower_pat::Environment::Live).expect("a valid prefix"),
        tower_pat::ScopeCatalog::new()
            .scope("orders:read", "Read orders and their status.")
            .scope("orders:write", "Create orders on behalf of customers."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ca_pem: &str) -> reqwest::Client {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn hyper_server_answers_200_and_401_over_tls() {
        let (addr, ca_pem, token) = start().await;
        let client = client(&ca_pem);
        let url = format!("https://localhost:{}/orders", addr.port());
        let ok = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert!(ok.text().await.unwrap().contains("\"token\""));
        let anonymous = client.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert_eq!(
            anonymous.headers()["www-authenticate"],
            "Bearer realm=\"api\""
        );
    }
}
