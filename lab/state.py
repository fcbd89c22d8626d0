"""What the lab has running: hosts (with the PIDs it started) and the mirror's PID."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lab.hosts import LabHost
from lab.paths import HOSTS, STATE


@dataclass
class LabState:
    hosts: list[LabHost] = field(default_factory=list)
    mirror_pid: int | None = None
    control_plane: dict[str, int] = field(default_factory=dict)  # component -> PID

    def save(self) -> None:
        STATE.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "hosts": [h.to_json() for h in self.hosts],
            "mirror_pid": self.mirror_pid,
            "control_plane": self.control_plane,
        }
        tmp = STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(STATE)

    def host(self, name: str) -> LabHost:
        (found,) = [h for h in self.hosts if h.name == name]
        return found


def orphan_inits() -> list[int]:
    """Container inits whose systemd-nspawn is gone (killed): PID 1 of a namespace rooted in a lab copy."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            root = os.readlink(entry / "root")
            status = (entry / "status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            parent = int(fields["PPid"])
            nspid = fields["NSpid"].split()
        except (OSError, KeyError, ValueError):
            continue
        if not root.startswith(str(HOSTS) + "/") or nspid[-1] != "1" or len(nspid) < 2:
            continue
        try:
            parent_cmd = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            parent_cmd = b""
        if not parent_cmd.endswith(b"systemd-nspawn"):
            pids.append(int(entry.name))
    return pids


def load() -> LabState:
    if not STATE.exists():
        return LabState()
    data = json.loads(STATE.read_text())
    return LabState(
        [LabHost(**h) for h in data.get("hosts", [])], data.get("mirror_pid"), data.get("control_plane", {})
    )


def orphans(known: set[int]) -> list[LabHost]:
    """systemd-nspawn processes on lab roots that no state file knows (a run killed mid-`up`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in known or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        roots = [a.decode() for a in cmdline if a.startswith(str(HOSTS).encode() + b"/")]
        if cmdline and cmdline[0].endswith(b"systemd-nspawn") and roots:
            found.append(LabHost("orphan", "", roots[0], int(entry.name), ""))
    return found
