//! A private Xvfb server for tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// An Xvfb server on a free display number, stopped on drop.
pub struct Xvfb {
    child: Child,
    /// The display name, e.g. `:93`.
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb at `width`x`height`x24. Returns `None` (after saying why) when Xvfb is not installed and
    /// `PEERDESK_REQUIRE_XVFB` is unset; the project's test script sets it, so CI never skips.
    pub fn start(width: u32, height: u32) -> Option<Xvfb> {
        if Command::new("Xvfb")
            .arg("-help")
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var_os("PEERDESK_REQUIRE_XVFB").is_some() {
                panic!("Xvfb is required (PEERDESK_REQUIRE_XVFB is set) but not installed: run scripts/setup.sh");
            }
            eprintln!("SKIPPED: Xvfb is not installed (scripts/setup.sh installs it)");
            return None;
        }
        // Distinct numbers per process (pid) and per test thread (counter).
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = 100 + (std::process::id() % 300) * 8;
        for _ in 0..100 {
            let n = base + NEXT.fetch_add(1, Ordering::SeqCst);
            if Path::new(&format!("/tmp/.X{n}-lock")).exists() || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                continue;
            }
            let child = Command::new("Xvfb")
                .args([
                    format!(":{n}"),
                    "-screen".into(),
                    "0".into(),
                    format!("{width}x{height}x24"),
                ])
                .args(["-nolisten", "tcp", "-noreset"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn Xvfb");
            let mut xvfb = Xvfb {
                child,
                display: format!(":{n}"),
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && x11rb::connect(Some(&xvfb.display)).is_ok() {
                    return Some(xvfb);
                }
                if let Ok(Some(_)) = xvfb.child.try_wait() {
                    break; // lost a race for this display number
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start Xvfb");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
