"""Install or remove many lab hosts at once, as `pulumi up` would: one SSH session per node,
in parallel, a failure on one host never stopping the others."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from components.config import StackConfig
from components.host_paths import PATHS
from components.install_plan import NodePlan, plan_node
from components.node_files import NodeSecrets
from components.scripts import install_command, install_script, removal_command
from lab import remote
from lab.hosts import LabHost


@dataclass(frozen=True)
class NodeJob:
    host: LabHost
    plan: NodePlan
    command: str
    stdin: str


def lab_secrets(node: str) -> NodeSecrets:
    """Deterministic stand-ins for the token and kube-proxy credentials of a lab node."""
    digest = hashlib.sha256(node.encode()).hexdigest()
    return NodeSecrets(
        bootstrap_token=f"{digest[:6]}.{digest[6:22]}",
        kube_proxy_cert_pem=f"<lab kube-proxy certificate for {node}>\n",
        kube_proxy_key_pem=f"<lab kube-proxy key for {node}>\n",
    )


def install_jobs(config: StackConfig, hosts: Iterable[LabHost]) -> list[NodeJob]:
    by_name = {h.name: h for h in hosts}
    jobs = []
    for node in config.nodes:
        if node.name not in by_name:
            continue  # a subset of hosts: only their nodes
        secrets = lab_secrets(node.name)
        plan = plan_node(config.cluster, node, secrets)
        versions = {
            PATHS.bootstrap_kubeconfig: f"token-id:{secrets.bootstrap_token[:6]}",
            PATHS.kube_proxy_kubeconfig: "cert-sha256:lab",
        }
        jobs.append(
            NodeJob(by_name[node.name], plan, install_command(plan, node.ssh.user, versions), install_script(plan))
        )
    return jobs


def removal_jobs(config: StackConfig, hosts: Iterable[LabHost]) -> list[NodeJob]:
    return [NodeJob(j.host, j.plan, removal_command(j.plan, "root"), "") for j in install_jobs(config, hosts)]


def run_all(jobs: list[NodeJob]) -> dict[str, remote.RemoteResult | remote.HostError]:
    def one(job: NodeJob) -> remote.RemoteResult | remote.HostError:
        try:
            return remote.check(job.host, job.command, job.stdin)
        except (remote.HostError, OSError) as exc:
            return exc if isinstance(exc, remote.HostError) else remote.HostError(f"{job.host.name}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return dict(zip((j.host.name for j in jobs), pool.map(one, jobs), strict=True))
