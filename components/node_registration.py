"""Per node, after its install: finish the join on the cluster side.

A Pulumi dynamic resource over `k8s_workers.cluster_api` (decisions in `k8s_workers.decisions`).
It runs after the install, which returns once the Node is Ready, and:
1. approves the kubelet's serving-certificate requests that match the inventory (when
   `servingCertificates: approve`);
2. puts the declared labels and taints on the Node and lifts the startup taint (a label or taint
   change is this update alone: the host is not touched);
3. revokes the node's bootstrap token: the kubelet renews its client certificate with its own
   identity, so the token is not needed again;
4. uncordons the node if this program cordoned it (for a rolling change, see NodeMembership);
5. records on the Node the services its host now runs (SERVICES_ANNOTATION): on the next `up`
   only nodes where something would restart wait for their batch (k8s_workers/decisions/rollout.py).
Drift and renewals: on every `pulumi up` (and preview) its diff asks the cluster whether a
renewal is pending, the Node lacks what is declared, the token still authenticates, the node is
still cordoned by us or its recorded services are not these, and plans an update that fixes it.
Without a reachable cluster it plans nothing.
On delete (the node leaves the config, or `pulumi destroy`), first of the node's resources: it
cordons and drains the node (PodDisruptionBudgets honoured, bounded in time; what blocks is named
and the node stays cordoned and intact), then the install's removal script runs, then the node's
NodeMembership removes the Node object. A host that is gone (`hostGone: true`) is not drained.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

from components.detailed_diff import changed_paths, detailed
from k8s_workers.config.loader import Cluster, Node

TIMEOUT_S = 60.0  # the node is Ready when this runs: its kubelet asks within seconds
_INPUTS = (
    "node", "address", "approveServing", "labels", "taints", "tokenGeneration", "services", "drain", "hostGone", "owner",
)  # fmt: skip


def _inventory(props: dict[str, Any]) -> dict[str, Any]:
    from k8s_workers.decisions.serving_csr import NodeIdentity

    return {props["node"]: NodeIdentity.of(props["node"], [props["address"]])}


def _declared(props: dict[str, Any]) -> Any:
    from k8s_workers.decisions.node_metadata import Declared

    return Declared.of(props.get("labels") or {}, props.get("taints") or [])


def register(props: dict[str, Any]) -> dict[str, Any]:
    """What create and update do; the lab calls it too, so it runs what `pulumi up` runs."""
    from k8s_workers.cluster_api import (
        annotate_node,
        api_client,
        approve_serving_certificates,
        reconcile_node_metadata,
        revoke_node_bootstrap_tokens,
        uncordon_if_ours,
    )
    from k8s_workers.render.cluster_objects import OWNER_ANNOTATION, SERVICES_ANNOTATION

    api = api_client(props.get("kubeconfig"))
    node = props["node"]
    approved: list[str] = []
    left_alone: list[str] = []
    if props.get("hostGone"):  # nothing to approve or label on a host that is gone; its Node may be too
        revoke_node_bootstrap_tokens(api, node)
        return {**props, "approved": approved, "left_alone": left_alone}
    if props.get("approveServing"):
        report = approve_serving_certificates(api, _inventory(props), {node}, timeout=TIMEOUT_S)
        if report.waited_for:
            raise RuntimeError(
                f"{node}: its kubelet asked for no serving certificate within {TIMEOUT_S:.0f} s; "
                "check `serverTLSBootstrap` and the kubelet's log. " + "; ".join(report.lines())
            )
        approved, left_alone = [v.csr for v in report.approved], report.lines()
    reconcile_node_metadata(api, node, _declared(props))
    revoke_node_bootstrap_tokens(api, node)
    uncordon_if_ours(api, node)  # the install before this returned Ready
    # Last: the services the host now runs (on the next `up` only nodes where one would restart wait).
    annotations = {SERVICES_ANNOTATION: props.get("services") or ""}
    if props.get("owner"):
        annotations[OWNER_ANNOTATION] = props["owner"]
    annotate_node(api, node, annotations)
    return {**props, "approved": approved, "left_alone": left_alone}


def retire(props: dict[str, Any]) -> None:
    """What delete does before the host's removal script (the lab calls it too): cordon and drain."""
    from k8s_workers.cluster_api import api_client, cordon, drain
    from k8s_workers.decisions.drain import DrainOptions

    options = DrainOptions.of_props(props)
    if props.get("hostGone") or options is None:
        return
    api = api_client(props.get("kubeconfig"))
    cordon(api, props["node"], "k8s-workers: the node is being removed")
    drain(api, props["node"], options)


