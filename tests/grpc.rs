//! The layer in front of a tonic service: a real tonic client gets
//! `UNAUTHENTICATED` (16) and `PERMISSION_DENIED` (7), and OK with a valid
//! token. The service and codec are written by hand (raw bytes), so no
//! protobuf compiler is needed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tower_pat::admin::{NewToken, TokenManager};
use tower_pat::grpc::GrpcStatus;
use tower_pat::{AuthLayer, Authenticated, MemoryStore};

#[derive(Debug, Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// `demo.Orders/List`: answers with the calling token's owner.
#[derive(Clone)]
struct Orders;

impl tonic::server::NamedService for Orders {
    const NAME: &'static str = "demo.Orders";
}

struct ListOrders;

impl tonic::server::UnaryService<Bytes> for ListOrders {
    type Response = Bytes;
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<Bytes>, Status>> + Send>>;
    fn call(&mut self, req: tonic::Request<Bytes>) -> Self::Future {
        let owner = req
            .extensions()
            .get::<Authenticated>()
            .map(|a| a.owner().to_string())
            .unwrap_or_default();
        Box::pin(async move { Ok(tonic::Response::new(Bytes::from(owner))) })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Orders {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            Ok(grpc.unary(ListOrders, req).await)
        })
    }
}

async fn call(addr: std::net::SocketAddr, token: Option<&str>) -> Result<Bytes, Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut req = tonic::Request::new(Bytes::from_static(b"{}"));
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let path = http::uri::PathAndQuery::from_static("/demo.Orders/List");
    client
        .unary(req, path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn tonic_client_sees_grpc_statuses() {
    let store = MemoryStore::new();
    let m = TokenManager::new(store.clone(), nuvlyx::live());
    let reader = m
        .create(NewToken::new("grpc", "demo-store", ["orders:read"]))
        .await
        .unwrap()
        .token;
    let other = m
        .create(NewToken::new("grpc2", "demo-store", ["wallet:read"]))
        .await
        .unwrap()
        .token;

    // h2c on loopback for the test; production gRPC runs over TLS.
    let auth = AuthLayer::builder(store, nuvlyx::live())
        .allow_plain_http()
        .responder(GrpcStatus)
        .build();
    // The scope check answers with the layer's responder (gRPC statuses).
    let scopes = auth.require_scopes(["orders:read"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(auth)
            .layer(scopes)
            .add_service(Orders)
            .serve_with_incoming(tokio_stream_from(listener))
            .await
            .unwrap();
    });

    assert_eq!(
        call(addr, Some(reader.expose_secret())).await.unwrap(),
        "demo-store"
    );
    let none = call(addr, None).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    let bad = call(addr, Some("nvl_live_123")).await.unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);
    assert!(
        bad.message().contains("revoked or expired"),
        "{}",
        bad.message()
    );
    let denied = call(addr, Some(other.expose_secret())).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("orders:read"),
        "{}",
        denied.message()
    );
}

/// Adapts a `TcpListener` to the incoming stream tonic serves.
fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}
