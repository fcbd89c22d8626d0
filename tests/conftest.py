from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The program asks the cluster for its versions before any resource: in tests there is none to
# ask (never whatever cluster ~/.kube/config names). The lab passes its kubeconfig explicitly.
os.environ["KUBECONFIG"] = "/nonexistent/k8s-workers-tests/kubeconfig"

from tests.pki import TestCa, make_ca, make_host_key, make_ssh_key

# The lab (a real cluster and hosts), shared by the lab suite and the engine suite.
pytest_plugins = ["tests.lab_session"]

FAKE_SHA = {"amd64": "0" * 63 + "1", "arm64": "0" * 63 + "2"}
HOST_KEYS = (make_host_key(), make_host_key())


@pytest.fixture(scope="session")
def test_ca() -> TestCa:
    return make_ca()


@pytest.fixture(scope="session")
def ssh_key() -> str:
    return make_ssh_key()


def base_config(ca: TestCa, ssh_key: str | None = None, **cluster_overrides: Any) -> dict[str, Any]:
    """A complete, valid stack config with two nodes (documentation addresses)."""
    artifacts = {
        name: {"url": f"http://127.0.0.1:9/{name}/{{version}}/{{arch}}", "sha256": dict(FAKE_SHA)}
        for name in ("kubelet", "kube-proxy")
    }
    for name, version in (("containerd", "2.1.4"), ("runc", "1.3.0"), ("cni-plugins", "1.7.1")):
        artifacts[name] = {
            "url": f"http://127.0.0.1:9/{name}/{{version}}/{{arch}}",
            "sha256": dict(FAKE_SHA),
            "version": version,
        }
    cluster = {
        "name": "test",
        "apiServer": "https://192.0.2.1:6443",
        "caCert": ca.cert_pem,
        "serviceCidr": "10.96.0.0/12",
        "clusterDns": "10.96.0.10",
        "podCidr": "10.244.0.0/16",
        "kubernetesVersion": "1.37.2",
        "binaries": {"source": "download", "artifacts": artifacts},
        "cni": {"mode": "bridge"},
    }
    cluster.update(cluster_overrides)
    raw: dict[str, Any] = {
        "cluster": cluster,
        "defaults": {
            "ssh": {"user": "root"},
            "labels": {"node.kubernetes.io/pool": "general"},
        },
        "nodes": [
            {"name": "worker-1", "address": "192.0.2.11", "podCidr": "10.244.1.0/24", "ssh": {"hostKey": HOST_KEYS[0]}},
            {
                "name": "worker-2.example.org",
                "address": "192.0.2.12",
                "podCidr": "10.244.2.0/24",
                "ssh": {"hostKey": HOST_KEYS[1]},
                "taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}],
                "maxPods": 50,
            },
        ],
        "caKey": ca.key_pem,
    }
    if ssh_key is not None:
        raw["sshPrivateKey"] = ssh_key
    return copy.deepcopy(raw)


@pytest.fixture
def config(test_ca: TestCa, ssh_key: str) -> dict[str, Any]:
    return base_config(test_ca, ssh_key)
