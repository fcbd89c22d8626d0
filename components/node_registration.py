"""Per node: approve its kubelet's serving-certificate requests that match the inventory.

A Pulumi dynamic resource over `k8s_workers.cluster_api` (the decision is
`k8s_workers.decisions.serving_csr`). It runs after the node's install, which returns once the
Node is Ready, so the kubelet has asked by then. Renewals: on every `pulumi up` (and preview) its
diff looks for pending requests of the node that match, and plans an update that approves them.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from k8s_workers.config.loader import Cluster, Node

TIMEOUT_S = 60.0  # the node is Ready when this runs: its kubelet asks within seconds


def _inventory(props: dict[str, Any]) -> dict[str, Any]:
    from k8s_workers.decisions.serving_csr import NodeIdentity

    return {n["name"]: NodeIdentity.of(n["name"], n["addresses"]) for n in props["inventory"]}


class _Provider(ResourceProvider):
    def _approve(self, props: dict[str, Any]) -> dict[str, Any]:
        from k8s_workers.cluster_api import api_client, approve_serving_certificates

        report = approve_serving_certificates(
            api_client(props.get("kubeconfig")), _inventory(props), {props["node"]}, timeout=TIMEOUT_S
        )
        if report.waited_for:
            raise RuntimeError(
                f"{props['node']}: its kubelet asked for no serving certificate within {TIMEOUT_S:.0f} s; "
                "check `serverTLSBootstrap` and the kubelet's log. " + "; ".join(report.lines())
            )
        return {**props, "approved": [v.csr for v in report.approved], "leftAlone": report.lines()}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"serving-certificates-{props['node']}", outs=self._approve(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._approve(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("node", "inventory") if olds.get(k) != news.get(k)]
        if not changed:
            try:
                from k8s_workers.cluster_api import api_client, pending_for

                if pending_for(api_client(news.get("kubeconfig")), _inventory(news), {news["node"]}):
                    changed = ["approved"]  # a renewal is waiting: approve it on this `up`
            except Exception:
                pass
        return DiffResult(changes=bool(changed), replaces=[], stables=["node"], delete_before_replace=False)


class ServingCertificates(pulumi.dynamic.Resource):
    approved: pulumi.Output[list[str]]
    left_alone: pulumi.Output[list[str]]

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        kubeconfig: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        # Only this node's own identity: it judges the requests its kubelet makes (the other nodes'
        # resources judge theirs), and the stack stays linear in size (no inventory per node).
        inventory = [{"name": node.name, "addresses": [str(node.address)]}]
        super().__init__(
            _Provider(),
            f"{node.name}-serving-certificates",
            {
                "node": node.name,
                "inventory": inventory,
                "kubeconfig": pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None,
                "approved": None,
                "leftAlone": None,
            },
            opts,
        )
