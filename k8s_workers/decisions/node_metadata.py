"""Which labels and taints a Node should carry, and the patch that gets it there (pure).

Labels and taints are declared in the stack, not in the kubelet's files: a change is a patch of
the Node object, never a restart on the host. The kubelet registers with one fixed taint,
STARTUP_TAINT, so nothing is scheduled on a node before its declared taints are on it; the first
reconcile replaces it with the declared ones.

What this program applied last is kept in an annotation on the Node, so a label or taint that
leaves the config is removed, and what others put there (controllers, people) is left alone.
The Node's taints are an atomic list for the API (no merge key): the patch carries the whole
list and the resourceVersion it was computed from, so a concurrent change makes it fail and
be computed again rather than be overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STARTUP_TAINT = {"key": "k8s-workers/uninitialized", "value": "", "effect": "NoSchedule"}
APPLIED_ANNOTATION = "k8s-workers/applied"


@dataclass(frozen=True)
class Declared:
    labels: Mapping[str, str]
    taints: Sequence[Mapping[str, str]]  # {key, value, effect}

    @staticmethod
    def of(labels: Mapping[str, str], taints: Sequence[Mapping[str, str]]) -> Declared:
        return Declared(
            dict(labels), [{"key": t["key"], "value": t.get("value", ""), "effect": t["effect"]} for t in taints]
        )


def _identity(taint: Mapping[str, Any]) -> tuple[str, str]:
    return (taint["key"], taint["effect"])  # the API allows one taint per key and effect


def _applied(node: Mapping[str, Any]) -> tuple[set[str], set[tuple[str, str]]]:
    raw = (node.get("metadata", {}).get("annotations") or {}).get(APPLIED_ANNOTATION)
    try:
        data = json.loads(raw) if raw else {}
        return set(data.get("labels", [])), {(k, e) for k, e in data.get("taints", [])}
    except (ValueError, TypeError):
        return set(), set()  # unreadable: own nothing rather than remove what is not ours


def desired_taints(node: Mapping[str, Any], declared: Declared) -> list[dict[str, Any]]:
    """The Node's taints: others' as they are, ours as declared, the startup taint gone."""
    _, applied = _applied(node)
    ours = applied | {_identity(t) for t in declared.taints} | {_identity(STARTUP_TAINT)}
    kept = [dict(t) for t in (node.get("spec", {}).get("taints") or []) if _identity(t) not in ours]
    return kept + [{k: v for k, v in t.items() if v != "" or k != "value"} for t in declared.taints]


def reconcile(node: Mapping[str, Any], declared: Declared) -> dict[str, Any] | None:
    """A JSON merge patch that brings `node` to the declared labels and taints, or None if it has them."""
    labels = node.get("metadata", {}).get("labels") or {}
    applied_labels, _ = _applied(node)
    label_patch: dict[str, str | None] = {k: None for k in applied_labels - set(declared.labels) if k in labels}
    label_patch.update({k: v for k, v in declared.labels.items() if labels.get(k) != v})

    current = node.get("spec", {}).get("taints") or []
    taints = desired_taints(node, declared)
    taints_change = _taint_set(current) != _taint_set(taints)

    record = json.dumps(
        {"labels": sorted(declared.labels), "taints": sorted(_identity(t) for t in declared.taints)},
        separators=(",", ":"),
    )
    annotations = node.get("metadata", {}).get("annotations") or {}
    record_change = annotations.get(APPLIED_ANNOTATION) != record
    if not (label_patch or taints_change or record_change):
        return None
    metadata: dict[str, Any] = {
        "resourceVersion": node["metadata"]["resourceVersion"],
        "annotations": {APPLIED_ANNOTATION: record},
    }
    if label_patch:
        metadata["labels"] = label_patch
    patch: dict[str, Any] = {"metadata": metadata}
    if taints_change:
        patch["spec"] = {"taints": taints or None}  # null removes the field
    return patch


def _taint_set(taints: Sequence[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    return {(t["key"], t.get("value", "") or "", t["effect"]) for t in taints}
