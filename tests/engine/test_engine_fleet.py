"""A fleet under the real Pulumi engine on the lab (markers `engine`, `lab`): one cluster stack and two
pool stacks of one project on one backend, `pool-a` (lab-1, lab-2) and `pool-b` (lab-3), the tests in
the order a platform team would live it: the cluster stack first, both pools at once, a change to one
pool, a node claimed twice, a cluster stack destroyed too early, the pools' and the cluster's destroy."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from k8s_workers.config.loader import load_config
from k8s_workers.render.cluster_objects import OWNER_ANNOTATION, cluster_role_bindings
from k8s_workers.render.program_rbac import DEPLOYER, PREVIEWER
from lab import cluster, images, remote
from lab.hosts import LabHost
from lab.paths import ADMIN_KUBECONFIG, DEPLOYER_KUBECONFIG
from lab.stack import stack_document
from lab.state import LabState
from tests.e2e.helpers import NAMESPACE, fresh_namespace, run_workload, wait_for
from tests.engine.pulumi_cli import REMOTE_COMMAND, ROOT, WORKER_NODE, Project, Result, missing, no_leak
from tests.lab_session import RawFactory, clean_slate

pytestmark = [pytest.mark.engine, pytest.mark.lab]

if (why := missing()) is not None:
    pytest.skip(f"ENGINE TESTS SKIPPED: {why}", allow_module_level=True)

CLUSTER_STACK = "organization/k8s-workers/cluster"  # how a pool names it on a file backend
POOLS = {"pool-a": 2, "pool-b": 1}  # pool -> how many of the lab's hosts, in order


@dataclass
class Stacks:
    cluster: Project
    pools: dict[str, Project]
    members: dict[str, list[str]]  # pool -> its node names
    raw: dict[str, Any]  # the lab's standalone config, split below
    hosts: list[LabHost]
    images: list[images.Image]

    def configure_cluster(self) -> None:
        # Run by an admin, it declares the program's own RBAC (the default subjects); the pools then
        # run as the up identity it grants (the lab's deployer user is in its group).
        settings = {"role": "cluster", "cluster": {**self.raw["cluster"], "programRbac": {}}}
        self.cluster.stack_file.write_text(stack_document(settings))

    def configure_pool(self, pool: str, names: list[str], defaults: dict[str, Any] | None = None) -> None:
        nodes = [n for n in self.raw["nodes"] if n["name"] in names]
        settings = {"role": "pool", "clusterStack": CLUSTER_STACK, "defaults": {**self.raw["defaults"], **(defaults or {})}, "nodes": nodes}  # fmt: skip
        self.pools[pool].stack_file.write_text(stack_document(settings, DEPLOYER_KUBECONFIG))

    def up_pools(self, *pools: str) -> dict[str, Result]:
        with concurrent.futures.ThreadPoolExecutor(len(pools)) as runner:
            running = {p: runner.submit(self.pools[p].up) for p in pools}
            return {p: r.result() for p, r in running.items()}


@pytest.fixture(scope="module")
def stacks(
    lab: LabState, systemd_hosts: list[LabHost], lab_raw: RawFactory, lab_images: list[images.Image], tmp_path_factory
) -> Iterator[Stacks]:
    raw = lab_raw()
    clean_slate(raw, systemd_hosts)
    cluster.kubectl(
        "delete", "-f", str(ROOT / "rbac" / "program-rbac.yaml"), "--ignore-not-found"
    )  # the stack makes it
    project = Project(tmp_path_factory.mktemp("engine-fleet"), "cluster", None, kubeconfig=str(ADMIN_KUBECONFIG))
    names = [h.name for h in systemd_hosts]
    members, start = {}, 0
    for pool, count in POOLS.items():
        members[pool], start = names[start : start + count], start + count
    found = Stacks(project, {p: project.with_stack(p) for p in POOLS}, members, raw, systemd_hosts, lab_images)
    found.configure_cluster()
    for pool, names_in_pool in members.items():
        found.configure_pool(pool, names_in_pool)
    yield found
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
    for pool in found.pools.values():
        pool.run("destroy", "--yes", "--skip-preview")
    project.run("destroy", "--yes", "--skip-preview")


def _owners() -> dict[str, str | None]:
    return {n: (node["metadata"].get("annotations") or {}).get(OWNER_ANNOTATION) for n, node in cluster.nodes().items()}


def _kubelet_started(host: LabHost) -> str:
    return remote.shell(host, "systemctl show kubelet -p ActiveEnterTimestampMonotonic --value").strip()


def test_the_cluster_stack_then_both_pools_at_once_make_every_node_ready(stacks: Stacks) -> None:
    first = stacks.cluster.up()
    assert first.returncode == 0, first.output
    assert first.ops(WORKER_NODE) == []  # no node in the cluster stack
    bindings = {b["metadata"]["name"] for b in cluster_role_bindings(load_config(stacks.raw).cluster)}
    present = {b["metadata"]["name"] for b in cluster.get("clusterrolebindings")["items"]}
    assert bindings | {DEPLOYER, PREVIEWER} <= present
    assert {DEPLOYER, PREVIEWER} <= {r["metadata"]["name"] for r in cluster.get("clusterroles")["items"]}
    runs = stacks.up_pools(*POOLS)
    for pool, result in runs.items():
        assert result.returncode == 0, (pool, result.output)
        # Each pool's run touches its own nodes only.
        made = {urn.rsplit("::", 1)[1] for op, urn in result.ops(WORKER_NODE) if op == "create"}
        assert made == set(stacks.members[pool]), (pool, made)
    everyone = [n for names in stacks.members.values() for n in names]
    nodes = cluster.nodes()
    for name in everyone:
        assert cluster.conditions(nodes[name])["Ready"] == "True", name
    owners = _owners()
    for pool, names in stacks.members.items():
        assert {owners[n] for n in names} == {f"k8s-workers/{pool}"}, owners
    for host in stacks.hosts:  # no registry: the workload's images, imported into each node's containerd
        images.load(host, stacks.images)
    run_workload(everyone)
    for name in everyone:
        pod = f"echo-{name}"
        logs = wait_for(
            f"kubectl logs {pod}", lambda pod=pod: cluster.kubectl("logs", "-n", NAMESPACE, pod, check=False).stdout
        )
        assert f"node={name}" in logs
    for result in [first, *runs.values()]:
        no_leak(result.output, "a fleet run's output")
    state = stacks.cluster.export()
    no_leak(state, "the cluster stack's state")  # kube-proxy's key is a secret output there


def test_a_kubelet_change_to_one_pool_touches_no_node_of_the_other(stacks: Stacks, systemd_hosts) -> None:
    fresh_namespace()  # the first test's bare pods would block the drain (no controller recreates them)
    hosts = {h.name: h for h in systemd_hosts}
    others = stacks.members["pool-a"]
    before = {n: _kubelet_started(hosts[n]) for n in others}
    stacks.configure_pool("pool-b", stacks.members["pool-b"], defaults={"maxPods": 90})
    changed = stacks.up_pools("pool-b")["pool-b"]
    assert changed.returncode == 0, changed.output
    installs = changed.changed(REMOTE_COMMAND)
    assert {n.removesuffix("-install") for n in installs} == set(stacks.members["pool-b"]), installs
    assert {n: _kubelet_started(hosts[n]) for n in others} == before  # not restarted
    quiet = stacks.pools["pool-a"].preview()
    assert quiet.returncode == 0 and quiet.changed() == {}, quiet.output
    wait_for(
        "pool-b's capacity",
        lambda: all(cluster.nodes()[n]["status"]["capacity"]["pods"] == "90" for n in stacks.members["pool-b"]),
        timeout=60,
    )
    assert {cluster.nodes()[n]["status"]["capacity"]["pods"] for n in others} == {"110"}


def test_a_node_another_pool_owns_is_refused_naming_that_pool(stacks: Stacks) -> None:
    taken = stacks.members["pool-a"][0]
    stacks.configure_pool("pool-b", [*stacks.members["pool-b"], taken])
    try:
        refused = stacks.pools["pool-b"].preview()
        assert refused.returncode != 0
        assert f"Node '{taken}' belongs to the stack 'k8s-workers/pool-a'" in refused.output, refused.output
    finally:
        stacks.configure_pool("pool-b", stacks.members["pool-b"], defaults={"maxPods": 90})
    assert _owners()[taken] == "k8s-workers/pool-a"


def test_the_cluster_stack_refuses_destroy_while_pools_hold_nodes(stacks: Stacks) -> None:
    refused = stacks.cluster.run("destroy", "--yes", "--skip-preview")
    assert refused.returncode != 0
    expected = "in use by pool stacks (k8s-workers/pool-a: {}; k8s-workers/pool-b: {})".format(
        ", ".join(stacks.members["pool-a"]), ", ".join(stacks.members["pool-b"])
    )
    assert expected in refused.output, refused.output
    # The guard's delete, tried first, failed: nothing else of the stack was touched.
    assert [urn.rsplit("::", 1)[1] for op, urn in refused.ops() if op != "same"] == ["fleet-guard"]
    bindings = {b["metadata"]["name"] for b in cluster_role_bindings(load_config(stacks.raw).cluster)}
    assert bindings <= {b["metadata"]["name"] for b in cluster.get("clusterrolebindings")["items"]}


def test_destroying_a_pool_removes_its_nodes_only_then_the_cluster_stack_goes(stacks: Stacks) -> None:
    gone = stacks.pools["pool-b"].run("destroy", "--yes", "--skip-preview")
    assert gone.returncode == 0, gone.output
    nodes = cluster.nodes()
    assert not set(stacks.members["pool-b"]) & set(nodes)
    for name in stacks.members["pool-a"]:
        assert cluster.conditions(nodes[name])["Ready"] == "True", name
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180)
    assert stacks.pools["pool-a"].run("destroy", "--yes", "--skip-preview").returncode == 0
    last = stacks.cluster.run("destroy", "--yes", "--skip-preview")
    assert last.returncode == 0, last.output
    bindings = {b["metadata"]["name"] for b in cluster_role_bindings(load_config(stacks.raw).cluster)}
    assert not (bindings | {DEPLOYER}) & {b["metadata"]["name"] for b in cluster.get("clusterrolebindings")["items"]}
    assert not {DEPLOYER, PREVIEWER} & {r["metadata"]["name"] for r in cluster.get("clusterroles")["items"]}
