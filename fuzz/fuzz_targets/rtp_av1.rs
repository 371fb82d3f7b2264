//! The viewer's RTP receive path: packets (sequence number, timestamp, marker, AV1 payload) in any order and
//! content, through the reorder buffer, loss detection and the AV1 depacketizer.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerdesk::transport::assembler::FrameAssembler;

fuzz_target!(|data: &[u8]| {
    let mut assembler = FrameAssembler::new();
    // Each packet: 2 bytes sequence (LE), 1 byte timestamp step, 1 byte flags (0x80: marker), 2 bytes payload
    // length (LE), then the payload.
    let mut rest = data;
    let mut timestamp = 0u32;
    while rest.len() >= 6 {
        let sequence = u16::from_le_bytes([rest[0], rest[1]]);
        timestamp = timestamp.wrapping_add(u32::from(rest[2]) * 3000);
        let marker = rest[3] & 0x80 != 0;
        let len = usize::from(u16::from_le_bytes([rest[4], rest[5]])).min(rest.len() - 6);
        let payload = Bytes::copy_from_slice(&rest[6..6 + len]);
        rest = &rest[6 + len..];
        for frame in assembler.push(sequence, timestamp, marker, payload) {
            assert!(frame.data.len() <= peerdesk::transport::assembler::MAX_FRAME_BYTES);
        }
        let _ = assembler.take_keyframe_request();
    }
});
