"""Per node, before its install: what a change disrupts there, and the drain that comes first.

A Pulumi dynamic resource. Its inputs are what a reviewer needs in the preview: the node's
batch and, per service, a digest of everything whose change restarts it, so `pulumi preview`
shows `~ services.kubelet` on exactly the nodes whose kubelet a change restarts, and `batch`
says when. On update, when the change restarts the kubelet or the runtime and draining is on,
it cordons the node and drains it (PodDisruptionBudgets honoured, bounded in time); the node's
install runs next, then its NodeRegistration uncordons it once it is Ready. Batch k+1's
disruptions are declared only once batch k's registrations are done (components/sequencing.py),
so a batch starts only when the previous one is back, and a node that fails stops the rollout
there.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from k8s_workers.config.loader import Cluster, Node
from k8s_workers.decisions.rollout import service_digests
from k8s_workers.scripts.install_plan import NodePlan

# What makes an update. Not the batch alone: a node that joined in batch 0 and sits in batch k on the
# next `up` has nothing to do, and a re-run must plan nothing. The batch shows beside a real change.
_INPUTS = ("node", "services", "drain", "drainOptions")


def drain_options(cluster: Cluster) -> dict[str, Any]:
    rollout = cluster.rollout
    return {
        "ignore_daemonsets": rollout.ignore_daemonsets,
        "delete_emptydir_data": rollout.delete_emptydir_data,
        "force": rollout.force,
        "timeout_seconds": rollout.drain_timeout_seconds,
    }


def disruption_props(cluster: Cluster, node: Node, plan: NodePlan, batch: Any, kubeconfig: Any) -> dict[str, Any]:
    """The resource's inputs (Outputs in the program, plain values in the lab)."""
    return {
        "node": node.name,
        "batch": batch,
        "services": service_digests(plan),
        "drain": cluster.rollout.drain and not node.host_gone,
        "drainOptions": drain_options(cluster),
        "kubeconfig": kubeconfig,
        "restarts": None,
        "drained": None,
    }


def prepare(olds: dict[str, Any] | None, news: dict[str, Any]) -> dict[str, Any]:
    """What update does before the node's install runs; the lab calls it too."""
    from k8s_workers.cluster_api import api_client, cordon, drain
    from k8s_workers.decisions.drain import DrainOptions
    from k8s_workers.decisions.rollout import needs_drain, restarted

    restarts = restarted((olds or {}).get("services"), news["services"])
    drained = False
    if needs_drain(restarts) and news.get("drain"):
        api = api_client(news.get("kubeconfig"))
        cordon(api, news["node"], f"k8s-workers: a change restarts {', '.join(restarts)}")
        drain(api, news["node"], DrainOptions.of(news["drainOptions"]))
        drained = True
    return {**news, "restarts": restarts, "drained": drained}


class _Provider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        # A first install: no pods there yet, nothing restarts.
        return CreateResult(id_=f"disruption-{props['node']}", outs={**props, "restarts": [], "drained": False})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in _INPUTS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], stables=["node"], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=prepare(olds, news))


class NodeDisruption(pulumi.dynamic.Resource):
    restarts: pulumi.Output[list[str]]
    drained: pulumi.Output[bool]

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        plan: NodePlan,
        batch: pulumi.Input[int],  # resolves once the previous batch is done (components/sequencing.py)
        kubeconfig: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            _Provider(),
            f"{node.name}-disruption",
            disruption_props(
                cluster, node, plan, batch, pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None
            ),
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])),
        )
