//! Unattended access against a real signaling server process and real WebRTC on loopback: a technician with the
//! right secret and TOTP code connects without a prompt; wrong secrets back off, growing per attempt, on the
//! server and — when a malicious server does not — on the host; a passive server learns neither the secret, its
//! hash nor the code (and cannot replay what it saw); an active server that swaps DTLS fingerprints or forges
//! the device's proof is detected by both sides and gets nothing.

use futures_util::{SinkExt, StreamExt};
use peerdesk::capture::synthetic::{SyntheticConfig, SyntheticSource};
use peerdesk::control::{InputEvent, Permissions};
use peerdesk::input::RecordingSink;
use peerdesk::session::{EventReceiver, Host, HostConfig, HostEvent, SessionError, Viewer, ViewerConfig};
use peerdesk::transport::TransportConfig;
use peerdesk::unattended::{AccessPolicy, DeviceIdentity, TechnicianAccess, TotpSecret, UnattendedConfig};
use peerdesk_e2e::SignalingServer;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "correct horse battery staple";

async fn timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Device {
    host: Host,
    events: EventReceiver<HostEvent>,
    identity_key: [u8; 32],
    totp: TotpSecret,
    policy_json: String,
}

/// An unattended machine: "alex" may control it with SECRET and a TOTP code, nobody is asked.
async fn device(server_url: &str, sink: RecordingSink, alert_after: u32) -> Device {
    device_with(server_url, sink, alert_after, false, None).await
}

async fn device_with(
    server_url: &str,
    sink: RecordingSink,
    alert_after: u32,
    ask_customer: bool,
    audit: Option<&std::path::Path>,
) -> Device {
    let source = SyntheticSource::new(SyntheticConfig::with_size(320, 240)).unwrap();
    let identity = DeviceIdentity::generate().unwrap();
    let identity_key = identity.public_key();
    let totp = TotpSecret::generate().unwrap();
    let policy = AccessPolicy::new().with(
        TechnicianAccess::new("alex", SECRET)
            .unwrap()
            .totp(totp.clone())
            .permissions(Permissions::CONTROL)
            .ask_customer(ask_customer),
    );
    let policy_json = serde_json::to_string(&policy).unwrap();
    let config = HostConfig::new(server_url)
        .name("front desk PC")
        .transport(TransportConfig::loopback())
        .max_bitrate(500_000)
        .unattended(UnattendedConfig::new(identity, policy).alert_after(alert_after));
    let config = match audit {
        Some(path) => config.audit_log(path),
        None => config,
    };
    let mut host = Host::start(config, Box::new(source), Some(Box::new(sink)))
        .await
        .unwrap();
    let events = host.take_events().unwrap();
    Device {
        host,
        events,
        identity_key,
        totp,
        policy_json,
    }
}

fn technician(server_url: &str, device: &Device, secret: &str, code: Option<String>) -> ViewerConfig {
    let id = device.host.device_id().unwrap().clone();
    let config = ViewerConfig::for_device(server_url, id, "alex", secret).transport(TransportConfig::loopback());
    match code {
        Some(code) => config.totp_code(code),
        None => config,
    }
}

