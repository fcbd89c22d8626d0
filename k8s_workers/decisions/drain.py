"""Which pods a drain evicts, which it leaves, and which stop it (pure), as `kubectl drain` decides.

Evictions go through the Eviction API, so PodDisruptionBudgets are honoured by the apiserver;
this only sorts the node's pods before any eviction is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class DrainOptions:
    ignore_daemonsets: bool = True  # their pods would come straight back: left running
    delete_emptydir_data: bool = True  # emptyDir contents are lost with the pod
    force: bool = False  # evict pods no controller recreates
    timeout_seconds: int = 300

    @staticmethod
    def of(data: Mapping[str, Any]) -> DrainOptions:
        return DrainOptions(**{k: data[k] for k in DrainOptions.__dataclass_fields__ if k in data})

    def flags(self) -> str:
        """As `kubectl drain` spells them: one line in a preview, where a mapping took six."""
        flags = {
            "ignore-daemonsets": _on(self.ignore_daemonsets),
            "delete-emptydir-data": _on(self.delete_emptydir_data),
            "force": _on(self.force),
            "timeout": f"{self.timeout_seconds}s",
        }
        return " ".join(f"--{name}={value}" for name, value in flags.items())

    @staticmethod
    def from_flags(text: str) -> DrainOptions:
        found = dict(flag.removeprefix("--").split("=", 1) for flag in text.split())
        return DrainOptions(
            ignore_daemonsets=found["ignore-daemonsets"] == "true",
            delete_emptydir_data=found["delete-emptydir-data"] == "true",
            force=found["force"] == "true",
            timeout_seconds=int(found["timeout"].removesuffix("s")),
        )

    @staticmethod
    def of_props(props: Mapping[str, Any]) -> DrainOptions | None:
        """A node resource's drain: its `drain` flags, None when it is not drained. State written
        before the flags (`drain: true` beside a `drainOptions` mapping) reads the same."""
        drain = props.get("drain")
        if isinstance(drain, str):
            return DrainOptions.from_flags(drain) if drain else None
        return DrainOptions.of(props.get("drainOptions") or {}) if drain else None


def _on(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class PodVerdict:
    namespace: str
    name: str
    uid: str
    reason: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class DrainPlan:
    evict: list[PodVerdict]
    left: list[PodVerdict]  # stay on the node (DaemonSet pods, mirror pods, finished pods)
    refused: list[PodVerdict]  # stop the drain before any eviction, with the reason

    def blocking_lines(self) -> list[str]:
        return [f"{p.ref}: {p.reason}" for p in self.refused]


def _verdict(pod: Mapping[str, Any], reason: str) -> PodVerdict:
    meta = pod["metadata"]
    return PodVerdict(meta["namespace"], meta["name"], meta.get("uid", ""), reason)


def plan_drain(pods: Sequence[Mapping[str, Any]], options: DrainOptions) -> DrainPlan:
    evict, left, refused = [], [], []
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec", {})
        owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            left.append(_verdict(pod, "a static pod: the kubelet's own, stopped with it"))
        elif pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            left.append(_verdict(pod, "finished"))
        elif any(o.get("kind") == "DaemonSet" for o in owners):
            if options.ignore_daemonsets:
                left.append(_verdict(pod, "DaemonSet pod (cluster.rollout.ignoreDaemonsets)"))
            else:
                refused.append(
                    _verdict(pod, "DaemonSet pod: its controller puts it back (set cluster.rollout.ignoreDaemonsets)")
                )
        elif not owners and not options.force:
            refused.append(_verdict(pod, "no controller would recreate it (set force to delete it anyway)"))
        elif any("emptyDir" in v for v in spec.get("volumes") or []) and not options.delete_emptydir_data:
            refused.append(
                _verdict(pod, "uses emptyDir, whose data would be lost (set cluster.rollout.deleteEmptydirData)")
            )
        else:
            evict.append(_verdict(pod, "evict"))
    return DrainPlan(evict, left, refused)
