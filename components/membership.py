"""Per node: its place in the cluster, from before its install until after its removal.

A Pulumi dynamic resource, ahead of the node's install (which depends on it). Created: the
bootstrap token's Secret in kube-system (expiry counted from this creation). Updated: a new token
if there is one, and, when a change restarts the node's kubelet or runtime, the node cordoned and
drained first (components/node_disruption.py: the preview shows what restarts, in which batch).
Deleted after the host's removal script ran (the engine deletes it last): the Node object, the
node's certificate requests and the token's Secret, so nothing of the node stays in the cluster.
One resource for both, not two: every resource costs the engine time in every preview.

Not a pulumi-kubernetes Secret: the node's NodeRegistration revokes the token (deletes its
Secret) once the node has joined, and a pulumi-kubernetes Secret would then show as deleted on
`pulumi up --refresh` and be planned again. This resource does not read the cluster on refresh:
a revoked token is the state it expects. It reads the host instead (`check`): the read-only drift
check, whose finding the next `up` repairs through this resource's update (drain) and the install.
"""

from __future__ import annotations

import contextlib
import secrets
import string
import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from components.detailed_diff import changed_paths, detailed, top_input
from components.node_disruption import DISRUPTION_INPUTS, disruption_props, prepare
from k8s_workers.config.loader import Cluster, Node
from k8s_workers.scripts.install_plan import NodePlan

TOKEN_ALPHABET = string.ascii_lowercase + string.digits  # [a-z0-9], as bootstrap tokens require
TOKEN_ID_LENGTH = 6
TOKEN_SECRET_LENGTH = 16


def new_token() -> tuple[str, str]:
    """A bootstrap token's id and secret, from the operating system's CSPRNG."""
    pick = lambda n: "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(n))  # noqa: E731
    return pick(TOKEN_ID_LENGTH), pick(TOKEN_SECRET_LENGTH)


def membership_props(
    cluster: Cluster,
    node: Node,
    kubeconfig: Any,
    plan: NodePlan,
    batch: Any,
    owner: str | None = None,
    ssh_private_key: Any = None,
) -> dict[str, Any]:
    """The resource's inputs (Outputs in the program, plain values in the lab). The token is made by
    the provider and kept in state as its outputs (`tokenSecret` a secret): one resource fewer per
    node than a random resource beside it, and a new one only when `tokenGeneration` is raised.
    `owner`: the stack that declares the node (project/stack); None records and checks no owner."""
    return {
        **disruption_props(cluster, node, plan, batch, kubeconfig),
        "owner": owner,
        "tokenGeneration": node.token_generation,
        "ttlHours": cluster.bootstrap_token_ttl_hours,
        "tokenId": None,
        "tokenSecret": None,
        "expires_at": None,
        # How `pulumi refresh` reaches the host for its read-only drift check (the install's connection).
        # None for a host gone for good: never asked again.
        "ssh": None
        if node.host_gone
        else {
            "host": node.ssh_host,
            "port": node.ssh.port,
            "user": node.ssh.user,
            "hostKey": node.ssh.host_key,
            "insecure": node.ssh.insecure_ignore_host_key,
        },
        "sshPrivateKey": ssh_private_key,
        # Always a number in state: an output missing from state is unknown at preview, and the
        # install's stdin (which carries it) would then show every install as an update.
        "repairedGeneration": 0,
        "hostCheck": None,
    }


def named_by_setting(paths: dict[str, str]) -> dict[str, str]:
    """What a preview shows: a service's digest (`services.kubelet`) only when no changed setting of
    that service (`["kubelet.maxPods"]`, an input of its own) already says what changes and that it
    restarts."""
    named = {top_input(p).split(".", 1)[0] for p in paths if "." in top_input(p)}
    return {p: kind for p, kind in paths.items() if not (p.startswith("services.") and p[9:] in named)}


def check(props: dict[str, Any]) -> dict[str, Any]:
    """What a refresh reads: the host's drift (k8s_workers/decisions/host_drift.py), one read-only SSH
    session. A new drift raises `driftGeneration` past `repairedGeneration`: the next `up` repairs it
    (the install runs again; drained first if the kubelet or runtime restarts). A host that cannot be
    asked is `unknown`, never drift, and never an error."""
    from k8s_workers.host_check import Connection, check_host

    if "ssh" in props and props["ssh"] is None:  # a host gone for good: nothing to ask, nothing to say
        return props
    found = check_host(Connection.of_props(props))
    outs = dict(props)
    if "hostCheck" in outs or found.state not in ("clean", "drift"):  # asked: no note; else why not
        outs["hostCheck"] = None if found.state in ("clean", "drift") else found.summary()
    repaired = props.get("repairedGeneration") or 0
    if found.state == "drift":
        outs.update(hostDrift=found.summary(), driftRestarts=list(found.restarts()), driftGeneration=repaired + 1)
        _unrecord_services(props)
    elif found.state == "clean":
        for key in ("hostDrift", "driftRestarts", "driftGeneration"):
            outs.pop(key, None)  # as the install left it: the outputs as they were before any drift
    return outs


def _unrecord_services(props: dict[str, Any]) -> None:
    """The services the Node records as running are no longer what runs: the next `up` then puts the
    node's repair in its batch (k8s_workers/decisions/rollout.py), and its registration records them
    again afterwards. Without the permission (a preview's identity) or a cluster: left as it is."""
    from k8s_workers.cluster_api import annotate_node, api_client
    from k8s_workers.render.cluster_objects import SERVICES_ANNOTATION

    with contextlib.suppress(Exception):  # bookkeeping only: the drift itself is in the outputs
        annotate_node(api_client(props.get("kubeconfig")), props["node"], {SERVICES_ANNOTATION: "drift"})


