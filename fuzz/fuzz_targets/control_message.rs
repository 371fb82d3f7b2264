//! Control-channel messages: what a host reads from viewers (through the permission gate) and a viewer from its
//! host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerdesk::control::protocol::{parse_host_message, parse_viewer_message};
use peerdesk::control::{ControlGate, Permissions};
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let _ = parse_host_message(data);
    let _ = parse_viewer_message(data);
    let mut gate = ControlGate::new(Permissions::FULL, Instant::now());
    let _ = gate.check(data, Instant::now());
});
