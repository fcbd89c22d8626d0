"""The lab suite's own fixtures; the lab itself (and the fixtures the engine suite shares) is in
tests/lab_session.py."""

from __future__ import annotations

import pytest

from k8s_workers.config.loader import StackConfig
from lab import cluster, images, remote
from lab.install import NodeJob, install_jobs, removal_jobs, run_all
from tests.e2e.helpers import SWAP_LINE, join


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


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
