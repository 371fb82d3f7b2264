//! The viewer's RTP receive path: packets (sequence number, timestamp, marker, AV1 payload) in any order and
//! content, through the reorder buffer, loss detection and the AV1 depacketizer.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerdesk::transport::assembler::FrameAssembler;

fuzz_target!(|data: &[u8]| {
    let mut assembler = FrameAssembler::new();
    // Each packet: 2 bytes sequence, 1 byte timestamp step, 1 byte flags/length, then that many payload bytes.
    let mut rest = data;
    let mut timestamp = 0u32;
    while rest.len() >= 4 {
        let sequence = u16::from_le_bytes([rest[0], rest[1]]);
        timestamp = timestamp.wrapping_add(u32::from(rest[2]) * 3000);
        let marker = rest[3] & 0x80 != 0;
        let len = usize::from(rest[3] & 0x7f).min(rest.len() - 4);
        let payload = Bytes::copy_from_slice(&rest[4..4 + len]);
        rest = &rest[4 + len..];
        for frame in assembler.push(sequence, timestamp, marker, payload) {
            assert!(frame.data.len() <= peerdesk::transport::assembler::MAX_FRAME_BYTES);
        }
        let _ = assembler.take_keyframe_request();
    }
});
