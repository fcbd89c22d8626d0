"""Run the generated install/removal scripts against a scratch root on this machine.

`K8SW_ROOT` prefixes every path the scripts touch; a stand-in `systemctl` records what
would happen to services; artifacts come from an HTTP server on 127.0.0.1. The lab
(tests/e2e) runs the same scripts on real systemd hosts.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from k8s_workers.scripts.commands import SUMMARY_PREFIX
from lab.mirror import tarball

# A systemctl stand-in: unit state in $FAKE_SYSTEMD, every call appended to calls.log.
FAKE_SYSTEMCTL = r"""#!/bin/bash
state="${FAKE_SYSTEMD:?}"
mkdir -p "$state/enabled" "$state/running"
echo "$*" >> "$state/calls.log"
args=()
for a in "$@"; do case "$a" in --*) ;; *) args+=("$a") ;; esac; done
verb=${args[0]:-}; unit=${args[1]:-}
case "$verb" in
  daemon-reload | reset-failed) ;;
  is-enabled) [ -e "$state/enabled/$unit" ] && { echo enabled; exit 0; }; echo disabled; exit 1 ;;
  is-active) [ -e "$state/running/$unit" ] && { echo active; exit 0; }; echo inactive; exit 3 ;;
  enable) : > "$state/enabled/$unit" ;;
  start | restart)
    if [ "${FAKE_FAIL:-}" = "$verb $unit" ]; then echo "Job for $unit.service failed." >&2; exit 1; fi
    : > "$state/running/$unit" ;;
  stop) rm -f "$state/running/$unit" ;;
  disable) rm -f "$state/enabled/$unit"; case " $* " in *" --now "*) rm -f "$state/running/$unit" ;; esac ;;
  *) echo "fake systemctl: unsupported: $*" >&2; exit 1 ;;
esac
"""

# Runtime tools kube-proxy needs that this machine may lack: stand-ins, named as such.
STUB_TOOLS = ("iptables", "nft", "ipset", "ip")


def artifact_bytes(name: str, generation: int = 1) -> bytes:
    """Placeholder executables: clearly not Kubernetes, different per generation."""
    script = f"#!/bin/sh\n# k8s-workers test placeholder for {name}, generation {generation}\nexit 0\n".encode()
    if name == "containerd":
        return tarball({f"bin/{b}": script for b in ("containerd", "containerd-shim-runc-v2", "ctr")})
    if name == "cni-plugins":
        return tarball({f"./{b}": script for b in ("bridge", "host-local", "loopback", "portmap")})
    return script


class ArtifactServer:
    """Plain HTTP on 127.0.0.1 serving a folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def publish(self, name: str, data: bytes) -> str:
        (self.folder / name).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class ScriptResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        for line in self.stdout.splitlines():
            if line.startswith(SUMMARY_PREFIX):
                return json.loads(line.removeprefix(SUMMARY_PREFIX))
        raise AssertionError(f"no summary line in output:\n{self.stdout}\n{self.stderr}")


class ScratchHost:
    def __init__(self, base: Path):
        self.root = base / "root"
        self.systemd = base / "systemd"
        self.bin = base / "bin"
        for folder in (self.root, self.systemd, self.bin):
            folder.mkdir(parents=True, exist_ok=True)
        (self.bin / "systemctl").write_text(FAKE_SYSTEMCTL)
        for tool in STUB_TOOLS:
            (self.bin / tool).write_text(f"#!/bin/sh\n# test stand-in for {tool}\nexit 0\n")
        for tool in self.bin.iterdir():
            tool.chmod(0o755)

    def cgroup_v1(self) -> None:
        """A /sys/fs/cgroup without cgroup.controllers: what the preflight reads as cgroup v1.
        (A scratch root without /sys/fs/cgroup is not checked.)"""
        (self.root / "sys/fs/cgroup").mkdir(parents=True, exist_ok=True)

    def run(self, script: str, path: str | None = None, **env: str) -> ScriptResult:
        return self.run_command("bash -s", script, path, **env)

    def run_command(self, command: str, stdin: str, path: str | None = None, **env: str) -> ScriptResult:
        """`command` as an SSH session starts it (the login shell's `-c`), `stdin` on its stdin."""
        environment = {
            "PATH": path or f"{self.bin}:{os.environ['PATH']}",
            "K8SW_ROOT": str(self.root),
            "FAKE_SYSTEMD": str(self.systemd),
            **env,
        }
        result = subprocess.run(
            ["bash", "-c", command], input=stdin, capture_output=True, text=True, env=environment, check=False,
            timeout=120,
        )  # fmt: skip
        return ScriptResult(result.returncode, result.stdout, result.stderr)

    def calls(self) -> list[str]:
        log = self.systemd / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def clear_calls(self) -> None:
        (self.systemd / "calls.log").unlink(missing_ok=True)

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        """path -> (inode, mtime_ns, mode) of every file and symlink under the root."""
        out = {}
        for path in self.root.rglob("*"):
            if path.is_file() or path.is_symlink():
                st = path.lstat()
                out["/" + str(path.relative_to(self.root))] = (st.st_ino, st.st_mtime_ns, st.st_mode)
        return out

    def read(self, path: str) -> bytes:
        return (self.root / path.lstrip("/")).read_bytes()


@contextmanager
def artifact_server(folder: Path) -> Iterator[ArtifactServer]:
    folder.mkdir(parents=True, exist_ok=True)
    server = ArtifactServer(folder)
    try:
        yield server
    finally:
        server.close()
