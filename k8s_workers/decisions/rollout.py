"""Which nodes change together, and what a change disrupts on each (pure).

A change that restarts the kubelet or the container runtime, or replaces one of their binaries,
is rolled out in batches of at most `maxUnavailable` nodes, each drained first; batch k+1 starts
only once every node of batch k is Ready again (components/sequencing.py). Only the nodes where
something restarts wait: each Node records the services its last `up` left running. What
restarts is read from the node's review plan: each file and binary names the service it
restarts, so a per-service digest changes exactly when that service would.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_camel

from k8s_workers.config.models import NodeSettings
from k8s_workers.scripts.install_plan import NodePlan

# Restarting these stops or restarts the node's pods' runtime: drain first. A kube-proxy-only
# change keeps pods running (Services blink for the restart), so it is not drained.
DISRUPTIVE_SERVICES = ("containerd", "kubelet")


def batch_size(node_count: int, max_unavailable: int | str) -> int:
    """A count, or a percentage of the nodes rounded down (as Kubernetes rounds maxUnavailable),
    and never less than 1."""
    if isinstance(max_unavailable, str):
        percent = int(max_unavailable.removesuffix("%"))
        return max(1, math.floor(node_count * percent / 100))
    return max(1, max_unavailable)


def batches(nodes: Sequence[str], max_unavailable: int | str) -> list[list[str]]:
    """The nodes in config order, cut into batches of `batch_size`."""
    size = batch_size(len(nodes), max_unavailable)
    return [list(nodes[i : i + size]) for i in range(0, len(nodes), size)]


@dataclass(frozen=True)
class Rollout:
    """The nodes' batches, and which nodes wait for the previous batch."""

    batches: list[list[str]]  # every declared node, in config order, cut by maxUnavailable
    waits: frozenset[str]  # joined nodes where a service may restart


def rollout_batches(
    nodes: Sequence[str],
    max_unavailable: int | str,
    joined: Mapping[str, str | None] | None,
    wanted: Mapping[str, str] | None = None,
) -> Rollout:
    """Every node has a batch, from config order alone: a node's batch does not move from one `up`
    to the next (an input that moves makes the engine diff and rewrite that node's state on every
    run). Only a joined node where something may restart waits for the previous batch's
    registrations: not a node the cluster does not have yet (nothing runs there that a change could
    disrupt, so a first `up` fans out to every host), nor one whose services, as its last `up`
    recorded them (`joined`: node -> `services_digest`, None if none recorded), are the ones `wanted`
    now (a no-op `up` of a joined fleet waits for nothing). `joined` None (the cluster was not
    reachable, e.g. a preview in CI, which waits for nothing anyway): every node may wait."""
    if joined is None:
        return Rollout(batches(nodes, max_unavailable), frozenset(nodes))
    wanted = wanted or {}
    waits = frozenset(n for n in nodes if n in joined and (joined[n] is None or joined[n] != wanted.get(n)))
    return Rollout(batches(nodes, max_unavailable), waits)


def service_digests(plan: NodePlan) -> dict[str, str]:
    """service -> a digest of every file and binary whose change restarts it: the preview shows
    which of them changed, i.e. which services a change restarts on this node."""
    parts: dict[str, list[str]] = {service: [] for service in plan.services}
    for f in plan.files:
        if f.restarts in parts and not f.secret:  # secret files change with their secrets, not config
            parts[f.restarts].append(f"{f.path}:{hashlib.sha256(f.content.encode()).hexdigest()}")
    for artifact in plan.artifacts:
        if artifact.restarts in parts:
            parts[artifact.restarts].append(f"{artifact.name}:{artifact.sha256}")
    return {s: hashlib.sha256("\n".join(sorted(p)).encode()).hexdigest()[:16] for s, p in sorted(parts.items())}


# The node settings (besides `kubelet:` itself) that land in the kubelet's configuration.
KUBELET_SETTINGS = (
    "max_pods", "pod_pids_limit", "system_reserved", "kube_reserved", "eviction_hard", "resolv_conf",
    "hostname_override",
)  # fmt: skip


def declared_settings(node: NodeSettings) -> dict[str, Any]:
    """The node's settings, flat, each under the service it restarts (`kubelet.maxPods`,
    `kubelet.evictionHard.memory.available`, `kubelet.imageGCHighThresholdPercent` from `kubelet:`):
    what a preview names when one changes, instead of the digest of the file it lands in. What the
    program derives itself (paths, versions, templates) is not here: its change shows as the digest."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, sub in value.items():
                walk(f"{prefix}.{key}", sub)
        else:
            flat[prefix] = value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)

    walk("kubelet", {**{to_camel(f): getattr(node, f) for f in KUBELET_SETTINGS}, **node.kubelet})
    if node.kubelet_extra_args:
        flat["kubelet.extraArgs"] = " ".join(node.kubelet_extra_args)
    return dict(sorted(flat.items()))


def services_digest(digests: Mapping[str, str]) -> str:
    """One digest of a node's per-service digests: what its Node records after an `up`
    (SERVICES_ANNOTATION) and what updates its registration."""
    return hashlib.sha256("\n".join(f"{s}:{d}" for s, d in sorted(digests.items())).encode()).hexdigest()[:16]


def restarted(old: dict[str, str] | None, new: dict[str, str]) -> list[str]:
    """The services a change from `old` to `new` digests restarts (none on a first install)."""
    if not old:
        return []
    return sorted(s for s, digest in new.items() if old.get(s) != digest)


def needs_drain(restarts: Sequence[str]) -> bool:
    return any(s in DISRUPTIVE_SERVICES for s in restarts)
