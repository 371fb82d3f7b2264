//! dav1d behind peerdesk's decoder: any bytes as a temporal unit, with the picture-size limit a session uses.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerdesk::decode::{Decoder, DecoderConfig};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let config = DecoderConfig {
        threads: 1,
        max_picture_pixels: 1920 * 1080,
        ..DecoderConfig::default()
    };
    let Ok(mut decoder) = Decoder::new(config) else {
        return;
    };
    if let Ok(Some(picture)) = decoder.decode(Bytes::copy_from_slice(data), Duration::ZERO) {
        assert!(u64::from(picture.width()) * u64::from(picture.height()) <= 1920 * 1080);
        let _ = picture.to_frame();
    }
});
