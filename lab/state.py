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

    def save(self) -> None:
        STATE.parent.mkdir(parents=True, exist_ok=True)
        data = {"hosts": [h.to_json() for h in self.hosts], "mirror_pid": self.mirror_pid}
        tmp = STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(STATE)

    def host(self, name: str) -> LabHost:
        (found,) = [h for h in self.hosts if h.name == name]
        return found


def load() -> LabState:
    if not STATE.exists():
        return LabState()
    data = json.loads(STATE.read_text())
    return LabState([LabHost(**h) for h in data.get("hosts", [])], data.get("mirror_pid"))


def orphan_pids(known: set[int]) -> list[int]:
    """systemd-nspawn processes on lab roots that no state file knows (a run killed mid-`up`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in known or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"systemd-nspawn") and any(str(HOSTS).encode() in a for a in cmdline):
            pids.append(int(entry.name))
    return pids
