"""The tools the lab runs on this machine, each with the Debian package that gives it (`.ci/run`
installs them): checked before anything starts, by `make demo` and the lab suite alike."""

from __future__ import annotations

import shutil

PACKAGES = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "gcc": "gcc",
    "ip": "iproute2",
    "go": None,  # Go 1.26 or newer: not from Debian (https://go.dev/dl/)
}


def missing() -> list[str]:
    return [tool for tool in PACKAGES if shutil.which(tool) is None]


def how_to_install(tools: list[str]) -> str:
    packages = sorted({p for t in tools if (p := PACKAGES[t])})
    parts = [f"`apt-get install {' '.join(packages)}`"] if packages else []
    if "go" in tools:
        parts.append("Go 1.26 or newer (https://go.dev/dl/)")
    return " and ".join(parts)