def drift(props: dict[str, Any]) -> list[str]:
    """What the cluster lacks compared with the last `up`: the reasons an update is planned."""
    from k8s_workers.cluster_api import (
        api_client,
        cordoned_by_us,
        forbidden,
        node_bootstrap_tokens,
        node_metadata_drift,
        pending_for,
        read_node,
        recorded_services,
    )

    api = api_client(props.get("kubeconfig"))
    found = read_node(api, props["node"])  # once: every check below reads this Node
    reasons = []
    if props.get("approveServing") and pending_for(api, _inventory(props), {props["node"]}):
        reasons.append("approved")  # a renewal is waiting
    if node_metadata_drift(found, _declared(props)):
        reasons.append("labels")
    try:
        if node_bootstrap_tokens(api, props["node"]):
            reasons.append("tokenGeneration")  # a token of the node still authenticates: revoke it
    except Exception as exc:
        if not forbidden(exc):  # a preview's identity reads no Secrets (rbac/program-rbac.yaml): not checked
            raise
    if cordoned_by_us(found):
        reasons.append("services")  # a rollout stopped after its cordon: uncordon once Ready
    elif found and not props.get("hostGone") and recorded_services(found) != (props.get("services") or ""):
        reasons.append("services")  # not recorded yet (joined before it was), or by an `up` that did not finish
    return reasons


class _Provider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=f"registration-{props['node']}", outs=register(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=register(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        retire(props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        paths = changed_paths(olds, news, _INPUTS)
        changed = list(paths)
        if not changed:
            try:
                changed = drift(news)  # the cluster changed, not an input: the SDK's answer, every input shown
            except Exception:  # no cluster reachable (a preview in CI): nothing to say
                changed = []
        result = DiffResult(changes=bool(changed), replaces=[], stables=["node"], delete_before_replace=False)
        return detailed(result, paths)


def registration_props(
    cluster: Cluster, node: Node, kubeconfig: Any, services: str = "", owner: str | None = None
) -> dict[str, Any]:
    """The resource's inputs (Outputs in the program, plain values in the lab). `services`: the
    node's services digest, so a change that restarts something updates this after the install."""
    from components.node_disruption import drain_flags

    # Only this node's own identity: it judges the requests its kubelet makes (the other nodes'
    # resources judge theirs), and the stack stays linear in size (no inventory per node).
    return {
        "node": node.name,
        "address": str(node.address),
        "approveServing": cluster.serving_certificates == "approve",
        "labels": dict(node.labels),
        "taints": [t.model_dump() for t in node.taints],
        # Which token is the membership's business: this revokes every token made for the node once
        # it has joined. The generation, known at preview, makes a re-issue update this too.
        "tokenGeneration": node.token_generation,
        "services": services,
        "drain": drain_flags(cluster, node),
        "hostGone": node.host_gone,
        "owner": owner,  # put on the Node: which stack of the fleet declares it
        "kubeconfig": kubeconfig,
        "approved": None,
        "left_alone": None,
    }


class NodeRegistration(pulumi.dynamic.Resource):
    approved: pulumi.Output[list[str]]
    left_alone: pulumi.Output[list[str]]

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        kubeconfig: pulumi.Input[str] | None,
        services: str,  # services_digest: a change that restarts a service updates this after the install
        owner: str,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            _Provider(),
            f"{node.name}-registration",
            registration_props(
                cluster, node, pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None, services, owner
            ),
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])),
        )
