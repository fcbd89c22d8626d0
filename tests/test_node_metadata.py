"""Which labels and taints the registration puts on a Node, and what it leaves alone (pure)."""

from __future__ import annotations

import json
from typing import Any

from k8s_workers.config.loader import load_config
from k8s_workers.decisions.node_metadata import APPLIED_ANNOTATION, STARTUP_TAINT, Declared, reconcile

NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-11-23T00:00:00Z"}


def _node(labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None, applied: Any = None):
    annotations = {APPLIED_ANNOTATION: json.dumps(applied)} if applied is not None else {}
    return {
        "metadata": {"name": "n1", "resourceVersion": "42", "labels": labels or {}, "annotations": annotations},
        "spec": {"taints": taints} if taints is not None else {},
    }


def _apply(node: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    """What the apiserver does with a JSON merge patch (RFC 7386) of these fields."""
    if patch is None:
        return node
    metadata = patch["metadata"]
    labels = {**node["metadata"]["labels"], **metadata.get("labels", {})}
    out = {
        "metadata": {
            **node["metadata"],
            "labels": {k: v for k, v in labels.items() if v is not None},
            "annotations": {**node["metadata"]["annotations"], **metadata["annotations"]},
        },
        "spec": dict(node["spec"]),
    }
    if "spec" in patch:
        out["spec"]["taints"] = patch["spec"]["taints"] or []
    return out


DEDICATED = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}


def test_first_registration_lifts_the_startup_taint_and_puts_what_is_declared():
    node = _node({"kubernetes.io/hostname": "n1"}, [dict(STARTUP_TAINT), NOT_READY])
    patch = reconcile(node, Declared.of({"pool": "a"}, [DEDICATED]))
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "42"  # a concurrent change makes it fail, not overwrite
    assert patch["metadata"]["labels"] == {"pool": "a"}  # the kubelet's own labels untouched
    assert patch["spec"]["taints"] == [NOT_READY, DEDICATED]  # the controller's taint kept as it was
    after = _apply(node, patch)
    assert reconcile(after, Declared.of({"pool": "a"}, [DEDICATED])) is None  # converged: nothing to do


def test_changing_and_removing_touch_only_what_this_program_applied():
    declared = Declared.of({"pool": "a", "team": "x"}, [DEDICATED])
    fresh = _node({"theirs": "1"}, [dict(STARTUP_TAINT)])
    node = _apply(fresh, reconcile(fresh, declared))
    someone_elses = {"key": "gpu", "value": "", "effect": "NoSchedule"}
    node["spec"]["taints"].append(someone_elses)
    changed = Declared.of({"pool": "b"}, [{"key": "dedicated", "value": "web", "effect": "NoSchedule"}])
    patch = reconcile(node, changed)
    assert patch["metadata"]["labels"] == {"pool": "b", "team": None}  # team removed, theirs untouched
    assert patch["spec"]["taints"] == [someone_elses, {"key": "dedicated", "value": "web", "effect": "NoSchedule"}]
    node = _apply(node, patch)
    assert node["metadata"]["labels"] == {"theirs": "1", "pool": "b"}
    nothing = reconcile(node, Declared.of({}, []))
    node = _apply(node, nothing)
    assert node["metadata"]["labels"] == {"theirs": "1"}
    assert node["spec"]["taints"] == [someone_elses]
    assert reconcile(node, Declared.of({}, [])) is None


def test_a_taint_of_the_same_key_and_effect_is_ours_once_declared_and_the_empty_list_clears_the_field():
    node = _node({}, [DEDICATED])  # set by hand before the program declared it
    patch = reconcile(node, Declared.of({}, [DEDICATED]))
    assert "spec" not in patch  # same taint: only the record of what is ours is written
    node = _apply(node, patch)
    patch = reconcile(node, Declared.of({}, []))
    assert patch["spec"] == {"taints": None}  # merge-patch null: the field removed


def test_an_unreadable_record_owns_nothing():
    node = _node({"pool": "a"}, [], applied=None)
    node["metadata"]["annotations"][APPLIED_ANNOTATION] = "{not json"
    patch = reconcile(node, Declared.of({}, []))
    assert "labels" not in patch["metadata"]  # nothing removed that it cannot prove is ours


def test_admin_set_labels_like_node_roles_are_accepted(test_ca, ssh_key):
    """Labels go through the API with the program's credentials, not the kubelet's: node-role
    labels, which NodeRestriction forbids a kubelet to set on itself, are fine."""
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    raw["defaults"]["labels"] = {"node-role.kubernetes.io/worker": ""}
    config = load_config(raw, require_secrets=False)
    assert config.nodes[0].labels["node-role.kubernetes.io/worker"] == ""