/// Every host event so far, without waiting.
fn drain(events: &mut EventReceiver<HostEvent>) -> Vec<HostEvent> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_secret_and_code_connect_without_a_prompt_and_get_the_policys_permissions() {
    let server = SignalingServer::start(&[]);
    let sink = RecordingSink::new();
    let mut device = device(&server.url, sink.clone(), 3).await;
    let id = device.host.device_id().unwrap().clone();
    assert_eq!(id.as_str().len(), 9);

    // Without the second factor, the right secret is not enough.
    let refused = timeout(
        "a join without a code",
        Viewer::join(technician(&server.url, &device, SECRET, None)),
    )
    .await;
    assert!(
        matches!(refused, Err(SessionError::AuthenticationFailed { .. })),
        "{refused:?}"
    );
    // The first failure makes this client wait a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let code = device.totp.code_at(unix_now());
    let viewer = timeout(
        "the unattended join",
        Viewer::join(technician(&server.url, &device, SECRET, Some(code))),
    )
    .await
    .expect("the right secret and code connect");
    assert_eq!(viewer.permissions(), Permissions::CONTROL);
    assert_eq!(viewer.device_public_key(), Some(device.identity_key));
    let frame = timeout("a frame", viewer.next_frame()).await.expect("video");
    assert_eq!((frame.width(), frame.height()), (320, 240));
    viewer.send_input(InputEvent::PointerMove { x: 0.5, y: 0.5 }).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.events().is_empty() {
        assert!(std::time::Instant::now() < deadline, "input never reached the sink");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let events = drain(&mut device.events);
    assert!(
        !events.iter().any(|e| matches!(e, HostEvent::JoinRequest(_))),
        "nobody was asked: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HostEvent::UnattendedAccess { access, .. } if access == "alex")),
        "{events:?}"
    );
    viewer.leave().await;
    device.host.end("done").await;
}

/// The failures' waits as the technician sees them: attempts with a wrong secret, each made as soon as the
/// previous wait allows; an attempt during a wait is refused without reaching the host.
async fn wrong_attempts(server_url: &str, device: &Device, attempts: usize) -> Vec<u64> {
    let mut waits = Vec::new();
    for _ in 0..attempts {
        let code = device.totp.code_at(unix_now());
        let result = timeout(
            "a wrong attempt",
            Viewer::join(technician(server_url, device, "wrong horse battery", Some(code))),
        )
        .await;
        let retry_after = match result {
            Err(SessionError::AuthenticationFailed {
                retry_after: Some(wait),
            }) => wait,
            other => panic!("expected a failed authentication with a wait, got {other:?}"),
        };
        waits.push(retry_after.as_secs());
        // At once: refused during the wait.
        let code = device.totp.code_at(unix_now());
        let early = timeout(
            "an attempt during the wait",
            Viewer::join(technician(server_url, device, SECRET, Some(code))),
        )
        .await;
        assert!(matches!(early, Err(SessionError::RateLimited(_))), "{early:?}");
        tokio::time::sleep(retry_after + Duration::from_millis(150)).await;
    }
    waits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_back_off_growing_per_attempt_and_the_host_app_hears_of_it() {
    let server = SignalingServer::start(&[]);
    let sink = RecordingSink::new();
    let audit = std::env::temp_dir().join(format!("peerdesk-unattended-audit-{}.jsonl", std::process::id()));
    let mut device = device_with(&server.url, sink.clone(), 2, false, Some(&audit)).await;
    let waits = wrong_attempts(&server.url, &device, 3).await;
    assert_eq!(waits, [1, 2, 4], "the wait doubles per failed attempt");

    let events = drain(&mut device.events);
    let alerts: Vec<(u32, u64)> = events
        .iter()
        .filter_map(|e| match e {
            HostEvent::AccessFailures { failures, retry_after } => Some((*failures, retry_after.as_secs())),
            _ => None,
        })
        .collect();
    assert_eq!(alerts, [(2, 2), (3, 4)], "{events:?}");
    assert!(sink.events().is_empty());

    // The waits slow guessing down; they do not lock the technician out.
    let code = device.totp.code_at(unix_now());
    let viewer = timeout(
        "the join after the waits",
        Viewer::join(technician(&server.url, &device, SECRET, Some(code))),
    )
    .await
    .expect("the right secret still works");
    viewer.leave().await;
    device.host.end("done").await;

    // The audit trail has every attempt, and verifies.
    let trail = std::fs::read_to_string(&audit).unwrap();
    let attempts: Vec<bool> = trail
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|record| record["event"] == "unattended_access")
        .map(|record| record["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(attempts, [false, false, false, true], "{trail}");
    let verified = cli(&["audit", "verify", audit.to_str().unwrap()]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    std::fs::remove_file(&audit).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_that_asks_the_customer_prompts_first_and_grants_at_most_its_policy() {
    let server = SignalingServer::start(&[]);
    let mut device = device_with(&server.url, RecordingSink::new(), 3, true, None).await;
    let code = device.totp.code_at(unix_now());
    let join = tokio::spawn(Viewer::join(technician(&server.url, &device, SECRET, Some(code))));
    let request = loop {
        if let HostEvent::JoinRequest(request) = timeout("the prompt", device.events.recv()).await.unwrap() {
            break request;
        }
    };
    assert_eq!(request.unattended_access.as_deref(), Some("alex"));
    assert!(
        request.describe().contains("with unattended access \"alex\""),
        "{}",
        request.describe()
    );
    // The customer offers everything; the access's policy caps it at control.
    request.answer(peerdesk::session::Consent::Allow(Permissions::FULL));
    let viewer = timeout("the join", join)
        .await
        .unwrap()
        .expect("admitted and authenticated");
    assert_eq!(viewer.permissions(), Permissions::CONTROL);
    viewer.leave().await;

    // Allowed by the customer, but the secret is still checked.
    let code = device.totp.code_at(unix_now());
    let join = tokio::spawn(Viewer::join(technician(
        &server.url,
        &device,
        "wrong horse battery",
        Some(code),
    )));
    loop {
        if let HostEvent::JoinRequest(request) = timeout("the prompt", device.events.recv()).await.unwrap() {
            request.answer(peerdesk::session::Consent::Allow(Permissions::FULL));
            break;
        }
    }
    let refused = timeout("the refusal", join).await.unwrap();
    assert!(
        matches!(refused, Err(SessionError::AuthenticationFailed { .. })),
        "{refused:?}"
    );
    device.host.end("done").await;
}

/// What a proxy does with one message: pass it (perhaps changed) or drop it.
type Rewrite = Arc<dyn Fn(&mut serde_json::Value) -> bool + Send + Sync>;

/// A malicious signaling server: a WebSocket proxy in front of the real one that logs every message both ways
/// and lets `to_server` / `to_client` rewrite or drop them. Returns its URL.
async fn proxy(real: String, log: Arc<Mutex<Vec<String>>>, to_server: Rewrite, to_client: Rewrite) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (real, log, to_server, to_client) = (real.clone(), log.clone(), to_server.clone(), to_client.clone());
            tokio::spawn(async move {
                let Ok(client) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let Ok((upstream, _)) = tokio_tungstenite::connect_async(&real).await else {
                    return;
                };
                let (mut client_tx, mut client_rx) = client.split();
                let (mut upstream_tx, mut upstream_rx) = upstream.split();
                let down_log = log.clone();
                tokio::spawn(async move {
                    while let Some(Ok(message)) = upstream_rx.next().await {
                        let Some(message) = relay(message, &down_log, &to_client) else {
                            continue;
                        };
                        if client_tx.send(message).await.is_err() {
                            break;
                        }
                    }
                });
                while let Some(Ok(message)) = client_rx.next().await {
                    let Some(message) = relay(message, &log, &to_server) else {
                        continue;
                    };
                    if upstream_tx.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}

fn relay(message: Message, log: &Mutex<Vec<String>>, rewrite: &Rewrite) -> Option<Message> {
    let Message::Text(text) = message else {
        return Some(message);
    };
    log.lock().unwrap().push(text.to_string());
    let mut json: serde_json::Value = serde_json::from_str(&text).ok()?;
    rewrite(&mut json).then(|| Message::text(json.to_string()))
}

fn pass() -> Rewrite {
    Arc::new(|_| true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_server_learns_neither_the_secret_its_hash_nor_the_code_and_cannot_replay_them() {
    let server = SignalingServer::start(&[]);
    let log = Arc::new(Mutex::new(Vec::new()));
    let url = proxy(server.url.clone(), log.clone(), pass(), pass()).await;
    let sink = RecordingSink::new();
    let device = device(&url, sink, 3).await;
    let code = device.totp.code_at(unix_now());
    let viewer = timeout(
        "the join",
        Viewer::join(technician(&url, &device, SECRET, Some(code.clone()))),
    )
    .await
    .expect("an honest relay changes nothing");
    viewer.leave().await;

    let seen = log.lock().unwrap().join("\n");
    assert!(
        seen.contains("\"auth_confirm\""),
        "the handshake went through the server"
    );
    // The stored argon2id hash (the PAKE's password) is the last field of the access's PHC string.
    let policy: serde_json::Value = serde_json::from_str(&device.policy_json).unwrap();
    let phc = policy["accesses"][0]["secret_hash"].as_str().unwrap();
    let hash = phc.rsplit('$').next().unwrap();
    assert!(hash.len() >= 40);
    for (what, secret) in [
        ("secret", SECRET),
        ("argon2id hash", hash),
        ("TOTP code", code.as_str()),
    ] {
        assert!(!seen.contains(secret), "the server saw the {what}");
    }
    // TOTP codes of the whole window are absent too (a server could otherwise use one within 90 s).
    for code in device.totp.accepted_codes(unix_now()) {
        assert!(!seen.contains(&format!("\"{code}\"")), "a TOTP code crossed the server");
    }

    // Replaying what it saw gets it nothing: the technician's confirmation answered another SPAKE2 message.
    let recorded = |kind: &str| -> serde_json::Value {
        log.lock()
            .unwrap()
            .iter()
            .filter_map(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .find(|m| m["type"] == "signal" && m["payload"]["kind"] == kind && m.get("to").is_some())
            .unwrap_or_else(|| panic!("no recorded {kind}"))
    };
    let (confirm, answer) = (recorded("auth_confirm"), recorded("answer"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&server.url).await.unwrap();
    let join = serde_json::json!({"type": "join_device", "v": 1, "device": device.host.device_id().unwrap().as_str(),
        "access": "alex", "name": "alex"});
    socket.send(Message::text(join.to_string())).await.unwrap();
    let mut host = None;
    let outcome = loop {
        let Some(Ok(Message::Text(text))) = timeout("the replay's answer", socket.next()).await else {
            panic!("the server closed the replay");
        };
        let message: serde_json::Value = serde_json::from_str(&text).unwrap();
        match message["type"].as_str().unwrap() {
            "join_pending" => host = Some(message["host"].as_str().unwrap().to_string()),
            "signal" if message["payload"]["kind"] == "auth" => {
                let to = host.clone().unwrap();
                for mut replayed in [confirm.clone(), answer.clone()] {
                    replayed["to"] = to.clone().into();
                    socket.send(Message::text(replayed.to_string())).await.unwrap();
                }
            }
            "signal" if message["payload"]["kind"] == "auth_proof" => break "the host accepted a replay".to_string(),
            "error" => break message["code"].as_str().unwrap().to_string(),
            _ => {}
        }
    };
    assert_eq!(outcome, "authentication_failed");
    let mut events = device.events;
    let events = drain(&mut events);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HostEvent::UnattendedAccess { .. }))
            .count(),
        1,
        "only the honest session was let in: {events:?}"
    );
    device.host.end("done").await;
}

/// Replaces the certificate fingerprint of SDP payloads of `kind` (`offer` or `answer`), as a server in the
/// middle must to terminate DTLS itself.
fn swap_fingerprint(kind: &'static str) -> Rewrite {
    Arc::new(move |message: &mut serde_json::Value| {
        if message["payload"]["kind"] == kind {
            swap_in(message);
        }
        true
    })
}

fn swap_in(message: &mut serde_json::Value) {
    if let Some(sdp) = message["payload"]["sdp"].as_str() {
        let fake = (0..32).map(|_| "AB").collect::<Vec<_>>().join(":");
        let swapped: String = sdp
            .lines()
            .map(|line| {
                if line.starts_with("a=fingerprint:sha-256 ") {
                    format!("a=fingerprint:sha-256 {fake}\r\n")
                } else {
                    format!("{line}\r\n")
                }
            })
            .collect();
        message["payload"]["sdp"] = swapped.into();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_server_that_swaps_fingerprints_or_forges_the_proof_is_detected_and_gets_nothing() {
    let server = SignalingServer::start(&[]);
    let log = Arc::new(Mutex::new(Vec::new()));

    // 1. Fingerprints swapped in the answer on its way to the host: the host's view of the transcript differs
    //    from the technician's, the technician's confirmation fails, the host refuses and the technician is told.
    let swapping = proxy(server.url.clone(), log.clone(), swap_fingerprint("answer"), pass()).await;
    let sink = RecordingSink::new();
    let mut device = device(&swapping, sink.clone(), 1).await;
    let code = device.totp.code_at(unix_now());
    let result = timeout(
        "the swapped join",
        Viewer::join(technician(&swapping, &device, SECRET, Some(code))),
    )
    .await;
    assert!(
        matches!(result, Err(SessionError::AuthenticationFailed { .. })),
        "{result:?}"
    );
    let events = drain(&mut device.events);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HostEvent::AccessFailures { failures: 1, .. })),
        "the host saw the failure: {events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            HostEvent::ViewerConnected { .. } | HostEvent::UnattendedAccess { .. }
        )),
        "{events:?}"
    );
    device.host.end("done").await;

    // 2. The host's fingerprint swapped in the offer on its way to the technician: same outcome from the other
    //    side.
    let swapping = proxy(server.url.clone(), log.clone(), pass(), swap_fingerprint("offer")).await;
    let mut device = self::device(&swapping, sink.clone(), 1).await;
    let code = device.totp.code_at(unix_now());
    let result = timeout(
        "the swapped join",
        Viewer::join(technician(&swapping, &device, SECRET, Some(code))),
    )
    .await;
    assert!(
        matches!(result, Err(SessionError::AuthenticationFailed { .. })),
        "{result:?}"
    );
    assert!(drain(&mut device.events)
        .iter()
        .any(|e| matches!(e, HostEvent::AccessFailures { .. })));
    device.host.end("done").await;

    // 3. A forged proof (the server poses as the device after the technician proved the secret): the technician
    //    refuses the host.
    let forge: Rewrite = Arc::new(|message: &mut serde_json::Value| {
        if message["payload"]["kind"] == "auth_proof" {
            let other = DeviceIdentity::generate().unwrap();
            use base64::Engine as _;
            message["payload"]["public_key"] = base64::engine::general_purpose::STANDARD
                .encode(other.public_key())
                .into();
        }
        true
    });
    let forging = proxy(server.url.clone(), log.clone(), pass(), forge).await;
    let device = self::device(&forging, sink.clone(), 1).await;
    let code = device.totp.code_at(unix_now());
    let result = timeout(
        "the forged join",
        Viewer::join(technician(&forging, &device, SECRET, Some(code))),
    )
    .await;
    assert!(
        matches!(result, Err(SessionError::HostNotAuthenticated(_))),
        "{result:?}"
    );
    assert!(sink.events().is_empty(), "nothing reached the device's input");
    device.host.end("done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_backs_off_even_when_a_malicious_server_does_not() {
    let server = SignalingServer::start(&[]);
    // The server never hears of failures: its own backoff never starts.
    let drop_reports: Rewrite = Arc::new(|message: &mut serde_json::Value| message["type"] != "auth_failed");
    let url = proxy(
        server.url.clone(),
        Arc::new(Mutex::new(Vec::new())),
        drop_reports,
        pass(),
    )
    .await;
    let mut device = device(&url, RecordingSink::new(), 1).await;
    let code = device.totp.code_at(unix_now());
    let mut config = technician(&url, &device, "wrong horse battery", Some(code));
    // Without the server's report, the technician only learns of the failure by its own timeout.
    config = config.connect_timeout(Duration::from_secs(5));
    let first = tokio::spawn(Viewer::join(config));
    loop {
        let event = timeout("the host's failure", device.events.recv())
            .await
            .expect("host events");
        if matches!(event, HostEvent::AccessFailures { failures: 1, .. }) {
            break;
        }
    }
    // During the host's wait, even the right secret is turned away by the host itself.
    let code = device.totp.code_at(unix_now());
    let second = timeout(
        "an attempt during the host's wait",
        Viewer::join(technician(&url, &device, SECRET, Some(code))),
    )
    .await;
    match second {
        Err(SessionError::Denied(reason)) => assert!(reason.contains("retry in"), "{reason}"),
        other => panic!("the host let an attempt through during its wait: {other:?}"),
    }
    assert!(timeout("the first attempt", first).await.unwrap().is_err());
    device.host.end("done").await;
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(peerdesk_e2e::workspace_binary("peerdesk"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_cli_sets_up_a_device_and_a_technician_connects_with_the_secret_file_only() {
    use std::io::BufRead as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("peerdesk-unattended-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, policy, secret) = (dir.join("device.key"), dir.join("access.json"), dir.join("secret"));
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let added = cli(&[
        "device",
        "add-access",
        "--policy",
        &path(&policy),
        "--name",
        "alex",
        "--secret-file",
        &path(&secret),
        "--control",
    ]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let stored = std::fs::read_to_string(&policy).unwrap();
    assert!(!stored.contains(SECRET) && stored.contains("$argon2id$"), "{stored}");
    assert_eq!(std::fs::metadata(&policy).unwrap().permissions().mode() & 0o777, 0o600);
    let id_output = cli(&["device", "id", "--key", &path(&key)]);
    let id_line = String::from_utf8_lossy(&id_output.stdout).to_string();
    let id = id_line
        .trim()
        .strip_prefix("device ID: ")
        .expect("a device ID line")
        .to_string();

    let server = SignalingServer::start(&[]);
    let mut share = std::process::Command::new(peerdesk_e2e::workspace_binary("peerdesk"))
        .args([
            "share",
            "--synthetic",
            "--size",
            "320x240",
            "--loopback",
            "--server",
            &server.url,
            "--unattended",
        ])
        .args(["--device-key", &path(&key), "--access-policy", &path(&policy)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(share.stdout.take().unwrap()).lines();
    let registered = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.starts_with("device ID: "))
        .expect("share prints its device ID");
    assert!(registered.contains(&id), "{registered} vs {id}");

    let view = |secret_file: &std::path::Path| {
        cli(&[
            "view",
            "--server",
            &server.url,
            "--loopback",
            "--seconds",
            "2",
            "--device",
            &id,
            "--access",
            "alex",
            "--secret-file",
            &path(secret_file),
        ])
    };
    let viewed = view(&secret);
    let out = String::from_utf8_lossy(&viewed.stdout).to_string();
    assert!(
        viewed.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&viewed.stderr)
    );
    assert!(
        out.contains("unattended access") && out.contains("control: true"),
        "{out}"
    );

    std::thread::sleep(Duration::from_millis(500));
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "wrong horse battery staple\n").unwrap();
    let refused = view(&wrong);
    let err = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success());
    assert!(err.contains("authentication failed; retry in 1 s"), "{err}");
    let _ = share.kill();
    let _ = share.wait();
    std::fs::remove_dir_all(&dir).ok();
}
