//! `GET /health` over a real socket, and graceful shutdown of `serve_connection`.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use busbar_http::{HealthState, router, serve_connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Sends one HTTP/1.1 request and returns (status code, body).
async fn request(address: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Serves `router(state)` on a loopback port, one `serve_connection` per connection, until
/// the returned sender says stop.
async fn start(
    state: HealthState,
) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let router = router(state);
    let server = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        let mut stop = stopped.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = accepted.unwrap();
                    let mut stop = stopped.clone();
                    connections.spawn(serve_connection(stream, peer, router.clone(), async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    }));
                }
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
        }
        while connections.join_next().await.is_some() {}
    });
    (address, stop, server)
}

#[tokio::test]
async fn health_reports_readiness() {
    let state = HealthState::new();
    let (address, stop, server) = start(state.clone()).await;

    let (status, body) = request(address, "GET", "/health").await;
    assert_eq!(status, 503);
    assert_eq!(body, r#"{"status":"unavailable"}"#);

    state.set_ready(true);
    let (status, body) = request(address, "GET", "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":"ready"}"#);

    state.set_ready(false);
    assert_eq!(request(address, "GET", "/health").await.0, 503);

    stop.send(true).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_failing_check_makes_a_ready_broker_unavailable_with_the_reason() {
    let problem = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let state = HealthState::new().with_check({
        let problem = problem.clone();
        std::sync::Arc::new(move || problem.lock().unwrap().clone())
    });
    state.set_ready(true);
    let (address, stop, server) = start(state).await;
    assert_eq!(request(address, "GET", "/health").await.0, 200);

    *problem.lock().unwrap() = Some("store out of disk space".into());
    let (status, body) = request(address, "GET", "/health").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"status":"unavailable","reason":"store out of disk space"}"#
    );

    *problem.lock().unwrap() = None;
    assert_eq!(request(address, "GET", "/health").await.0, 200);
    stop.send(true).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let state = HealthState::new();
    state.set_ready(true);
    let (address, stop, server) = start(state).await;
    assert_eq!(request(address, "GET", "/nope").await.0, 404);
    assert_eq!(request(address, "POST", "/health").await.0, 405);
    stop.send(true).unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn stop_closes_a_kept_alive_connection_after_its_request() {
    let state = HealthState::new();
    state.set_ready(true);
    let (address, stop, server) = start(state).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    stop.send(true).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the connection closes once stopped")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("every connection finished")
        .unwrap();
}

/// A client that starts a request and never finishes its headers is disconnected once the
/// header timeout passes (the clock is paused and jumps ahead while everything waits).
#[tokio::test(start_paused = true)]
async fn a_request_whose_headers_never_end_is_disconnected() {
    let (mut client, server) = tokio::io::duplex(4096);
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let served = tokio::spawn(serve_connection(
        server,
        peer,
        router(HealthState::new()),
        std::future::pending(),
    ));
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest).await;
    served.await.unwrap();
    let started = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || started.starts_with("HTTP/1.1 408"),
        "{started}"
    );
}
