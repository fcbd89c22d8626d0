"""Per node: the bootstrap token's Secret in kube-system, created before the install.

A Pulumi dynamic resource, not a pulumi-kubernetes Secret, because the token is revoked (its
Secret deleted) by the node's NodeRegistration once the node has joined: a pulumi-kubernetes
Secret would then show as deleted on `pulumi up --refresh` and be planned again. This resource
does not read the cluster on refresh (a revoked token is the state it expects), records its issue
time once (the expiry counts from the creation, not from each run), and deletes the Secret on
delete (nothing to do if it was revoked).
"""

from __future__ import annotations

import time
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider

from k8s_workers.config.loader import Cluster, Node

_REPLACE_ON = ("node", "tokenId", "tokenSecret")  # a new token is a new Secret


class _Provider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        from k8s_workers.cluster_api import api_client, create_bootstrap_token
        from k8s_workers.render.cluster_objects import bootstrap_token_secret, token_expiration, token_expires_at

        issued_at = int(time.time())
        manifest = bootstrap_token_secret(
            props["node"], props["tokenId"], props["tokenSecret"], token_expiration(issued_at, props["ttlHours"])
        )
        create_bootstrap_token(api_client(props.get("kubeconfig")), manifest)
        outs = {**props, "expires_at": token_expires_at(issued_at, props["ttlHours"])}
        return CreateResult(id_=manifest["metadata"]["name"], outs=outs)  # the id part is public

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A TTL change applies to tokens issued after it; the kubeconfig is how, not what.
        replaces = [k for k in _REPLACE_ON if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, stables=[], delete_before_replace=False)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from k8s_workers.cluster_api import api_client, revoke_bootstrap_token

        revoke_bootstrap_token(api_client(props.get("kubeconfig")), props["tokenId"])


def token_props(cluster: Cluster, node: Node, token_id: Any, token_secret: Any, kubeconfig: Any) -> dict[str, Any]:
    """The resource's inputs (Outputs in the program, plain values in the lab)."""
    return {
        "node": node.name,
        "tokenId": token_id,
        "tokenSecret": token_secret,
        "ttlHours": cluster.bootstrap_token_ttl_hours,
        "kubeconfig": kubeconfig,
        "expires_at": None,
    }


class BootstrapToken(pulumi.dynamic.Resource):
    expires_at: pulumi.Output[int]  # epoch seconds: the install refuses an expired token on an unjoined node

    def __init__(
        self,
        cluster: Cluster,
        node: Node,
        token_id: pulumi.Input[str],
        token_secret: pulumi.Input[str],  # secret
        kubeconfig: pulumi.Input[str] | None,  # secret
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            _Provider(),
            f"{node.name}-bootstrap-token-secret",
            token_props(
                cluster,
                node,
                token_id,
                pulumi.Output.secret(token_secret),
                pulumi.Output.secret(kubeconfig) if kubeconfig is not None else None,
            ),
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["tokenSecret", "kubeconfig"])
            ),
        )
