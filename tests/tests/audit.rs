//! The host's audit trail from a real session (signaling server process, WebRTC on loopback), checked with the
//! `peerdesk audit verify` command, and caught when a line is edited.

use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
use peerdesk::control::{InputEvent, Permissions};
use peerdesk::input::RecordingSink;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent, Viewer, ViewerConfig};
use peerdesk::transport::TransportConfig;
use peerdesk_e2e::{workspace_binary, SignalingServer};
use std::time::Duration;

async fn timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn verify(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(workspace_binary("peerdesk"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_leaves_a_verifiable_audit_trail_and_tampering_is_caught() {
    let dir = std::env::temp_dir().join(format!("peerdesk-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("session.audit.jsonl");
    let server = SignalingServer::start(&[]);
    let source = SyntheticSource::new(SyntheticConfig {
        width: 320,
        height: 240,
        ..Default::default()
    })
    .unwrap();
    let config = HostConfig::new(&server.url)
        .name("audited desk")
        .transport(TransportConfig::loopback())
        .max_bitrate(500_000)
        .audit_log(&path);
    let sink = RecordingSink::new();
    let mut host = Host::start(config, Box::new(source), Some(Box::new(sink.clone())))
        .await
        .unwrap();
    let mut events = host.take_events().unwrap();
    let join = tokio::spawn(Viewer::join(
        ViewerConfig::new(&server.url, host.code(), "Tech").transport(TransportConfig::loopback()),
    ));
    let viewer_id = loop {
        match timeout("join request", events.recv()).await.unwrap() {
            HostEvent::JoinRequest(request) => {
                let id = request.viewer.clone();
                request.answer(Consent::Allow(Permissions::CONTROL));
                break id;
            }
            _ => continue,
        }
    };
    let viewer = timeout("join", join).await.unwrap().unwrap();
    viewer.send_chat("the password is hunter2").unwrap();
    for _ in 0..3 {
        viewer.send_input(InputEvent::PointerMove { x: 0.5, y: 0.5 }).unwrap();
    }
    loop {
        if let HostEvent::Chat { .. } = timeout("chat", events.recv()).await.unwrap() {
            break;
        }
    }
    while sink.events().len() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    host.set_permissions(&viewer_id, Permissions::VIEW_ONLY);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let code = viewer.verification_code().to_string();
    viewer.leave().await;
    loop {
        if let HostEvent::ViewerLeft { .. } = timeout("viewer left", events.recv()).await.unwrap() {
            break;
        }
    }
    host.end("done").await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = records.iter().map(|r| r["event"].as_str().unwrap()).collect();
    for expected in [
        "session_started",
        "join_request",
        "consent",
        "connected",
        "chat",
        "permissions_changed",
        "input",
        "left",
        "ended",
    ] {
        assert!(kinds.contains(&expected), "no {expected} record in {kinds:?}");
    }
    let connected = records.iter().find(|r| r["event"] == "connected").unwrap();
    assert_eq!(connected["verification_code"], code.as_str());
    let input = records.iter().find(|r| r["event"] == "input").unwrap();
    assert_eq!(input["events"], 3);
    assert!(!text.contains("hunter2"), "chat text must never be recorded");
    assert!(records.iter().all(|r| r["session"] == records[0]["session"]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let ok = verify(&path);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(
        stdout.contains(&format!("{} records, chain intact", records.len())),
        "{stdout}"
    );

    // Edit the consent record: the command names that line and fails.
    let consent_line = kinds.iter().position(|k| *k == "consent").unwrap() + 1;
    let tampered: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if i + 1 == consent_line {
                l.replace("\"control\"", "\"clipboard\"")
            } else {
                l.to_string()
            };
            l + "\n"
        })
        .collect();
    std::fs::write(&path, tampered).unwrap();
    let bad = verify(&path);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains(&format!("line {consent_line}")), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
