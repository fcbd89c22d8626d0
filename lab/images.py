"""Container images for the lab, made here: no registry is reachable.

Two lab fixtures (not part of what the program installs): the sandbox ("pause") image, named as
the program's configured sandbox image, and a tiny HTTP workload (lab/images/echo). Each is a
single static binary packed as an OCI image-layout archive that `ctr images import` takes, and
imported into containerd's `k8s.io` namespace on each lab node after its install.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from lab import pins
from lab.hosts import LabHost, ssh_command
from lab.paths import IMAGES

SOURCES = Path(__file__).resolve().parent / "images"


@dataclass(frozen=True)
class Image:
    name: str  # full reference, e.g. registry.k8s.io/pause:3.10
    archive: Path


@dataclass(frozen=True)
class Member:
    """One entry of an image layer: a file (data), a symlink (link) or a directory (directory)."""

    data: bytes = b""
    mode: int = 0o644
    link: str | None = None
    directory: bool = False


def _tar(members: dict[str, tuple[bytes, int]] | dict[str, Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, entry in sorted(members.items()):
            member = entry if isinstance(entry, Member) else Member(data=entry[0], mode=entry[1])
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = member.mode, 0
            if member.link is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, member.link, 0o777
            elif member.directory:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(member.data)
            tar.addfile(info, io.BytesIO(member.data) if info.isfile() else None)
    return buffer.getvalue()


def oci_archive(reference: str, binary: bytes, entrypoint: list[str]) -> bytes:
    """An OCI image layout (one layer holding the binary) as a tar, named `reference`."""
    return oci_image(reference, _tar({entrypoint[0].lstrip("/"): (binary, 0o755)}), entrypoint)


def oci_image(
    reference: str,
    layer: bytes,
    entrypoint: list[str] | None,
    cmd: list[str] | None = None,
    env: list[str] | None = None,
) -> bytes:
    """An OCI image layout of one layer (an uncompressed tar) as a tar, named `reference`. No
    entrypoint (busybox's way) makes a pod's `args` alone the command."""
    layer_digest = hashlib.sha256(layer).hexdigest()
    settings: dict[str, object] = {"WorkingDir": "/"}
    # each only when given: the lab's own images keep their digests
    settings |= {k: v for k, v in (("Entrypoint", entrypoint), ("Cmd", cmd), ("Env", env)) if v is not None}
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": settings,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{hashlib.sha256(config).hexdigest()}",
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer_digest}",
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{hashlib.sha256(manifest).hexdigest()}",
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": reference,
                        "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1],
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    blobs = {f"blobs/sha256/{hashlib.sha256(b).hexdigest()}": (b, 0o644) for b in (layer, config, manifest)}
    return _tar({"oci-layout": (b'{"imageLayoutVersion":"1.0.0"}', 0o644), "index.json": (index, 0o644), **blobs})


def _build_pause(out: Path) -> None:
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(SOURCES / "pause.c")], check=True)


def _build_echo(out: Path) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath -buildvcs=false"}
    subprocess.run(["go", "build", "-ldflags=-s -w", "-o", str(out), "."], cwd=SOURCES / "echo", env=env, check=True)


def _source_digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build() -> list[Image]:
    """Both images, rebuilt only when their sources change."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    made = []
    recipes = (
        (pins.PAUSE_IMAGE, _build_pause, (SOURCES / "pause.c",), ["/pause"]),
        (pins.WORKLOAD_IMAGE, _build_echo, (SOURCES / "echo/main.go", SOURCES / "echo/go.mod"), ["/echo"]),
    )
    for reference, compile_binary, sources, entrypoint in recipes:
        archive = IMAGES / f"{reference.replace('/', '_').replace(':', '_')}-{_source_digest(*sources)}.tar"
        if not archive.exists():
            binary = IMAGES / f"{archive.stem}.bin"
            compile_binary(binary)
            partial = archive.with_suffix(".partial")
            partial.write_bytes(oci_archive(reference, binary.read_bytes(), entrypoint))
            partial.rename(archive)
            binary.unlink()
        made.append(Image(reference, archive))
    return made


def archive_digest(archive: Path) -> str:
    """The digest of the manifest an archive names (what containerd records as the image's target)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        return json.load(member)["manifests"][0]["digest"]


def load(host: LabHost, images: list[Image], ctr: str = "/usr/local/bin/ctr") -> None:
    """Import the images into containerd's k8s.io namespace on the host (what a pull would do);
    an image already there under the same name and digest is left alone, a changed one replaced."""
    listed = subprocess.run(
        ssh_command(host, f"{ctr} -n k8s.io images ls"), capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()[1:]
    present = {fields[0]: fields[2] for fields in (line.split() for line in listed) if len(fields) > 2}
    for image in images:
        if present.get(image.name) == archive_digest(image.archive):
            continue
        subprocess.run(
            ssh_command(host, f"{ctr} -n k8s.io images import --platform linux/amd64 -"),
            input=image.archive.read_bytes(), capture_output=True, check=True, timeout=120,
        )  # fmt: skip
