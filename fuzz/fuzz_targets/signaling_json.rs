//! Signaling JSON as the server reads it from clients (through the hub, which must answer every message without
//! panicking) and as clients read it from the server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerdesk::signaling::protocol::{parse_client_message, parse_server_message};
use peerdesk_signaling_server::rooms::MemoryRoomStore;
use peerdesk_signaling_server::{Hub, HubConfig};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_server_message(&text);
    let _ = parse_client_message(&text);
    // The hub keeps state across inputs, as a long-running server does.
    static HUB: OnceLock<(Hub, String)> = OnceLock::new();
    let (hub, peer) = HUB.get_or_init(|| {
        let hub = Hub::new(HubConfig::default(), Arc::new(MemoryRoomStore::default()));
        let (peer, receiver) = hub.connect().expect("room for one peer");
        std::mem::forget(receiver); // messages to it are queued up to its byte limit, then it is dropped
        (hub, peer)
    });
    hub.handle(peer, IpAddr::V4(Ipv4Addr::LOCALHOST), &text, Instant::now());
});
