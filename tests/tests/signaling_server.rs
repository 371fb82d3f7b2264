//! The signaling server process under bad clients: every bad request gets an error reply and another session on
//! the same server carries on undisturbed.

use futures_util::{SinkExt, StreamExt};
use peerdesk_e2e::SignalingServer;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &SignalingServer) -> Socket {
    tokio_tungstenite::connect_async(&server.url)
        .await
        .expect("websocket")
        .0
}

async fn send(socket: &mut Socket, text: impl Into<String>) {
    socket.send(Message::text(text.into())).await.expect("send");
}

async fn recv(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("reply in time");
        match frame.expect("open").expect("frame") {
            Message::Text(text) => return serde_json::from_str(&text).expect("server sends JSON"),
            _ => continue,
        }
    }
}

async fn expect_error(socket: &mut Socket, code: &str) {
    let reply = recv(socket).await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
    assert!(!reply["message"].as_str().unwrap_or("").is_empty());
}

/// A host and a viewer, paired and admitted, exchanging a signal.
async fn paired(server: &SignalingServer) -> (Socket, Socket, String, String) {
    let mut host = connect(server).await;
    send(&mut host, json!({"type": "register", "v": 1}).to_string()).await;
    let registered = recv(&mut host).await;
    let code = registered["code"].as_str().unwrap().to_string();
    let host_id = registered["peer"].as_str().unwrap().to_string();
    let mut viewer = connect(server).await;
    send(
        &mut viewer,
        json!({"type": "join", "v": 1, "code": code, "name": "Tech"}).to_string(),
    )
    .await;
    let pending = recv(&mut viewer).await;
    assert_eq!(pending["type"], "join_pending");
    let viewer_id = pending["peer"].as_str().unwrap().to_string();
    let request = recv(&mut host).await;
    assert_eq!(request["type"], "join_request");
    send(
        &mut host,
        json!({"type": "accept", "v": 1, "peer": viewer_id}).to_string(),
    )
    .await;
    assert_eq!(recv(&mut viewer).await["type"], "accepted");
    let admitted = recv(&mut host).await;
    assert_eq!(admitted["type"], "admitted");
    assert_eq!(admitted["viewer"], viewer_id.as_str());
    (host, viewer, host_id, viewer_id)
}

async fn relay_works(host: &mut Socket, viewer: &mut Socket, viewer_id: &str) {
    send(
        host,
        json!({"type": "signal", "v": 1, "to": viewer_id, "payload": {"kind": "offer", "sdp": "v=0"}}).to_string(),
    )
    .await;
    let relayed = recv(viewer).await;
    assert_eq!(relayed["type"], "signal");
    assert_eq!(relayed["payload"]["sdp"], "v=0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_get_errors_while_another_session_carries_on() {
    let mut server = SignalingServer::start(&[]);
    let (mut host, mut viewer, _host_id, viewer_id) = paired(&server).await;

    let mut bad = connect(&server).await;
    send(&mut bad, "{not json").await;
    expect_error(&mut bad, "malformed").await;
    send(&mut bad, json!({"type": "register"}).to_string()).await;
    expect_error(&mut bad, "malformed").await;
    send(&mut bad, json!({"type": "register", "v": 99}).to_string()).await;
    expect_error(&mut bad, "unsupported_version").await;
    send(&mut bad, json!({"type": "teleport", "v": 1}).to_string()).await;
    expect_error(&mut bad, "malformed").await;
    send(
        &mut bad,
        format!(r#"{{"type":"join","v":1,"code":"1","name":"{}"}}"#, "x".repeat(70_000)),
    )
    .await;
    expect_error(&mut bad, "too_large").await;
    bad.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    expect_error(&mut bad, "malformed").await;
    // Out of order: signal and accept before any session, to a peer it is not paired with.
    send(
        &mut bad,
        json!({"type": "signal", "v": 1, "to": viewer_id, "payload": {"kind": "answer", "sdp": "x"}}).to_string(),
    )
    .await;
    expect_error(&mut bad, "not_allowed").await;
    send(
        &mut bad,
        json!({"type": "signal", "v": 1, "to": "nobody", "payload": {"kind": "answer", "sdp": "x"}}).to_string(),
    )
    .await;
    expect_error(&mut bad, "unknown_peer").await;
    send(
        &mut bad,
        json!({"type": "accept", "v": 1, "peer": viewer_id}).to_string(),
    )
    .await;
    expect_error(&mut bad, "not_allowed").await;
    send(
        &mut bad,
        json!({"type": "signal", "v": 1, "to": viewer_id, "payload": {"kind": "chat", "text": "hi"}}).to_string(),
    )
    .await;
    expect_error(&mut bad, "malformed").await;
    send(
        &mut bad,
        json!({"type": "join", "v": 1, "code": "12", "name": ""}).to_string(),
    )
    .await;
    expect_error(&mut bad, "malformed").await;

    // Flooding is limited.
    for _ in 0..120 {
        send(&mut bad, json!({"type": "leave", "v": 1}).to_string()).await;
    }
    let mut limited = false;
    for _ in 0..120 {
        let reply = recv(&mut bad).await;
        if reply["code"] == "rate_limited" {
            limited = true;
            break;
        }
    }
    assert!(limited, "a flood must be rate limited");

    // The paired session is undisturbed, and the server is alive and healthy.
    relay_works(&mut host, &mut viewer, &viewer_id).await;
    assert!(server.is_running());
    let health = health(&server).await;
    assert_eq!(health["status"], "ok");
    // Counts of live codes and sessions would give a guesser the odds: not public.
    assert!(
        health.get("peers").is_none() && health.get("codes").is_none(),
        "{health}"
    );
}

async fn health(server: &SignalingServer) -> Value {
    let addr = server.http.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_leaving_is_announced_and_codes_die_with_it() {
    let server = SignalingServer::start(&[]);
    let (mut host, mut viewer, host_id, _viewer_id) = paired(&server).await;
    send(&mut host, json!({"type": "register", "v": 1}).to_string()).await;
    let spare = recv(&mut host).await["code"].as_str().unwrap().to_string();
    host.close(None).await.unwrap();
    let left = recv(&mut viewer).await;
    assert_eq!(left["type"], "peer_left");
    assert_eq!(left["peer"], host_id);
    let mut late = connect(&server).await;
    send(
        &mut late,
        json!({"type": "join", "v": 1, "code": spare, "name": "Late"}).to_string(),
    )
    .await;
    expect_error(&mut late, "invalid_code").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_closes_sessions() {
    let mut server = SignalingServer::start(&[]);
    let (_host, mut viewer, _, _) = paired(&server).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (status, server)
    });
    // The open connection is closed by the server, not left hanging.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match viewer.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connections must be closed on shutdown");
    let (status, _server) = status.await.unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}
