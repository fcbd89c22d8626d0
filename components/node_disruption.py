"""What a change disrupts on a node, and the drain that comes first: the inputs and the update
step that a node's NodeMembership carries (components/membership.py).

The inputs are what a reviewer needs in the preview: the node's batch and, per service, a digest
of everything whose change restarts it, so `pulumi preview` shows `~ services.kubelet` on exactly
the nodes whose kubelet a change restarts, and `batch` says when. On update, when the change
restarts the kubelet or the runtime and draining is on, the node is cordoned and drained
(PodDisruptionBudgets honoured, bounded in time); the node's install runs next, then its
NodeRegistration uncordons it once it is Ready. Batch k+1's memberships are declared only once
batch k's registrations are done (components/sequencing.py), so a batch starts only when the
previous one is back, and a node that fails stops the rollout there.
"""

from __future__ import annotations

from typing import Any

from k8s_workers.config.loader import Cluster, Node
from k8s_workers.decisions.rollout import declared_settings, service_digests
from k8s_workers.scripts.install_plan import NodePlan

# What makes an update. Not the batch alone (state written before batches came from config order alone
# may hold another number): a re-run must plan nothing. The batch shows beside a real change.
DISRUPTION_INPUTS = ("services", "drain")


def drain_flags(cluster: Cluster, node: Node) -> str:
    """How the node is drained, as `kubectl drain`'s flags; "" when it is not (draining off, or the
    host is gone for good and its pods cannot stop)."""
    from k8s_workers.decisions.drain import DrainOptions

    rollout = cluster.rollout
    if not rollout.drain or node.host_gone:
        return ""
    return DrainOptions(
        rollout.ignore_daemonsets, rollout.delete_emptydir_data, rollout.force, rollout.drain_timeout_seconds
    ).flags()


def disruption_props(cluster: Cluster, node: Node, plan: NodePlan, batch: Any, kubeconfig: Any) -> dict[str, Any]:
    """The disruption's inputs (Outputs in the program, plain values in the lab)."""
    return {
        "node": node.name,
        "batch": batch,
        "services": service_digests(plan),
        # Each of the node's settings as an input of its own, named by the service it restarts
        # (`kubelet.maxPods`): a preview shows a changed one on one line, instead of the digest.
        **declared_settings(node),
        "drain": drain_flags(cluster, node),
        "kubeconfig": kubeconfig,
        "restarts": None,
        "drained": None,
    }


def prepare(olds: dict[str, Any] | None, news: dict[str, Any], repairs: list[str] | None = None) -> dict[str, Any]:
    """What the membership's update does before the node's install runs; the lab calls it too.
    `repairs`: the services a repair of host drift restarts (k8s_workers/decisions/host_drift.py)."""
    from k8s_workers.cluster_api import api_client, cordon, drain
    from k8s_workers.decisions.drain import DrainOptions
    from k8s_workers.decisions.rollout import needs_drain, restarted

    restarts = sorted({*restarted((olds or {}).get("services"), news["services"]), *(repairs or [])})
    options = DrainOptions.of_props(news)
    drained = False
    if needs_drain(restarts) and options:
        api = api_client(news.get("kubeconfig"))
        cordon(api, news["node"], f"k8s-workers: a change restarts {', '.join(restarts)}")
        drain(api, news["node"], options)
        drained = True
    return {**news, "restarts": restarts, "drained": drained}
