//! The viewer's RTP receive path: packets (sequence number, timestamp, marker, AV1 payload) in any order and
//! content, with time passing between them, through loss tracking (NACK, give-up), the reorder buffer, the
//! keyframe-request policy and the AV1 depacketizer.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerdesk::receive::assembler::MAX_FRAME_BYTES;
use peerdesk::receive::video::{ReceiveOutput, VideoReceiver};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut receiver = VideoReceiver::default();
    let mut now = Instant::now();
    // Each packet: 2 bytes sequence (LE), 1 byte timestamp step, 1 byte flags (0x80: marker; the low 6 bits:
    // time passed since the packet before, in 4 ms steps), 2 bytes payload length (LE), then the payload.
    let mut rest = data;
    let mut timestamp = 0u32;
    while rest.len() >= 6 {
        let sequence = u16::from_le_bytes([rest[0], rest[1]]);
        timestamp = timestamp.wrapping_add(u32::from(rest[2]) * 3000);
        let marker = rest[3] & 0x80 != 0;
        let step = Duration::from_millis(u64::from(rest[3] & 0x3f) * 4);
        let len = usize::from(u16::from_le_bytes([rest[4], rest[5]])).min(rest.len() - 6);
        let payload = Bytes::copy_from_slice(&rest[6..6 + len]);
        rest = &rest[6 + len..];
        let arrival = now + step;
        while let Some(deadline) = receiver.poll_timeout().filter(|d| *d <= arrival) {
            now = deadline.max(now);
            receiver.on_timeout(now);
            drain(&mut receiver);
        }
        now = arrival;
        receiver.on_packet(now, sequence, timestamp, marker, payload);
        drain(&mut receiver);
    }
});

fn drain(receiver: &mut VideoReceiver) {
    while let Some(output) = receiver.poll_output() {
        match output {
            ReceiveOutput::Frame(frame) => assert!(frame.data.len() <= MAX_FRAME_BYTES),
            ReceiveOutput::Nack(sequence_numbers) => assert!(!sequence_numbers.is_empty()),
            _ => {}
        }
    }
}
