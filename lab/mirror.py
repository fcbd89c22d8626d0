"""The lab's artifact mirror: plain HTTP on 127.0.0.1 serving what the install downloads.

Until real kubelet/kube-proxy/containerd builds exist, every artifact is the PLACEHOLDER
program (lab/placeholder.c): it logs its arguments and stays running. Two generations of
each artifact exist (the second has a trailing marker, so a different sha256) so tests can
change a binary's checksum.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

from lab.paths import MIRROR

PORT = int(os.environ.get("K8SW_LAB_MIRROR_PORT", "18080"))
SOURCE = Path(__file__).resolve().parent / "placeholder.c"
ARTIFACTS = ("kubelet", "kube-proxy", "containerd", "runc", "cni-plugins")
GENERATIONS = (1, 2)


def base_url() -> str:
    return f"http://127.0.0.1:{PORT}"


def _placeholder() -> bytes:
    binary = MIRROR / "placeholder"
    stamp = MIRROR / "placeholder.source-sha256"
    source_sha = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    if not binary.exists() or not stamp.exists() or stamp.read_text() != source_sha:
        MIRROR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(binary), str(SOURCE)], check=True)
        stamp.write_text(source_sha)
    return binary.read_bytes()


def tarball(members: dict[str, bytes]) -> bytes:
    """A reproducible .tar.gz of executables (what release archives of containerd and CNI look like)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def artifact(name: str, generation: int) -> bytes:
    program = _placeholder() + (b"" if generation == 1 else f"\n#k8s-workers-generation-{generation}\n".encode())
    if name == "containerd":
        return tarball({f"bin/{b}": program for b in ("containerd", "containerd-shim-runc-v2", "ctr")})
    if name == "cni-plugins":
        return tarball({f"./{b}": program for b in ("bridge", "host-local", "loopback", "portmap")})
    return program


def publish() -> dict[str, dict[int, str]]:
    """Write every artifact generation; return name -> generation -> sha256."""
    MIRROR.mkdir(parents=True, exist_ok=True)
    sums: dict[str, dict[int, str]] = {}
    for name in ARTIFACTS:
        for generation in GENERATIONS:
            data = artifact(name, generation)
            path = MIRROR / f"{name}-g{generation}"
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
            sums.setdefault(name, {})[generation] = hashlib.sha256(data).hexdigest()
    return sums


def url(name: str, generation: int = 1) -> str:
    return f"{base_url()}/{name}-g{generation}"


def is_ours(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"http.server" in cmdline and str(MIRROR).encode() in cmdline


def serving() -> bool:
    try:
        with urllib.request.urlopen(f"{base_url()}/placeholder.source-sha256", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


_server: subprocess.Popen | None = None  # started by this Python process: reaped on stop


def start() -> int:
    global _server
    log = open(MIRROR.parent / "mirror.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(PORT), "--bind", "127.0.0.1", "--directory", str(MIRROR)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if serving():
            _server = process
            return process.pid
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"the lab mirror did not start on 127.0.0.1:{PORT}; see {MIRROR.parent / 'mirror.log'}")


def stop(pid: int | None) -> None:
    if is_ours(pid):
        os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
        if _server is not None and _server.pid == pid:
            _server.wait(timeout=10)
