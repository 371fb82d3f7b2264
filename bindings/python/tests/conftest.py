"""Fixtures: the signaling server as a real process on a free loopback port."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _server_binary() -> pathlib.Path:
    for profile in ("ci", "release", "debug"):
        path = ROOT / "target" / profile / "peerdesk-signaling-server"
        if path.exists():
            return path
    raise RuntimeError("build the signaling server first: cargo build --profile ci -p peerdesk-signaling-server")


@pytest.fixture()
def tls_server(tmp_path):
    """The server with real TLS: a throw-away CA (tests/tls/make-test-ca.sh); yields (wss URL, CA PEM)."""
    subprocess.run([str(ROOT / "tests" / "tls" / "make-test-ca.sh"), str(tmp_path)], check=True)
    args = [str(_server_binary()), "--listen", "127.0.0.1:0", "--tls-cert", str(tmp_path / "server.pem"),
            "--tls-key", str(tmp_path / "server.key")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "RUST_LOG": "warn"})
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    yield f"wss://{line.split()[-1]}/ws", (tmp_path / "ca.pem").read_text()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def server():
    args = [str(_server_binary()), "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "RUST_LOG": "warn"})
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    url = f"ws://{line.split()[-1]}/ws"
    yield url
    proc.terminate()
    proc.wait(timeout=10)
