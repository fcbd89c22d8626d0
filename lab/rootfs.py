"""The Debian bookworm root the lab hosts boot, built once per recipe and copied per host."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from lab.paths import ROOTS

SUITE = "bookworm"
MIRROR_URL = "http://deb.debian.org/debian"
# systemd as PID 1, sshd, and what the install script and kube-proxy need on a host.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "curl", "ca-certificates",
    "kmod", "procps", "conntrack", "iptables", "nftables", "ipset",
)  # fmt: skip
RECIPE_VERSION = 1  # bump when the customisation below changes


def recipe_id() -> str:
    recipe = json.dumps({"suite": SUITE, "packages": PACKAGES, "version": RECIPE_VERSION}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_root() -> Path:
    """The cached root for the current recipe, built (atomically) when missing."""
    target = ROOTS / f"{SUITE}-{recipe_id()}"
    if (target / ".complete").exists():
        return target
    ROOTS.mkdir(parents=True, exist_ok=True)
    for stale in ROOTS.glob("*.partial"):
        shutil.rmtree(stale, ignore_errors=True)  # an interrupted build
    partial = ROOTS / f"{target.name}.partial"
    started = time.monotonic()
    print(f"lab: building the {SUITE} root with debootstrap (about a minute, once per recipe)", flush=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(partial), MIRROR_URL],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # Host keys made by the package are shared by every copy: each host gets its own.
    for key in (partial / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (partial / ".complete").write_text(f"{recipe_id()}\n")
    partial.rename(target)
    for old in ROOTS.iterdir():  # roots of earlier recipes: 300 MB each, never used again
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    print(f"lab: root ready in {time.monotonic() - started:.0f} s", flush=True)
    return target
