"""The lab's artifact mirror: plain HTTP on the lab bridge serving what the install downloads.

The artifacts are the real binaries `lab build` made, laid out as the upstream release archives
are: kubelet and kube-proxy as plain files under `kubernetes/v<version>/bin/linux/<arch>/`,
containerd as `containerd-<v>-linux-<arch>.tar.gz` (binaries under `bin/`), runc as
`runc.<arch>`, the CNI plugins as `cni-plugins-linux-<arch>-v<v>.tgz` (binaries at the top).

A second generation of each (`g2/...`) holds the same programs with a trailing marker appended
(an ELF file runs the same with bytes after its end), so tests can change an artifact's sha256
and see exactly that binary replaced while the node keeps working.
"""

from __future__ import annotations

import gzip
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

from lab import build, network, pins
from lab.paths import MIRROR

PORT = int(os.environ.get("K8SW_LAB_MIRROR_PORT", "18080"))
ARTIFACTS = ("kubelet", "kube-proxy", "containerd", "runc", "cni-plugins")
GENERATIONS = (1, 2)
CONTAINERD_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr")
CNI_BINARIES = ("bridge", "host-local", "loopback", "portmap")
VERSIONS = {"containerd": pins.CONTAINERD, "runc": pins.RUNC, "cni-plugins": pins.CNI_PLUGINS}
# The URL of each artifact, as a stack config states it ({version} and {arch} filled by the program).
PATHS = {
    "kubelet": "kubernetes/v{version}/bin/linux/{arch}/kubelet",
    "kube-proxy": "kubernetes/v{version}/bin/linux/{arch}/kube-proxy",
    "containerd": "containerd/v{version}/containerd-{version}-linux-{arch}.tar.gz",
    "runc": "runc/v{version}/runc.{arch}",
    "cni-plugins": "cni-plugins/v{version}/cni-plugins-linux-{arch}-v{version}.tgz",
}


def base_url() -> str:
    return f"http://{network.GATEWAY}:{PORT}"


def tarball(members: dict[str, bytes]) -> bytes:
    """A reproducible .tar.gz of executables (what release archives of containerd and CNI look like)."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=1) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _marked(program: bytes, generation: int) -> bytes:
    return program if generation == 1 else program + f"\n#k8s-workers-generation-{generation}\n".encode()


def _artifact(name: str, version: str, generation: int) -> bytes:
    def program(binary: str) -> bytes:
        return _marked(
            build.binary(binary, version if name in ("kubelet", "kube-proxy") else None).read_bytes(), generation
        )

    if name == "containerd":
        return tarball({f"bin/{b}": program(b) for b in CONTAINERD_BINARIES})
    if name == "cni-plugins":
        return tarball({f"./{b}": program(b) for b in CNI_BINARIES})
    return program(name)


def relative_path(name: str, version: str, generation: int = 1, arch: str = "amd64") -> str:
    path = PATHS[name].replace("{version}", version.lstrip("v")).replace("{arch}", arch)
    return path if generation == 1 else f"g{generation}/{path}"


def url_template(name: str, generation: int = 1) -> str:
    """The artifact's URL with the program's placeholders left in."""
    return f"{base_url()}/{'' if generation == 1 else f'g{generation}/'}{PATHS[name]}"


def publish(kubernetes_versions: tuple[str, ...] = (pins.KUBERNETES,)) -> dict[str, dict[int, str]]:
    """Write every artifact generation that is missing; return (name@version) -> generation -> sha256.

    Keys are the artifact name for the pinned version, and `name@vX.Y.Z` for other Kubernetes versions.
    """
    sums: dict[str, dict[int, str]] = {}
    for name in ARTIFACTS:
        versions = kubernetes_versions if name in ("kubelet", "kube-proxy") else (VERSIONS[name],)
        for version in versions:
            key = name if version in (pins.KUBERNETES, VERSIONS.get(name)) else f"{name}@{version}"
            for generation in GENERATIONS:
                target = MIRROR / relative_path(name, version, generation)
                stamp = target.with_name(target.name + ".sha256")
                source = _source_stamp(name, version)
                if not (target.exists() and stamp.exists() and stamp.read_text().split()[1:] == [source]):
                    data = _artifact(name, version, generation)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(target.name + ".partial")
                    partial.write_bytes(data)
                    partial.rename(target)
                    stamp.write_text(f"{hashlib.sha256(data).hexdigest()} {source}")
                sums.setdefault(key, {})[generation] = stamp.read_text().split()[0]
    return sums


def _source_stamp(name: str, version: str) -> str:
    """Which build the artifact was made from: a new build republishes it."""
    binary = {"containerd": "containerd", "cni-plugins": "bridge"}.get(name, name)
    return build.binary(binary, version if name in ("kubelet", "kube-proxy") else None).parent.parent.name


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
        with urllib.request.urlopen(f"{base_url()}/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


_server: subprocess.Popen | None = None  # started by this Python process: reaped on stop


def start() -> int:
    global _server
    MIRROR.mkdir(parents=True, exist_ok=True)
    (MIRROR / "ready").write_text("ok\n")
    log = open(MIRROR.parent / "mirror.log", "ab")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(PORT), "--bind", network.GATEWAY, "--directory", str(MIRROR)],
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
    raise RuntimeError(
        f"the lab mirror did not start on {network.GATEWAY}:{PORT} (port in use? set K8SW_LAB_MIRROR_PORT); "
        f"see {MIRROR.parent / 'mirror.log'}"
    )


def stop(pid: int | None) -> None:
    if is_ours(pid):
        os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
        if _server is not None and _server.pid == pid:
            _server.wait(timeout=10)