def drift_pending(props: dict[str, Any]) -> bool:
    return (props.get("driftGeneration") or 0) > (props.get("repairedGeneration") or 0)


def _generation(props: dict[str, Any]) -> int:
    return props.get("tokenGeneration") or 1  # state written before the generation existed: the first


def leave(props: dict[str, Any]) -> dict[str, Any]:
    """What delete does once the host is wiped (the lab calls it too): the node's cluster side gone."""
    from k8s_workers.cluster_api import api_client, delete_node, delete_node_csrs, revoke_bootstrap_token

    api = api_client(props.get("kubeconfig"))
    return {
        "node_deleted": delete_node(api, props["node"]),
        "csrs_deleted": delete_node_csrs(api, props["node"], props["tokenId"]),
        "token_deleted": revoke_bootstrap_token(api, props["tokenId"]),
    }


def issue(props: dict[str, Any]) -> dict[str, Any]:
    """The token's Secret, its expiry counted from now."""
    from k8s_workers.cluster_api import api_client, create_bootstrap_token
    from k8s_workers.render.cluster_objects import bootstrap_token_secret, token_expiration, token_expires_at

    issued_at = int(time.time())
    manifest = bootstrap_token_secret(
        props["node"],
        props["tokenId"],
        props["tokenSecret"],
        token_expiration(issued_at, props["ttlHours"]),
        props.get("owner"),
    )
    create_bootstrap_token(api_client(props.get("kubeconfig")), manifest)
    return {**props, "expires_at": token_expires_at(issued_at, props["ttlHours"])}


class _Provider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        from k8s_workers.cluster_api import api_client, refuse_if_claimed

        if props.get("owner"):  # another stack of the fleet declares this node: refuse, never adopt
            refuse_if_claimed(api_client(props.get("kubeconfig")), props["node"], props["owner"])
        # A first install: no pods there yet, nothing restarts.
        token_id, token_secret = new_token()
        outs = {**issue({**props, "tokenId": token_id, "tokenSecret": token_secret}), "restarts": [], "drained": False}
        return CreateResult(id_=f"membership-{props['node']}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A new token is an update, never a replacement: a replacement would delete the old
        # resource, and deleting this one removes the Node from the cluster. A TTL change applies
        # to tokens issued after it; the kubeconfig is how, not what; the batch alone is no change.
        paths = changed_paths(olds, news, DISRUPTION_INPUTS)  # `services.kubelet`: the kubelet restarts
        settings = sorted(k for k in {*olds, *news} if "." in k)  # `kubelet.maxPods`: rollout.declared_settings
        paths.update(changed_paths(olds, news, settings))
        # How the drift check reaches the host (a new host key, address or SSH key): kept current.
        paths.update(changed_paths(olds, news, ("ssh", "sshPrivateKey")))
        if _generation(olds) != _generation(news):
            paths["tokenGeneration"] = "update"
        if drift_pending(olds):  # a refresh found the host changed: shown as the drift this update removes
            paths["hostDrift"] = "repair"
        if "repairedGeneration" not in olds:  # state from before drift checks: once, to record it
            paths["repairedGeneration"] = "add"
        return detailed(
            DiffResult(changes=bool(paths), replaces=[], stables=["node"], delete_before_replace=False),
            named_by_setting(paths),
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from k8s_workers.cluster_api import api_client, revoke_bootstrap_token

        kept = {k: olds.get(k) for k in ("tokenId", "tokenSecret", "expires_at")}
        outs = {**news, **kept, "repairedGeneration": olds.get("repairedGeneration") or 0}
        if _generation(olds) != _generation(news):  # asked for a new token: issue it, revoke the old one
            token_id, token_secret = new_token()
            outs = issue({**news, "tokenId": token_id, "tokenSecret": token_secret})
            revoke_bootstrap_token(api_client(news.get("kubeconfig")), olds["tokenId"])
        # Cordon and drain now if the change restarts the kubelet or the runtime: the install is next.
        prepared = prepare(olds, news, olds.get("driftRestarts") if drift_pending(olds) else None)
        if drift_pending(olds):  # the install runs next with this number: it restores what drifted
            outs["repairedGeneration"] = olds["driftGeneration"]
        return UpdateResult(outs={**outs, "restarts": prepared["restarts"], "drained": prepared["drained"]})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # Only on refresh: the cluster side is not read (a revoked token is what it expects); the host is.
        return ReadResult(id_=id_, outs=check(props))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        leave(props)


class NodeMembership(pulumi.dynamic.Resource):
    tokenId: pulumi.Output[str]  # names the token's Secret: public by design
    tokenSecret: pulumi.Output[str]  # secret
    expires_at: pulumi.Output[int]  # epoch seconds: the install refuses an expired token on an unjoined node
    restarts: pulumi.Output[list[str]]
    drained: pulumi.Output[bool]
    repairedGeneration: pulumi.Output[int | None]  # the install runs again when this rises (host drift)
    hostCheck: pulumi.Output[str | None]  # set by a refresh that could not check the host: "unknown: why"

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        kubeconfig: pulumi.Input[str] | None,  # secret
        plan: NodePlan,  # the review plan: what each service's restart depends on
        batch: pulumi.Input[int],  # resolves once the previous batch is done (components/sequencing.py)
        owner: str,  # the stack that declares the node: project/stack
        ssh_private_key: pulumi.Input[str] | None = None,  # secret; None: the SSH agent
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            _Provider(),
            f"{node.name}-membership",
            membership_props(
                cluster,
                node,
                pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None,
                plan,
                batch,
                owner,
                pulumi.Output.secret(ssh_private_key) if ssh_private_key is not None else None,
            ),
            pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(additional_secret_outputs=["tokenSecret", "kubeconfig", "sshPrivateKey"]),
            ),
        )
