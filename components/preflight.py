"""Checks against the live cluster that must pass before any resource is registered."""

from __future__ import annotations

import pulumi

from k8s_workers.config.loader import StackConfig


def check_cluster(config: StackConfig, owner: str) -> dict[str, str | None] | None:
    """Refuse a kubernetesVersion the version-skew policy forbids (newer than the apiserver, more
    than 3 minors older, or a downgrade of a running node), and nodes another stack of the fleet
    owns. Returns the declared nodes the cluster already has, each with the services its last `up`
    recorded (k8s_workers/decisions/rollout.py: a node already in step waits for no batch). Without
    a reachable cluster (a preview in CI), say that it was not checked and return None."""
    from k8s_workers.cluster_api import api_client, claimed_nodes, registered
    from k8s_workers.decisions.ownership import conflicts, refusal
    from k8s_workers.decisions.version_skew import skew_problems

    kubeconfig = pulumi.Config("kubernetes").get("kubeconfig")  # the cluster the kubernetes provider uses
    names = [n.name for n in config.nodes]
    try:
        api = api_client(kubeconfig)
        apiserver, found = registered(api, set(names))
        claimed = claimed_nodes(api, tokens_optional=True) if names else {}
    except Exception as exc:  # no cluster: the first `up` fails on the bindings anyway
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        pulumi.log.warn(
            f"the cluster was not reachable ({reason}): this plan is made without it. Not checked: "
            "cluster.kubernetesVersion against the apiserver and the running kubelets, which nodes already "
            "joined, and nodes another stack owns; each node is planned to wait for its batch. `pulumi up` "
            "needs the cluster: point the kubernetes provider at it (`pulumi config set kubernetes:kubeconfig "
            "<path>`, or KUBECONFIG)"
        )
        return None
    rollout = config.cluster.rollout
    running = {name: node.kubelet_version for name, node in found.items()}
    problems = skew_problems(config.cluster.kubernetes_version, apiserver, running, rollout.allow_downgrade)
    if problems:
        raise pulumi.RunError("cluster.kubernetesVersion: " + "; ".join(problems))
    taken = conflicts(names, owner, claimed)
    if taken:
        raise pulumi.RunError(
            "\n".join(f"nodes[{names.index(n)}].name: {refusal(n, others)}" for n, others in taken.items())
        )
    return {name: node.services for name, node in found.items()}
