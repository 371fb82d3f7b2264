//! dav1d behind peerdesk's decoder: any bytes as a temporal unit, with the picture-size limit a session uses.
//! One decoder is reused (reset before every input, so an input's outcome does not depend on the ones before).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peerdesk::decode::{Decoder, DecoderConfig};
use std::cell::RefCell;
use std::time::Duration;

const MAX_PIXELS: u32 = 1920 * 1080;

thread_local! {
    static DECODER: RefCell<Decoder> = RefCell::new(
        Decoder::new(DecoderConfig {
            threads: 1,
            max_picture_pixels: MAX_PIXELS,
            ..DecoderConfig::default()
        })
        .expect("dav1d starts"),
    );
}

fuzz_target!(|data: &[u8]| {
    DECODER.with(|decoder| {
        let mut decoder = decoder.borrow_mut();
        decoder.reset();
        if let Ok(Some(picture)) = decoder.decode(Bytes::copy_from_slice(data), Duration::ZERO) {
            assert!(u64::from(picture.width()) * u64::from(picture.height()) <= u64::from(MAX_PIXELS));
            let _ = picture.to_frame();
        }
    });
});
