"""A fleet of stacks: what a cluster stack exports, how a pool reads it, and the cluster stack's
guard against being destroyed under its pools (roles: k8s_workers/config/fleet.py).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

from components.detailed_diff import changed_paths, detailed
from k8s_workers.config.fleet import CLUSTER_OUTPUT, KUBE_PROXY_CERT_OUTPUT, KUBE_PROXY_KEY_OUTPUT


def owner() -> str:
    """This stack's name in owner annotations: project/stack, unique in a backend's project."""
    return f"{pulumi.get_project()}/{pulumi.get_stack()}"


def cluster_stack_settings(reference: str) -> Any:
    """The cluster stack's `cluster` output, read before any resource is registered (an invoke of
    the engine's built-in provider answers at once, where a StackReference's outputs are Outputs).
    None if the stack exists but exports none; an error naming the key if it cannot be read."""
    try:
        result = pulumi.runtime.invoke("pulumi:pulumi:readStackOutputs", {"name": reference})
    except Exception as exc:
        raise pulumi.RunError(f"clusterStack: cannot read the stack {reference!r}: {exc}") from None
    return ((result.value or {}).get("outputs") or {}).get(CLUSTER_OUTPUT)


class ClusterStackIdentity:
    """What a pool takes from its cluster stack: kube-proxy's identity (the key stays a secret)."""

    def __init__(self, reference: str):
        stack = pulumi.StackReference(reference)
        self.cert_pem: pulumi.Output[str] = stack.require_output(KUBE_PROXY_CERT_OUTPUT)
        self.key_pem: pulumi.Output[str] = pulumi.Output.secret(stack.require_output(KUBE_PROXY_KEY_OUTPUT))


def export_cluster(raw_cluster: Any, cert_pem: pulumi.Output[str], key_pem: pulumi.Output[str]) -> None:
    """A cluster stack's outputs, read by its pools: the settings as configured, kube-proxy's identity."""
    pulumi.export(CLUSTER_OUTPUT, raw_cluster)
    pulumi.export(KUBE_PROXY_CERT_OUTPUT, cert_pem)
    pulumi.export(KUBE_PROXY_KEY_OUTPUT, pulumi.Output.secret(key_pem))


def refuse_destroy_under_pools(props: dict[str, Any]) -> None:
    """What the guard's delete does (tests call it too): refuse while other stacks hold nodes."""
    from k8s_workers.cluster_api import api_client, claimed_nodes
    from k8s_workers.decisions.ownership import held_by_others

    held = held_by_others(claimed_nodes(api_client(props.get("kubeconfig"))), props["owner"])
    if held:
        pools = "; ".join(f"{stack}: {', '.join(nodes)}" for stack, nodes in held.items())
        raise RuntimeError(
            f"the cluster stack is still in use by pool stacks ({pools}): `pulumi destroy` each pool stack "
            "first; its nodes need the bindings and kube-proxy identity this stack holds"
        )


class _GuardProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_="fleet-guard", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        paths = changed_paths(olds, news, ["owner"])
        return detailed(DiffResult(changes=bool(paths), replaces=[], delete_before_replace=False), paths)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        refuse_destroy_under_pools(props)


class FleetGuard(pulumi.dynamic.Resource):
    """In a cluster stack: deleted first on `pulumi destroy` (it depends on everything else), and
    its delete fails while any pool's nodes are in the cluster, so nothing of the stack goes."""

    def __init__(self, kubeconfig: pulumi.Input[str] | None, opts: pulumi.ResourceOptions | None = None):
        props = {"owner": owner(), "kubeconfig": pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None}
        super().__init__(
            _GuardProvider(),
            "fleet-guard",
            props,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])),
        )
