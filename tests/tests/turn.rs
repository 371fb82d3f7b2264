//! Sessions through a real TURN relay (Debian's coturn, started here on loopback with a TURN REST secret): the
//! signaling server issues each admitted peer a time-limited credential, and relay-only peers connect through it.

use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
use peerdesk::control::Permissions;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent, SessionError, Viewer, ViewerConfig};
use peerdesk::transport::TransportConfig;
use peerdesk_e2e::SignalingServer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// coturn on a free loopback port, killed on drop.
struct Coturn {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("peerdesk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl Coturn {
    fn start(secret: &str) -> Option<Coturn> {
        if !Path::new("/usr/bin/turnserver").exists() {
            return None;
        }
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = temp_dir(&format!("coturn-{port}"));
        // The secret goes in a file, not on the command line.
        let config = dir.0.join("turnserver.conf");
        std::fs::write(
            &config,
            format!(
                "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={port}\nuse-auth-secret\n\
                 static-auth-secret={secret}\nrealm=peerdesk.test\nallow-loopback-peers\nno-tls\nno-dtls\nno-cli\n\
                 no-tcp-relay\nuserdb={}\npidfile={}\nlog-file=stdout\nsimple-log\n",
                dir.0.join("turndb").display(),
                dir.0.join("turnserver.pid").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("/usr/bin/turnserver")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coturn");
        // Ready once it answers a STUN binding request.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let request = [
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        for _ in 0..50 {
            let _ = socket.send_to(&request, ("127.0.0.1", port));
            let mut buf = [0u8; 512];
            if socket.recv(&mut buf).is_ok() {
                return Some(Coturn { child, port, _dir: dir });
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("coturn did not answer on port {port}");
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn relay_only() -> TransportConfig {
    TransportConfig {
        relay_only: true,
        ..TransportConfig::loopback()
    }
}

/// A signaling server that issues credentials for `turn` signed with `secret`.
fn server_for(turn: &Coturn, secret: &str) -> (SignalingServer, TempDir) {
    let dir = temp_dir(&format!("turn-secret-{}", turn.port));
    let file = dir.0.join("secret");
    std::fs::write(&file, secret).unwrap();
    let url = format!("turn:127.0.0.1:{}?transport=udp", turn.port);
    let server = SignalingServer::start(&["--turn-url", &url, "--turn-secret-file", file.to_str().unwrap()]);
    (server, dir)
}

async fn host_on(server: &SignalingServer) -> Host {
    let source = SyntheticSource::new(SyntheticConfig {
        width: 320,
        height: 240,
        ..Default::default()
    })
    .unwrap();
    let config = HostConfig::new(&server.url)
        .transport(relay_only())
        .max_bitrate(500_000);
    let mut host = Host::start(config, Box::new(source), None).await.unwrap();
    let mut events = host.take_events().unwrap();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let HostEvent::JoinRequest(request) = event {
                request.answer(Consent::Allow(Permissions::VIEW_ONLY));
            }
        }
    });
    host
}

fn viewer_config(server: &SignalingServer, code: &str) -> ViewerConfig {
    let mut config = ViewerConfig::new(&server.url, code, "relayed tech").transport(relay_only());
    config = config.connect_timeout(Duration::from_secs(10));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_peers_connect_through_coturn_with_issued_credentials() {
    let Some(turn) = Coturn::start("relay-secret") else {
        panic!("coturn is not installed: run scripts/setup.sh");
    };
    let (server, _secret) = server_for(&turn, "relay-secret");
    let host = host_on(&server).await;
    let viewer = tokio::time::timeout(
        Duration::from_secs(30),
        Viewer::join(viewer_config(&server, host.code())),
    )
    .await
    .expect("join in time")
    .expect("a relayed session");
    for _ in 0..10 {
        let frame = tokio::time::timeout(Duration::from_secs(10), viewer.next_frame())
            .await
            .expect("a frame in time")
            .expect("frames through the relay");
        assert_eq!(frame.width(), 320);
    }
    viewer.leave().await;
    host.end("done").await;
}

/// The same session with credentials coturn cannot verify: relay-only peers then have no path at all, which shows
/// that the session above really went through the relay (and that coturn checks what the server issues).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_signed_with_another_secret_get_no_relay() {
    let Some(turn) = Coturn::start("relay-secret") else {
        panic!("coturn is not installed: run scripts/setup.sh");
    };
    let (server, _secret) = server_for(&turn, "not-the-relay-secret");
    let host = host_on(&server).await;
    let result = tokio::time::timeout(
        Duration::from_secs(40),
        Viewer::join(viewer_config(&server, host.code())),
    )
    .await
    .expect("join gives up in time");
    match result {
        Err(SessionError::Timeout(_) | SessionError::Transport(_) | SessionError::Ended(_)) => {}
        other => panic!("a session without a usable relay: {other:?}"),
    }
    host.end("done").await;
}
