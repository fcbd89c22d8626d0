"""Asking the lab cluster, as an operator would: `kubectl` (built with the lab's binaries) with
the lab's admin kubeconfig.

The e2e suite runs the program's remote commands itself, so it also creates what the program
declares in the cluster (its ClusterRoleBindings and each node's bootstrap-token Secret), from the
same pure functions the components use.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from typing import Any

from k8s_workers.config.loader import StackConfig
from k8s_workers.render.cluster_objects import cluster_role_bindings
from lab import build
from lab.control_plane import api_server_url
from lab.paths import ADMIN_KUBECONFIG, LAB_CA_CERT


class ClusterError(RuntimeError):
    pass


def kubectl(
    *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(build.binary("kubectl")), f"--kubeconfig={ADMIN_KUBECONFIG}", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def run_kubectl(args: list[str], stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """kubectl with the caller's own credentials (args name them: --kubeconfig or --token)."""
    base = [str(build.binary("kubectl"))]
    if not any(a.startswith("--kubeconfig") for a in args):
        # the cluster from the admin kubeconfig, but none of its credentials
        base += [f"--server={api_server_url()}", f"--certificate-authority={LAB_CA_CERT}"]
    return subprocess.run([*base, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def get(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def apply(manifests: Iterable[dict[str, Any]]) -> None:
    document = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(document))


def program_objects(config: StackConfig) -> list[dict[str, Any]]:
    """What the program's ClusterBootstrap declares (tokens come from each node's NodeMembership)."""
    return cluster_role_bindings(config.cluster)


def conditions(node: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}


def nodes() -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in get("nodes")["items"]}


def wait_ready(names: Iterable[str], timeout: float = 180) -> dict[str, float]:
    """Seconds until each node is Ready (from this call); raises naming the ones that are not."""
    started = time.monotonic()
    pending, seen = set(names), {}
    while pending and time.monotonic() - started < timeout:
        current = nodes()
        for name in sorted(pending):
            if conditions(current.get(name, {})).get("Ready") == "True":
                seen[name] = time.monotonic() - started
                pending.discard(name)
        if pending:
            time.sleep(0.5)
    if pending:
        raise ClusterError(f"not Ready after {timeout:.0f} s: {', '.join(sorted(pending))}")
    return seen


def delete_nodes(names: Iterable[str]) -> None:
    for name in names:
        kubectl("delete", "node", name, "--ignore-not-found", "--wait=false")
