"""What a node's host has that its last install did not leave there (pure): the drift check's
output (templates/scripts/check.sh.j2) read into a report, the words a preview shows, and the
services the repair restarts (so the membership drains first when the kubelet or runtime is one).

| state | meaning |
|---|---|
| `clean` | every file, binary, service and swap as the install left them |
| `drift` | some differ: `items` says which, and how |
| `unrecorded` | no install recorded anything on this host yet (installed before drift checks) |
| `unknown` | the host could not be asked (unreachable, timed out): not drift |
"""

from __future__ import annotations

from dataclasses import dataclass

from k8s_workers.decisions.rollout import DISRUPTIVE_SERVICES


@dataclass(frozen=True)
class DriftItem:
    what: str  # content, mode, missing, disabled, inactive, on
    service: str | None  # the service whose restart the repair brings, if any
    path: str  # a path, a unit, or "swap"

    def words(self) -> str:
        return f"{self.path} ({self.what})"


@dataclass(frozen=True)
class HostCheck:
    state: str  # clean, drift, unrecorded, unknown
    items: tuple[DriftItem, ...] = ()
    reason: str = ""  # why `unknown`

    def summary(self) -> str:
        """One line for the preview: `drift: /var/lib/kubelet/config.yaml (content), kube-proxy (inactive)`."""
        if self.state == "drift":
            return "drift: " + ", ".join(i.words() for i in self.items)
        return f"unknown: {self.reason}" if self.state == "unknown" else self.state

    def restarts(self) -> tuple[str, ...]:
        """Services the repair restarts: a file or binary of theirs rewritten, or the unit itself started."""
        return tuple(sorted({i.service for i in self.items if i.service and i.what != "mode"}))

    def needs_drain(self) -> bool:
        return any(s in DISRUPTIVE_SERVICES for s in self.restarts())


def parse_check(output: str) -> HostCheck:
    """The check script's output; anything else (a shell error, a cut session) raises ValueError."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if lines == ["unrecorded"]:
        return HostCheck("unrecorded")
    if not lines or not lines[-1].startswith("checked "):
        raise ValueError(f"not a drift check's output: {output[-200:]!r}")
    items = []
    for line in lines[:-1]:
        parts = line.split(" ", 3)
        if len(parts) != 4 or parts[0] != "drift":
            raise ValueError(f"not a drift line: {line!r}")
        _, what, service, path = parts
        items.append(DriftItem(what, None if service == "-" else service, path))
    return HostCheck("drift" if items else "clean", tuple(items))


def unknown(reason: str) -> HostCheck:
    return HostCheck("unknown", reason=reason.splitlines()[0][:200] if reason else "no answer")
