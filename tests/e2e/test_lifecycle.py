"""Node lifecycle on real nodes with real pods (issue 9): removal with drain, a PodDisruptionBudget
that blocks it, a host gone for good, rolling changes in batches, and an upgrade 1.36 -> 1.37.

The engine is not here: each test runs the program's own providers (disruption, install,
registration, membership) in the order the program's dependencies give the engine."""

from __future__ import annotations

import time

import pytest

from k8s_workers.cluster_api import DrainBlocked, api_client, versions
from k8s_workers.decisions.version_skew import skew_problems
from lab import cluster, images, pins, remote
from lab import hosts as lab_hosts
from lab.install import lab_token, removal_jobs, remove_node, roll_out, run_all
from lab.paths import ADMIN_KUBECONFIG
from lab.stack import at_kubernetes
from tests.e2e.helpers import (
    NAMESPACE,
    Watch,
    all_paths,
    fresh_namespace,
    host_files,
    join,
    ready_pods,
    run_deployment,
    wait_for,
)


@pytest.fixture(autouse=True)
def _empty_namespace(installed):  # type: ignore[no-untyped-def]
    """After the nodes are installed: no workload of an earlier test (a PDB of one would block drains)."""
    fresh_namespace()


def _node_gone_from_the_cluster(name: str) -> None:
    assert name not in cluster.nodes()
    token_id = lab_token(name)[0].split(".")[0]
    secrets = cluster.get("secrets", "-n", "kube-system")["items"]
    assert f"bootstrap-token-{token_id}" not in {s["metadata"]["name"] for s in secrets}
    requesters = {c["spec"]["username"] for c in cluster.get("csr")["items"]}
    assert not requesters & {f"system:node:{name}", f"system:bootstrap:{token_id}"}


def test_removing_a_node_drains_it_and_leaves_nothing_in_the_cluster_or_on_the_host(installed):
    config, jobs = installed
    job = jobs[0]
    name = job.host.name
    run_deployment("web", replicas=3, min_available=2)
    remove_node(config, name, job.host)
    _node_gone_from_the_cluster(name)
    placed = wait_for("3 web pods Ready elsewhere", lambda: (lambda p: p if len(p) == 3 else None)(ready_pods("web")))
    assert name not in placed.values()
    assert all(v is None for v in host_files(job.host, all_paths(job.plan)).values())


def test_a_removal_blocked_by_a_disruption_budget_names_the_pod_and_leaves_the_node_cordoned_and_intact(
    installed, lab_config
):
    _, jobs = installed
    job = jobs[0]
    name = job.host.name
    run_deployment("solo", replicas=1, min_available=1, node=name)
    pod = next(iter(ready_pods("solo")))
    short = lab_config(edit=lambda raw: raw["cluster"].update(rollout={"drainTimeoutSeconds": 10}))
    before = host_files(job.host, all_paths(job.plan))
    with pytest.raises(DrainBlocked) as blocked:
        remove_node(short, name, job.host)
    message = str(blocked.value)
    assert f"node {name}: not drained after 10 s (it stays cordoned)" in message
    assert f"{NAMESPACE}/{pod}" in message and "disruption budget" in message, message
    node = cluster.nodes()[name]
    assert node["spec"].get("unschedulable") is True
    assert cluster.conditions(node)["Ready"] == "True"
    assert host_files(job.host, all_paths(job.plan)) == before  # the removal script never ran
    assert remote.shell(job.host, "systemctl is-active kubelet").strip() == "active"


def test_a_host_gone_for_good_is_removed_from_the_cluster_side_only(installed, lab, lab_config):
    _, jobs = installed
    host = lab.host(jobs[0].host.name)
    run_deployment("web", replicas=3, min_available=2)
    lab_hosts.power_off(host)  # gone: no SSH, its pods never terminate by themselves
    try:
        gone = lab_config(edit=lambda raw: raw["nodes"][0].update(hostGone=True))
        started = time.monotonic()
        assert remove_node(gone, host.name, host) is None  # no SSH session: skipped, and said so by None
        assert time.monotonic() - started < 30  # no drain waiting on pods that cannot stop
        _node_gone_from_the_cluster(host.name)
        # The pod garbage collector deletes pods bound to a Node that no longer exists; the
        # Deployment replaces them elsewhere.
        wait_for(
            "3 web pods Ready on the other nodes",
            lambda: len(ready_pods("web")) == 3 and host.name not in ready_pods("web").values(),
            timeout=180,
        )
    finally:
        lab_hosts.boot(host)
        lab_hosts.wait_until_up(host)
        lab.save()


