//! Support for the end-to-end tests: the signaling server as a real process, a private Xvfb, helpers.

pub mod xvfb;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A binary of this workspace, built next to the test executable (`cargo test --workspace` builds them all).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// The signaling server running as its own process on a free loopback port; killed on drop.
pub struct SignalingServer {
    child: Child,
    /// `ws://127.0.0.1:PORT/ws`
    pub url: String,
    /// `http://127.0.0.1:PORT`
    pub http: String,
}

impl SignalingServer {
    /// Starts the server with extra arguments.
    pub fn start(extra: &[&str]) -> SignalingServer {
        // PEERDESK_SIGNALING_SERVER runs the tests against another build (checking that they fail on an old one).
        let binary = std::env::var_os("PEERDESK_SIGNALING_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_binary("peerdesk-signaling-server"));
        // A free port unless `extra` names the address (a restart on the same one).
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(binary)
            .args(listen)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the signaling server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server printed its address");
        let tls = extra.contains(&"--tls-cert");
        let (ws, http) = if tls { ("wss", "https") } else { ("ws", "http") };
        SignalingServer {
            child,
            url: format!("{ws}://{addr}/ws"),
            http: format!("{http}://{addr}"),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> String {
        self.http.split("://").nth(1).unwrap_or_default().to_string()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for the server")
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for SignalingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
