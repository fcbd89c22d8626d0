"""Batches, restarts, drains and version skew: the pure decisions of a rolling change."""

from __future__ import annotations

from dataclasses import replace

import pytest

from k8s_workers.config.loader import load_config
from k8s_workers.decisions.drain import DrainOptions, plan_drain
from k8s_workers.decisions.rollout import (
    Rollout,
    batch_size,
    batches,
    needs_drain,
    restarted,
    rollout_batches,
    service_digests,
)
from k8s_workers.decisions.version_skew import skew_problems
from k8s_workers.render.node_files import PLACEHOLDER_SECRETS
from k8s_workers.scripts.install_plan import plan_node


@pytest.mark.parametrize(
    ("count", "max_unavailable", "size"),
    [(3, 1, 1), (3, 2, 2), (10, "25%", 2), (3, "25%", 1), (4, "50%", 2), (1, "100%", 1), (5, 9, 9)],
)
def test_batch_size_is_a_count_or_a_percentage_rounded_down_and_at_least_one(count, max_unavailable, size):
    assert batch_size(count, max_unavailable) == size


def test_batches_keep_config_order():
    assert batches(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert batches([], 1) == []


def test_nodes_not_in_the_cluster_yet_join_at_once_and_the_others_roll():
    nodes = ["a", "b", "c", "d", "e"]
    assert rollout_batches(nodes, 1, {"b": None, "d": None}) == Rollout([[n] for n in nodes], frozenset("bd"))
    assert rollout_batches(nodes, "50%", {}).waits == frozenset()  # a first up fans out to every host
    unreachable = rollout_batches(nodes, 2, None)  # no cluster: every node may wait
    assert unreachable == Rollout([["a", "b"], ["c", "d"], ["e"]], frozenset(nodes))


def test_joined_nodes_already_running_the_wanted_services_wait_for_no_batch():
    """A no-op `up` of a joined fleet waits for nothing; a node's batch is what config order makes
    it, whatever changes (50% of 5: batches of 2)."""
    joined = {"a": "old", "b": "new", "c": "old", "d": None}  # d: nothing recorded (joined before records)
    wanted = {n: "new" for n in "abcde"}
    assert rollout_batches(list("abcde"), "50%", joined, wanted) == Rollout(
        [["a", "b"], ["c", "d"], ["e"]], frozenset("acd")
    )
    assert rollout_batches(list("abcd"), 1, {n: "new" for n in "abcd"}, wanted).waits == frozenset()


def _plan(test_ca, ssh_key, edit=lambda raw: None):
    from tests.conftest import base_config

    raw = base_config(test_ca, ssh_key)
    edit(raw)
    config = load_config(raw, require_secrets=False)
    return plan_node(config.cluster, config.nodes[0], PLACEHOLDER_SECRETS, config.nodes)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: raw["defaults"].update(maxPods=51), ["kubelet"]),
        (lambda raw: raw["cluster"].update(kubeProxy={"mode": "nftables"}), ["kube-proxy"]),
        (lambda raw: raw["defaults"].update(labels={"x": "y"}), []),  # the Node's business, not the host's
    ],
    ids=["kubelet-setting", "proxy-mode", "label"],
)
def test_the_services_a_change_restarts_are_read_from_the_plan(test_ca, ssh_key, edit, expected):
    before = service_digests(_plan(test_ca, ssh_key))
    after = service_digests(_plan(test_ca, ssh_key, edit))
    assert {"containerd", "kubelet", "kube-proxy"} <= set(before)
    assert restarted(before, after) == expected
    assert needs_drain(expected) is (expected == ["kubelet"])


def test_a_new_binary_restarts_its_service_and_a_first_install_restarts_nothing(test_ca, ssh_key):
    plan = _plan(test_ca, ssh_key)
    kubelet = next(a for a in plan.artifacts if a.name == "kubelet")
    other = replace(plan, artifacts=tuple(replace(a, sha256="0" * 64) if a is kubelet else a for a in plan.artifacts))
    assert restarted(service_digests(plan), service_digests(other)) == ["kubelet"]
    assert restarted(None, service_digests(plan)) == []


