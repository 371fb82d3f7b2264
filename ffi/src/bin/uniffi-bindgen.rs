//! The uniffi-bindgen command, pinned to the uniffi version the library uses:
//! `cargo run -p peerdesk-ffi --bin uniffi-bindgen -- generate --library target/ci/libpeerdesk_ffi.so --language kotlin --out-dir out`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
