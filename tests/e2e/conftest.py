"""The lab for the end-to-end suite: a real control plane and real systemd hosts on the lab network,
started fresh once per session (binaries and the host root come from the lab's caches)."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from k8s_workers.config.loader import StackConfig, load_config
from lab import build, cluster, images, mirror, pins, remote, stack
from lab.__main__ import down, up
from lab.hosts import LabHost
from lab.install import NodeJob, install_jobs, removal_jobs, run_all
from lab.state import LabState
from tests.e2e.helpers import SWAP_LINE, Snapshot, join, snapshot

NODES = 3
_CLEAN: dict[str, Snapshot] = {}


def _missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (systemd-nspawn, debootstrap, network namespaces)"
    for tool in ("systemd-nspawn", "debootstrap", "ssh", "ssh-keygen", "gcc", "go", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs the lab's packages)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabState]:
    reason = _missing_prerequisites()
    if reason:
        pytest.skip(f"LAB SUITE SKIPPED: {reason}")
    down()  # a fresh cluster and fresh hosts: nothing from an earlier session counts
    try:
        state = up(nodes=NODES, bare=1)
        # What each host holds before any install: the removal test compares against it.
        _CLEAN.update({h.name: snapshot(h) for h in state.hosts if h.init == "systemd"})
    except BaseException:
        down()  # leave nothing running behind a failed start
        raise
    yield state
    if os.environ.get("K8SW_LAB_KEEP") != "1":
        down()


@pytest.fixture(scope="session")
def clean_snapshots(lab: LabState) -> dict[str, Snapshot]:
    return _CLEAN


@pytest.fixture(scope="session")
def sums(lab: LabState) -> dict[str, dict[int, str]]:
    """The mirror's artifacts: the pinned Kubernetes version, and the older one when it is built."""
    extra = []
    for version in pins.KUBERNETES_EXTRA:
        try:
            build.binary("kubelet", version)
            extra.append(version)
        except build.BuildError:
            print(
                f"LAB: kubelet {version} not built: the upgrade test will skip (python -m lab build --kubernetes {version})"
            )
    return mirror.publish((pins.KUBERNETES, *extra))


@pytest.fixture(scope="session")
def lab_images(lab: LabState) -> list[images.Image]:
    return images.build()


@pytest.fixture(scope="session")
def systemd_hosts(lab: LabState) -> list[LabHost]:
    return [h for h in lab.hosts if h.init == "systemd"]


@pytest.fixture(scope="session")
def bare_host(lab: LabState) -> LabHost:
    return next(h for h in lab.hosts if h.init != "systemd")


ConfigFactory = Callable[..., StackConfig]


@pytest.fixture(scope="session")
def lab_config(lab: LabState, sums: dict[str, dict[int, str]]) -> ConfigFactory:
    """The lab stack's config, optionally changed: generations per artifact and raw edits."""

    def make(
        generations: dict[str, int] | None = None, edit: Callable[[dict[str, Any]], None] | None = None
    ) -> StackConfig:
        raw = copy.deepcopy(stack.lab_config(lab.hosts, sums, generations))
        if edit is not None:
            edit(raw)
        return load_config(raw)

    return make


@pytest.fixture
def installed(lab, systemd_hosts, lab_config, lab_images) -> tuple[StackConfig, list[NodeJob]]:
    """Every systemd host removed and its Node deleted, given a swap line in fstab, then installed
    with the lab stack as the program would (cluster objects first), images imported, Nodes Ready."""
    config = lab_config()
    removed = run_all(removal_jobs(config, systemd_hosts))
    failures = [str(r) for r in removed.values() if isinstance(r, remote.HostError)]
    assert not failures, "\n".join(failures)
    cluster.delete_nodes(h.name for h in systemd_hosts)  # until removal does it: a fresh registration
    for host in systemd_hosts:
        remote.shell(host, f"grep -q '^{SWAP_LINE}' /etc/fstab || echo '{SWAP_LINE}' >> /etc/fstab")
    cluster.apply(cluster.program_objects(config))
    join(config, systemd_hosts)
    for host in systemd_hosts:
        images.load(host, lab_images)
    cluster.wait_ready(h.name for h in systemd_hosts)
    return config, install_jobs(config, systemd_hosts)
