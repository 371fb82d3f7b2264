//! Signaling over TLS (`wss://`) with a private test CA: a whole host/viewer session through the real server
//! process serving TLS, a client that does not trust the CA is refused, and SIGHUP makes the server pick up a
//! renewed certificate without a restart. Before, the SDK answered `wss://` with "TLS support not compiled in"
//! and the server had no TLS listener.

use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
use peerdesk::control::Permissions;
use peerdesk::session::{Consent, Host, HostConfig, HostEvent, SessionError, Viewer, ViewerConfig};
use peerdesk::signaling::{SignalingClient, SignalingError, SignalingTls};
use peerdesk::transport::TransportConfig;
use peerdesk_e2e::SignalingServer;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it, as PEM files in `dir`.
struct TestPki {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn issue(dir: &Path, name: &str) -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("peerdesk test CA {name}"));
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let cert = dir.join(format!("{name}-cert.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        cert,
        key,
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peerdesk-tls-{}-{:x}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn tls_server(pki: &TestPki) -> SignalingServer {
    SignalingServer::start(&[
        "--tls-cert",
        pki.cert.to_str().unwrap(),
        "--tls-key",
        pki.key.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_over_wss_with_a_private_ca() {
    let dir = temp_dir();
    let pki = issue(&dir, "a");
    let server = tls_server(&pki);
    assert!(server.url.starts_with("wss://"), "{}", server.url);

    let source = SyntheticSource::new(SyntheticConfig {
        width: 320,
        height: 180,
        ..Default::default()
    })
    .unwrap();
    let config = HostConfig::new(&server.url)
        .transport(TransportConfig::loopback())
        .trust_ca_pem(&pki.ca_pem);
    let mut host = Host::start(config, Box::new(source), None)
        .await
        .expect("host over wss");
    let code = host.code().to_string();
    tokio::spawn(async move {
        while let Some(event) = host.next_event().await {
            if let HostEvent::JoinRequest(request) = event {
                request.answer(Consent::Allow(Permissions::VIEW_ONLY));
            }
        }
    });
    let config = ViewerConfig::new(&server.url, &code, "Tech")
        .transport(TransportConfig::loopback())
        .trust_ca_pem(&pki.ca_pem);
    let viewer = Viewer::join(config).await.expect("viewer over wss");
    let frame = tokio::time::timeout(Duration::from_secs(10), viewer.next_frame())
        .await
        .expect("a frame in time")
        .expect("a frame");
    assert_eq!((frame.width(), frame.height()), (320, 180));

    // A client that does not trust the CA is refused during the handshake, with a readable cause.
    let source = SyntheticSource::new(SyntheticConfig::default()).unwrap();
    let untrusting = Host::start(HostConfig::new(&server.url), Box::new(source), None).await;
    match untrusting {
        Err(SessionError::Signaling(SignalingError::Connect { reason, .. })) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}");
        }
        Err(other) => panic!("expected a certificate error, got {other}"),
        Ok(_) => panic!("a server with an unknown CA must not be trusted"),
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_renewed_certificate() {
    let dir = temp_dir();
    let old = issue(&dir, "old");
    let server = tls_server(&old);
    let trusting = |pem: &str| SignalingTls::default().trust_pem(pem);
    assert!(SignalingClient::connect_with(&server.url, &trusting(&old.ca_pem))
        .await
        .is_ok());

    // Renew: new files in place, then SIGHUP.
    let new = issue(&dir, "new");
    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut reloaded = false;
    for _ in 0..50 {
        if SignalingClient::connect_with(&server.url, &trusting(&new.ca_pem))
            .await
            .is_ok()
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "the renewed certificate is served after SIGHUP");
    assert!(SignalingClient::connect_with(&server.url, &trusting(&old.ca_pem))
        .await
        .is_err());

    // A bad PEM is a typed error, not a panic.
    let bad = SignalingClient::connect_with(&server.url, &trusting("not a certificate")).await;
    assert!(matches!(bad, Err(SignalingError::Certificate(_))), "{bad:?}");
    let _ = std::fs::remove_dir_all(dir);
}