def test_a_kubelet_change_rolls_out_one_node_at_a_time_with_the_workload_answering(
    installed, lab_config, systemd_hosts
):
    config, jobs = installed
    service_ip = run_deployment("web", replicas=3, min_available=2)
    changed = lab_config(edit=lambda raw: raw["defaults"].update(maxPods=77))
    with Watch(service_ip, jobs[-1].host) as watch:
        report = roll_out(config, changed, systemd_hosts)
    assert report.failed == {}
    assert report.batches == [[j.host.name] for j in jobs]  # maxUnavailable 1
    assert all(report.drained.values())
    assert watch.cordoned_max == 1, watch.cordoned_max  # never two at once
    assert watch.cordoned_seen == {j.host.name for j in jobs}  # ...and each one was
    assert watch.probes > 10 and watch.failures == [], (watch.failures, report.steps)
    # The new capacity arrives with the restarted kubelet's first status report, which can follow
    # the gate's Ready (the old kubelet's last report, same version): a known limit (docs/how-it-works.md).
    names = [j.host.name for j in jobs]
    wait_for("the new capacity on every node",
             lambda: all(cluster.nodes()[n]["status"]["capacity"]["pods"] == "77" for n in names), timeout=60)  # fmt: skip
    nodes = cluster.nodes()
    for name in names:
        assert not nodes[name]["spec"].get("unschedulable")


def test_a_proxy_only_change_is_not_drained(installed, lab_config, systemd_hosts):
    config, _ = installed
    changed = lab_config(edit=lambda raw: raw["cluster"].update(kubeProxy={"mode": "nftables"}))
    report = roll_out(config, changed, systemd_hosts)
    assert report.failed == {} and not any(report.drained.values())


def test_an_upgrade_from_1_36_to_1_37_keeps_the_workload_available(
    installed, lab_config, systemd_hosts, sums, lab_images
):
    older = pins.KUBERNETES_EXTRA[0]
    if f"kubelet@{older}" not in sums:
        pytest.skip(f"LAB: kubelet {older} not built (python -m lab build --kubernetes {older})")
    config, jobs = installed
    old = lab_config(edit=at_kubernetes(older, sums))
    run_all(removal_jobs(config, systemd_hosts))
    cluster.delete_nodes(j.host.name for j in jobs)
    join(old, systemd_hosts)
    for host in systemd_hosts:
        images.load(host, lab_images)  # the removal took containerd's images with it
    names = [j.host.name for j in jobs]
    assert {cluster.nodes()[n]["status"]["nodeInfo"]["kubeletVersion"] for n in names} == {older}
    service_ip = run_deployment("web", replicas=3, min_available=2)
    with Watch(service_ip, jobs[-1].host) as watch:
        report = roll_out(old, config, systemd_hosts)
    assert report.failed == {} and all(report.drained.values())
    assert watch.cordoned_max == 1 and watch.failures == [], (watch.cordoned_max, watch.failures, report.steps)
    nodes = cluster.nodes()
    for name in names:
        assert nodes[name]["status"]["nodeInfo"]["kubeletVersion"] == pins.KUBERNETES
        assert nodes[name]["status"]["nodeInfo"]["kubeProxyVersion"] in ("", pins.KUBERNETES)
        assert cluster.conditions(nodes[name])["Ready"] == "True"
    assert len(ready_pods("web")) == 3
    # Back to 1.36 now is a downgrade: refused from the cluster's own versions, before any change.
    apiserver, running = versions(api_client(str(ADMIN_KUBECONFIG)), set(names))
    assert apiserver == pins.KUBERNETES
    problems = skew_problems(older.lstrip("v"), apiserver, running)
    assert len(problems) == len(names) and all("a downgrade" in p for p in problems), problems
