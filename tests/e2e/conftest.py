"""The lab for the end-to-end suite: real systemd hosts on 127.0.0.N, started once per session."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from components.config import StackConfig, load_config
from lab import mirror, stack
from lab.__main__ import down, up
from lab.hosts import LabHost
from lab.state import LabState

NODES = 2


def _missing_prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (systemd-nspawn, debootstrap)"
    for tool in ("systemd-nspawn", "debootstrap", "ssh", "ssh-keygen", "gcc"):
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
    try:
        state = up(nodes=NODES, bare=1)
    except BaseException:
        down()  # leave nothing running behind a failed start
        raise
    yield state
    if os.environ.get("K8SW_LAB_KEEP") != "1":
        down()


@pytest.fixture(scope="session")
def sums(lab: LabState) -> dict[str, dict[int, str]]:
    return mirror.publish()


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
