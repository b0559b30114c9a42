//! The accept loop's limits: a client that never finishes its headers is cut off, the
//! connection cap holds, and shutdown does not wait for a stuck client forever.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use twofold_server::listener::{ConnectionLimits, serve};

async fn start(
    limits: ConnectionLimits,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, limits, async {
        let _ = stopped.await;
    }));
    (address, stop, server)
}

async fn get(address: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let limits = ConnectionLimits {
        max_connections: 1,
        header_read_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let (address, _stop, _server) = start(limits).await;
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The one connection slot is taken; the next client is served once the slow one is dropped.
    let answer = tokio::time::timeout(Duration::from_secs(10), get(address))
        .await
        .expect("served after the timeout");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
        "{answer}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the slow client's connection was closed");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_stuck_client_forever() {
    let limits = ConnectionLimits {
        shutdown_grace: Duration::from_millis(300),
        ..ConnectionLimits::default()
    };
    let (address, stop, server) = start(limits).await;
    let _stuck = {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stream
    };
    assert!(get(address).await.ends_with("hello"));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stopped")
        .unwrap();
}
