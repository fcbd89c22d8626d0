"""The lab, shared by the lab suite (tests/e2e) and the engine suite (tests/engine): a real control
plane and real systemd hosts on the lab network, started fresh once per session (binaries and the
host root come from the lab's caches) and taken down at its end (K8SW_LAB_KEEP=1 keeps it)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from k8s_workers.config.loader import StackConfig, load_config
from lab import build, images, install, mirror, pins, stack, tools
from lab.__main__ import down, up
from lab.hosts import LabHost
from lab.state import LabState
from tests.e2e.helpers import Snapshot, fresh_namespace, snapshot

NODES = 3
_CLEAN: dict[str, Snapshot] = {}


def missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (systemd-nspawn, debootstrap, network namespaces)"
    absent = tools.missing()
    if absent:
        return f"{', '.join(absent)} not installed (.ci/run installs the lab's packages)"
    return None


@pytest.fixture(scope="session")
def lab() -> Iterator[LabState]:
    reason = missing_prerequisites()
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


RawFactory = Callable[..., dict[str, Any]]
ConfigFactory = Callable[..., StackConfig]


@pytest.fixture(scope="session")
def lab_raw(lab: LabState, sums: dict[str, dict[int, str]]) -> RawFactory:
    """The lab stack's raw config (as a stack file holds it), optionally changed: generations per
    artifact and raw edits."""

    def make(
        generations: dict[str, int] | None = None, edit: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        raw = copy.deepcopy(stack.lab_config(lab.hosts, sums, generations))
        if edit is not None:
            edit(raw)
        return raw

    return make


@pytest.fixture(scope="session")
def lab_config(lab_raw: RawFactory) -> ConfigFactory:
    """The lab stack's config, loaded (the same arguments as lab_raw)."""

    def make(
        generations: dict[str, int] | None = None, edit: Callable[[dict[str, Any]], None] | None = None
    ) -> StackConfig:
        return load_config(lab_raw(generations, edit))

    return make


def clean_slate(raw: dict[str, Any], hosts: list[LabHost]) -> None:
    """What the lab suite left behind, gone (lab.install.clean_slate), and its workloads."""
    install.clean_slate(load_config(raw), hosts)
    fresh_namespace()
