"""The images Kubernetes' conformance suite runs, made here: no registry is reachable.

The names are those of test/utils/image/manifest.go of k8s.io/kubernetes at lab.pins.KUBERNETES:
- agnhost 2.66.1: the agnhost binary built from the same module (lab.build), with what its upstream
  Dockerfile adds that conformance tests use: a shell and the usual commands (busybox), the
  `agnhost-2` link (entrypoint tests), /uploads (netexec), porter's certificate, the user 1000 and
  group 50000 defined in the image. Not there: alpine's curl, dig, iperf, coredns (tests needing
  them are in lab.conformance.SKIPS).
  The shell commands conformance tests exec that busybox lacks or does differently, `curl` and
  netcat (`nc -v -t -w 2`, `nc -u`), are Debian's (`apt-get download`) with their shared libraries
  and loader (found by `ldd`, the rest from this machine's own Debian packages).
- busybox 1.37.0-2: Debian's busybox (the `busybox` package, `apt-get download`, with glibc), one
  link per applet in /bin, `sh` as its command like the upstream image. Not `busybox-static`: its
  `sh` runs its own applets before anything on PATH (`nc` would never be netcat).
- glibc-dns-testing 2.1.1 (upstream: debian:bookworm-slim with dnsutils and coredns): the DNS
  tests' glibc querier, here busybox with the same Debian bookworm dig and getent on glibc, and coredns.
- nonewprivs 1.4: its `nnp` (built from the same module), setuid root, in /usr/local/bin, over busybox.
- coredns (kubeadm's version): the cluster DNS add-on (lab.cluster_dns) the Services and DNS tests
  reach names through; a lab fixture like the control plane, not something the program installs.
- pause 3.10.2: the lab's own pause binary under the tag the suite's pods ask for (the program's
  sandbox image stays registry.k8s.io/pause:3.10).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from lab import build, pins
from lab.images import Image, Member, _build_pause, _tar, oci_image
from lab.paths import IMAGES

RECIPE_VERSION = 3  # bump when what goes into an image changes
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/:/sbin/nologin\n"
)
GROUP = (
    "root:x:0:root\n"
    "user-defined-in-image:x:1000:\n"
    "group-defined-in-image:x:50000:user-defined-in-image\n"
    "nogroup:x:65534:\n"
)


class ImageError(RuntimeError):
    """An image could not be made: the message says what to do."""


DEBIAN_PACKAGES = (
    "busybox",  # not busybox-static: its `sh` runs applets before PATH, so `nc` would never be netcat's
    *("curl", "libcurl4", "netcat-openbsd", "libbsd0", "libmd0"),
    *("bind9-dnsutils", "bind9-libs", "libjemalloc2", "libmaxminddb0", "libfstrm0", "libprotobuf-c1", "liblmdb0"),
)
# in the packages -> in the image (where alpine has them)
DEBIAN_PROGRAMS = {"usr/bin/curl": "usr/bin/curl", "bin/nc.openbsd": "usr/bin/nc", "usr/bin/dig": "usr/bin/dig"}
MACHINE_PROGRAMS = {"usr/bin/getent": "usr/bin/getent"}  # glibc's (libc-bin, on every Debian): DNS tests run it


def _debian_root() -> Path:
    """DEBIAN_PACKAGES unpacked in one folder (fetched once with `apt-get download`)."""
    root = IMAGES / "debian-tools" / "root"
    if root.exists():
        return root
    with tempfile.TemporaryDirectory() as scratch:
        fetched = subprocess.run(
            ["apt-get", "download", *DEBIAN_PACKAGES], cwd=scratch, capture_output=True, text=True, check=False
        )
        if fetched.returncode != 0:
            raise ImageError(f"apt-get download failed (run `apt-get update` first): {fetched.stderr.strip()[-300:]}")
        partial = root.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for deb in Path(scratch).glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
        partial.rename(root)
    return root


def _with_libraries(root: Path, programs: dict[str, str]) -> dict[str, Member]:
    """Each program, and every shared library it loads (from `root` first, else this machine)."""
    library_path = ":".join(str(d) for d in (root / "usr/lib/x86_64-linux-gnu", root / "lib/x86_64-linux-gnu"))
    members: dict[str, Member] = {}
    for source, target in programs.items():
        members[target] = Member(data=(root / source).read_bytes(), mode=0o755)
        listed = subprocess.run(
            ["ldd", str(root / source)], capture_output=True, text=True, check=True,
            env={"LD_LIBRARY_PATH": library_path, "PATH": "/usr/bin:/bin"},
        ).stdout  # fmt: skip
        for found in re.findall(r"(/\S+) \(0x", listed):
            path = Path(found)
            inside = str(path).replace(str(root), "", 1) if str(path).startswith(str(root)) else str(path)
            # the loader path a binary asks for (/lib64/ld-linux-x86-64.so.2) is a link: keep the name, copy the file
            members[inside.lstrip("/")] = Member(data=path.resolve().read_bytes(), mode=0o755)
    return members


def _applets(busybox: Path) -> list[str]:
    listed = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    return [a for a in listed if re.fullmatch(r"[\w.\[-]+", a) and a not in ("busybox", "linuxrc")]


def _base(root: Path) -> dict[str, Member]:
    """A minimal root: busybox (with its libraries) and its applets in /bin, users and groups, the usual folders."""
    busybox = root / "bin/busybox"
    members = _with_libraries(root, {"bin/busybox": "bin/busybox"}) | {
        "etc/passwd": Member(data=PASSWD.encode()),
        "etc/group": Member(data=GROUP.encode()),
        "etc/hostname": Member(data=b"localhost\n"),
    }
    members |= {f"bin/{applet}": Member(link="busybox") for applet in _applets(busybox)}
    members |= {folder: Member(directory=True, mode=0o755) for folder in ("root", "home", "usr/bin", "var", "etc")}
    members["tmp"] = Member(directory=True, mode=0o1777)
    return members


def _kubernetes_source() -> Path:
    """k8s.io/kubernetes at the pinned version, as the module cache holds it (agnhost's files)."""
    with tempfile.TemporaryDirectory() as scratch:
        listed = build._go(
            "mod", "download", "-json", f"k8s.io/kubernetes@{pins.KUBERNETES}", cwd=Path(scratch), step="agnhost files"
        )
    return Path(json.loads(listed)["Dir"])


def _archive(reference: str, inputs: list[bytes], make: Callable[[], bytes]) -> Image:
    digest = hashlib.sha256(json.dumps(RECIPE_VERSION).encode())
    for data in inputs:
        digest.update(hashlib.sha256(data).digest())
    archive = IMAGES / f"{reference.replace('/', '_').replace(':', '_')}-{digest.hexdigest()[:12]}.tar"
    if not archive.exists():
        IMAGES.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        partial.write_bytes(make())
        partial.rename(archive)
    return Image(reference, archive)


def build_images() -> list[Image]:
    """agnhost, busybox and the suite's pause tag as OCI archives (cached by their inputs)."""
    debian = _debian_root()
    busybox_bytes = (debian / "bin/busybox").read_bytes()
    agnhost = build.binary("agnhost").read_bytes()
    porter = _kubernetes_source() / "test/images/agnhost/porter"
    cert, key = (porter / "localhost.crt").read_bytes(), (porter / "localhost.key").read_bytes()
    tools = _with_libraries(debian, DEBIAN_PROGRAMS) | _with_libraries(Path("/"), MACHINE_PROGRAMS)
    tools["etc/nsswitch.conf"] = Member(data=b"hosts: files dns\n")  # glibc's lookups, as alpine's musl does them
    tools_bytes = b"".join(m.data for _, m in sorted(tools.items()))

    def agnhost_image() -> bytes:
        members = (
            _base(debian)
            | tools
            | {
                "agnhost": Member(data=agnhost, mode=0o755),
                "agnhost-2": Member(link="agnhost"),
                "uploads": Member(directory=True, mode=0o755),
                "localhost.crt": Member(data=cert),
                "localhost.key": Member(data=key, mode=0o600),
            }
        )
        return oci_image(pins.AGNHOST_IMAGE, _tar(members), ["/agnhost"], cmd=["pause"], env=[PATH_ENV])

    def busybox_image() -> bytes:
        return oci_image(pins.BUSYBOX_IMAGE, _tar(_base(debian)), None, cmd=["sh"], env=[PATH_ENV])

    with tempfile.TemporaryDirectory() as scratch:
        pause = Path(scratch) / "pause"
        _build_pause(pause)
        pause_bytes = pause.read_bytes()

    coredns = build.binary("coredns").read_bytes()

    def coredns_image() -> bytes:
        return oci_image(pins.COREDNS_IMAGE, _tar({"coredns": (coredns, 0o755)}), ["/coredns"])

    def glibc_dns_image() -> bytes:
        members = _base(debian) | tools | {"coredns": Member(data=coredns, mode=0o755)}
        return oci_image(pins.GLIBC_DNS_IMAGE, _tar(members), None, cmd=["sh"], env=[PATH_ENV])

    nnp = build.binary("nnp").read_bytes()

    def nonewprivs_image() -> bytes:
        members = _base(debian) | {"usr/local/bin/nnp": Member(data=nnp, mode=0o4755)}  # setuid, owned by root
        return oci_image(pins.NONEWPRIVS_IMAGE, _tar(members), None, cmd=["nnp"], env=[PATH_ENV])

    def pause_image() -> bytes:
        return oci_image(pins.SUITE_PAUSE_IMAGE, _tar({"pause": (pause_bytes, 0o755)}), ["/pause"])

    return [
        _archive(pins.AGNHOST_IMAGE, [agnhost, busybox_bytes, cert, key, tools_bytes], agnhost_image),
        _archive(pins.BUSYBOX_IMAGE, [busybox_bytes], busybox_image),
        _archive(pins.SUITE_PAUSE_IMAGE, [pause_bytes], pause_image),
        _archive(pins.COREDNS_IMAGE, [coredns], coredns_image),
        _archive(pins.GLIBC_DNS_IMAGE, [busybox_bytes, tools_bytes, coredns], glibc_dns_image),
        _archive(pins.NONEWPRIVS_IMAGE, [busybox_bytes, nnp], nonewprivs_image),
    ]
