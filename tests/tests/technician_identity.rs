//! Technician accounts on the operator's signaling server (a real server process, tokens issued by its
//! `--new-token`): a signed-in technician reaches the host's prompt as "verified by <operator>", anyone else as
//! an unverified name, and a wrong token never reaches the host.

use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
use peerdesk::control::Permissions;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent, SessionError, Viewer, ViewerConfig};
use peerdesk::signaling::VerifiedIdentity;
use peerdesk::transport::TransportConfig;
use peerdesk_e2e::{workspace_binary, SignalingServer};
use std::time::Duration;

async fn timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_names_a_signed_in_technician_as_verified_and_anyone_else_as_unverified() {
    let dir = std::env::temp_dir().join(format!("peerdesk-accounts-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let accounts = dir.join("accounts.json");
    let issued = std::process::Command::new(workspace_binary("peerdesk-signaling-server"))
        .args([
            "--accounts",
            accounts.to_str().unwrap(),
            "--new-token",
            "alex",
            "--operator",
            "Acme Support",
        ])
        .output()
        .unwrap();
    let issued = String::from_utf8_lossy(&issued.stdout).to_string();
    let token = issued
        .split_whitespace()
        .find(|w| w.starts_with("pdt_"))
        .expect("a token")
        .to_string();
    let server = SignalingServer::start(&["--accounts", accounts.to_str().unwrap()]);

    let source = SyntheticSource::new(SyntheticConfig::with_size(320, 240)).unwrap();
    let config = HostConfig::new(&server.url)
        .transport(TransportConfig::loopback())
        .max_bitrate(500_000);
    let mut host = Host::start(config, Box::new(source), None).await.unwrap();
    let mut events = host.take_events().unwrap();

    // Signed in: the account and its operator, whatever name was typed.
    let config = ViewerConfig::new(&server.url, host.code(), "Definitely Microsoft")
        .transport(TransportConfig::loopback())
        .sign_in("alex", &token)
        .asks(Permissions::FULL);
    let join = tokio::spawn(Viewer::join(config));
    let request = loop {
        if let HostEvent::JoinRequest(request) = timeout("the join request", events.recv()).await.unwrap() {
            break request;
        }
    };
    assert_eq!(
        request.verified,
        Some(VerifiedIdentity {
            operator: "Acme Support".into(),
            account: "alex".into()
        })
    );
    assert_eq!(request.asks, Permissions::FULL);
    assert_eq!(
        request.describe(),
        "alex (verified by Acme Support) asks to see your screen, use your mouse and keyboard and read and write your clipboard."
    );
    request.answer(Consent::Allow(Permissions::VIEW_ONLY));
    let viewer = timeout("the join", join).await.unwrap().unwrap();
    viewer.leave().await;

    // Not signed in: the typed name, marked as such.
    let code = host.invite().await.unwrap();
    let config = ViewerConfig::new(&server.url, &code, "Definitely Microsoft").transport(TransportConfig::loopback());
    let join = tokio::spawn(Viewer::join(config));
    let request = loop {
        if let HostEvent::JoinRequest(request) = timeout("the join request", events.recv()).await.unwrap() {
            break request;
        }
    };
    assert_eq!(request.verified, None);
    assert_eq!(
        request.describe(),
        "\"Definitely Microsoft\" (name not verified) asks to see your screen and use your mouse and keyboard."
    );
    request.answer(Consent::Deny("no".into()));
    assert!(timeout("the denial", join).await.unwrap().is_err());

    // A wrong token is refused by the server; the host is never asked.
    let config = ViewerConfig::new(&server.url, &code, "alex")
        .transport(TransportConfig::loopback())
        .sign_in("alex", "pdt_not-the-token");
    let refused = timeout("the refusal", Viewer::join(config)).await;
    assert!(
        matches!(refused, Err(SessionError::AuthenticationFailed { .. })),
        "{refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = std::iter::from_fn(|| events.try_recv()).any(|e| matches!(e, HostEvent::JoinRequest(_)));
    assert!(!asked, "a refused sign-in reached the host");
    host.end("done").await;
    std::fs::remove_dir_all(&dir).ok();
}
