"""Which stack of a fleet this is, and which config keys belong in it (pure).

| role | holds | reads |
|---|---|---|
| `standalone` (default) | everything: today's single stack | - |
| `cluster` | what is once per cluster: `cluster`, `caKey` (bindings, kube-proxy identity) | - |
| `pool` | nodes only: `nodes`/`inventory`, `defaults`, `sshPrivateKey` | the cluster stack's outputs (`clusterStack`) |

A key in the wrong stack is an error that names the stack it belongs in, found with every other
config error before any resource is registered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["standalone", "cluster", "pool"]
ROLES: tuple[Role, ...] = ("standalone", "cluster", "pool")
FLEET_KEYS = ("role", "clusterStack")
CLUSTER_KEYS = ("cluster", "caKey")  # once per cluster
POOL_KEYS = ("nodes", "inventory", "defaults", "sshPrivateKey")  # per pool of nodes
# organization/project/stack, or a stack of this project (the backend's default organization)
_STACK_NAME = re.compile(r"([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+")

# The cluster stack's outputs a pool reads (components/fleet.py exports them).
CLUSTER_OUTPUT = "cluster"  # the cluster settings, as configured (camelCase, no secret in them)
KUBE_PROXY_CERT_OUTPUT = "kubeProxyCertPem"
KUBE_PROXY_KEY_OUTPUT = "kubeProxyKeyPem"  # a secret


@dataclass(frozen=True)
class Fleet:
    role: Role = "standalone"
    cluster_stack: str | None = None  # for a pool: the stack it reads the cluster from

    @property
    def holds_nodes(self) -> bool:
        return self.role != "cluster"

    @property
    def holds_cluster(self) -> bool:
        return self.role != "pool"


def read_fleet(raw: Mapping[str, Any]) -> tuple[Fleet, list[tuple[str, str]]]:
    """The stack's role and (path, message) problems: a bad role, keys in the wrong stack."""
    problems: list[tuple[str, str]] = []
    role = raw.get("role", "standalone")
    if role not in ROLES:
        problems.append(("role", f"{role!r} is not one of {list(ROLES)}"))
        role = "standalone"
    reference = raw.get("clusterStack")
    if reference is not None and (not isinstance(reference, str) or not _STACK_NAME.fullmatch(reference)):
        problems.append(("clusterStack", f"{reference!r} is not a stack name (organization/project/stack)"))
        reference = None
    if role == "pool":
        if raw.get("clusterStack") is None:
            problems.append(("clusterStack", "is required in a pool stack: the cluster stack it joins"))
        where = f"the cluster stack {reference!r}" if reference else "the cluster stack"
        for key in CLUSTER_KEYS:
            if raw.get(key) is not None:
                problems.append((key, f"belongs in {where}, not in a pool stack"))
    else:
        if raw.get("clusterStack") is not None:
            problems.append(("clusterStack", "is for pool stacks only (set role: pool)"))
    if role == "cluster":
        for key in POOL_KEYS:
            if raw.get(key) is not None:
                problems.append((key, "belongs in a pool stack (role: pool), not in the cluster stack"))
    return Fleet(role, reference if role == "pool" else None), problems


def settings_for_pools(raw_cluster: Mapping[str, Any], ca_cert_pem: str) -> dict[str, Any]:
    """The `cluster` output: the settings as configured, with the CA certificate inline and no file
    paths (a pool runs elsewhere, and never needs the CA key)."""
    exported = {k: v for k, v in raw_cluster.items() if k not in ("caCertFile", "caKeyFile")}
    return {**exported, "caCert": ca_cert_pem}


def from_cluster_stack(path: str, reference: str) -> str:
    """An error path for a key a pool read from its cluster stack: say where to fix it."""
    return f"{path} (in the cluster stack {reference!r})"