def _pod(name, owner=None, volumes=(), annotations=None, phase="Running"):
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": annotations or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "o", "controller": True}]
    return {"metadata": meta, "spec": {"volumes": list(volumes)}, "status": {"phase": phase}}


def test_a_drain_sorts_pods_as_kubectl_drain_does():
    pods = [
        _pod("web", "ReplicaSet"),
        _pod("agent", "DaemonSet"),
        _pod("static", annotations={"kubernetes.io/config.mirror": "x"}),
        _pod("done", phase="Succeeded"),
        _pod("cache", "ReplicaSet", volumes=[{"name": "c", "emptyDir": {}}]),
        _pod("bare"),
    ]
    plan = plan_drain(pods, DrainOptions())
    assert [p.name for p in plan.evict] == ["web", "cache"]
    assert [p.name for p in plan.left] == ["agent", "static", "done"]
    assert plan.blocking_lines() == ["ns/bare: no controller would recreate it (set force to delete it anyway)"]
    strict = plan_drain(pods, DrainOptions(ignore_daemonsets=False, delete_emptydir_data=False, force=True))
    assert [p.name for p in strict.evict] == ["web", "bare"]
    assert {p.name for p in strict.refused} == {"agent", "cache"}


@pytest.mark.parametrize(
    ("declared", "apiserver", "running", "allow", "problem"),
    [
        ("1.37.2", "v1.37.2", {"n1": "v1.36.4"}, False, None),  # an upgrade
        ("1.36.4", "v1.37.2", {}, False, None),
        ("1.34.1", "v1.37.2", {}, False, None),  # three minors older: still allowed
        ("1.33.9", "v1.37.2", {}, False, "more than 3 minor versions older"),
        ("1.38.0", "v1.37.2", {}, False, "newer than the apiserver"),
        ("1.36.4", "v1.37.2", {"n1": "v1.37.2"}, False, "node n1 runs kubelet v1.37.2, newer than 1.36.4: a downgrade"),
        ("1.36.4", "v1.37.2", {"n1": "v1.37.2"}, True, None),
        ("1.37.1", "v1.37.2", {"n1": "v1.37.2"}, False, "a downgrade"),  # patch level counts
    ],
)
def test_version_skew(declared, apiserver, running, allow, problem):
    problems = skew_problems(declared, apiserver, running, allow)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_drain_options_travel_as_kubectl_drain_flags_and_old_state_reads_the_same():
    from k8s_workers.decisions.drain import DrainOptions

    options = DrainOptions(ignore_daemonsets=True, delete_emptydir_data=False, force=True, timeout_seconds=90)
    flags = options.flags()
    assert flags == "--ignore-daemonsets=true --delete-emptydir-data=false --force=true --timeout=90s"
    assert DrainOptions.from_flags(flags) == options
    assert DrainOptions.of_props({"drain": flags}) == options
    assert DrainOptions.of_props({"drain": ""}) is None  # not drained
    # State written before the flags: `drain: true` beside a mapping; false is not drained.
    old = {"ignore_daemonsets": True, "delete_emptydir_data": False, "force": True, "timeout_seconds": 90}
    assert DrainOptions.of_props({"drain": True, "drainOptions": old}) == options
    assert DrainOptions.of_props({"drain": False, "drainOptions": old}) is None


def test_declared_settings_are_flat_and_named_by_the_service_they_restart():
    from k8s_workers.config.models import NodeSettings
    from k8s_workers.decisions.rollout import declared_settings

    node = NodeSettings(
        maxPods=77,
        kubelet={"imageGCHighThresholdPercent": 83, "tlsCipherSuites": ["A", "B"]},
        kubeletExtraArgs=["--v=2"],
    )
    settings = declared_settings(node)
    assert settings["kubelet.maxPods"] == 77
    assert settings["kubelet.imageGCHighThresholdPercent"] == 83
    assert settings["kubelet.tlsCipherSuites"] == '["A", "B"]'
    assert settings["kubelet.extraArgs"] == "--v=2"
    assert settings["kubelet.evictionHard.memory.available"] == node.eviction_hard["memory.available"]
    assert list(settings) == sorted(settings)
    assert "kubelet.extraArgs" not in declared_settings(NodeSettings())
