"""The Kubernetes objects this program declares, as plain manifests (pure: no Pulumi).

The components turn these into pulumi-kubernetes resources; render writes them as YAML.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

from k8s_workers.config.k8s_names import bootstrap_group_for
from k8s_workers.config.loader import Cluster
from k8s_workers.decisions.client_csr import SIGNER as KUBE_PROXY_SIGNER
from k8s_workers.decisions.client_csr import USAGES as KUBE_PROXY_USAGES

MANAGED_BY = {"app.kubernetes.io/managed-by": "k8s-workers"}
NODE_ANNOTATION = "k8s-workers/node"  # on a bootstrap token's Secret: the node it was made for
# On a token's Secret and on the Node: the stack that declares the node (project/stack), so two
# stacks of a fleet never both claim one node (k8s_workers/decisions/ownership.py).
OWNER_ANNOTATION = "k8s-workers/owner"
# On the Node, put by its registration at the end of every `up`: the per-service digests its host runs
# (k8s_workers/decisions/rollout.py). A node whose digests equal the new ones has nothing to restart,
# so the next `up` puts it in no batch and waits for nothing.
SERVICES_ANNOTATION = "k8s-workers/services"
# The group only this program's bootstrap tokens carry: the bootstrap roles are bound to it, not to
# every `system:bootstrappers` member, so a token made for anything else gets no node certificate.
BOOTSTRAP_GROUP = "system:bootstrappers:k8s-workers"

# (binding name, built-in ClusterRole, subject kind, subject name). kubeadm's choices,
# minus `selfnodeserver` (old guides bound it for serving certificates), which no controller honours.
BOOTSTRAP_BINDINGS = (
    ("k8s-workers:kubelet-bootstrap", "system:node-bootstrapper", "Group", BOOTSTRAP_GROUP),
    (
        "k8s-workers:node-autoapprove-bootstrap",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "Group",
        BOOTSTRAP_GROUP,
    ),
    (
        "k8s-workers:node-autoapprove-certificate-rotation",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "Group",
        "system:nodes",
    ),
)


def cluster_role_binding(name: str, role: str, kind: str, subject: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    }


def safe_name(manifest: dict[str, Any]) -> str:
    """The object's name with ':' (legal in RBAC names) made file- and URN-friendly."""
    return manifest["metadata"]["name"].replace(":", "-")


def cluster_role_bindings(cluster: Cluster) -> list[dict[str, Any]]:
    bindings = [cluster_role_binding(*b) for b in BOOTSTRAP_BINDINGS]
    # Lets the apiserver reach kubelets (logs, exec, port-forward) under webhook authorization.
    bindings.append(
        cluster_role_binding(
            "k8s-workers:apiserver-kubelet-api-admin",
            "system:kubelet-api-admin",
            "User",
            cluster.apiserver_kubelet_client_user,
        )
    )
    if cluster.manage_kube_proxy_rbac:  # RBAC clusters have `system:node-proxier` already; for those that lack it
        bindings.append(
            cluster_role_binding("k8s-workers:node-proxier", "system:node-proxier", "User", "system:kube-proxy")
        )
    return bindings


def token_expires_at(issued_at_epoch: int, ttl_hours: int) -> int:
    return issued_at_epoch + ttl_hours * 3600


def token_expiration(issued_at_epoch: int, ttl_hours: int) -> str:
    """RFC3339 UTC, the only form the token authenticator parses."""
    moment = datetime.datetime.fromtimestamp(token_expires_at(issued_at_epoch, ttl_hours), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def bootstrap_token_metadata(node_name: str, token_id: str, owner: str | None = None) -> dict[str, Any]:
    annotations = {NODE_ANNOTATION: node_name}  # names can outgrow a label value
    if owner is not None:
        annotations[OWNER_ANNOTATION] = owner
    return {
        "name": f"bootstrap-token-{token_id}",
        "namespace": "kube-system",
        "labels": dict(MANAGED_BY),
        "annotations": annotations,
    }


def bootstrap_token_data(node_name: str, token_id: str, token_secret: str, expiration: str) -> dict[str, str]:
    return {
        "description": f"k8s-workers: TLS bootstrap token for node {node_name}",
        "token-id": token_id,
        "token-secret": token_secret,
        "expiration": expiration,
        "usage-bootstrap-authentication": "true",  # no signing: no cluster-info discovery is used
        "auth-extra-groups": f"{BOOTSTRAP_GROUP},{bootstrap_group_for(node_name)}",
    }


BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"


def bootstrap_token_secret(
    node_name: str, token_id: str, token_secret: str, expiration: str, owner: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": bootstrap_token_metadata(node_name, token_id, owner),
        "type": BOOTSTRAP_TOKEN_TYPE,
        "stringData": bootstrap_token_data(node_name, token_id, token_secret, expiration),
    }


def kube_proxy_csr(request_pem: str, expiration_seconds: int, owner: str | None) -> dict[str, Any]:
    """kube-proxy's CertificateSigningRequest (k8s_workers/decisions/client_csr.py), a fresh name
    each time (`generateName`): an earlier or someone else's request is never taken for this one."""
    metadata: dict[str, Any] = {
        "generateName": "k8s-workers-kube-proxy-",
        "labels": dict(MANAGED_BY),
    }
    if owner:
        metadata["annotations"] = {OWNER_ANNOTATION: owner}
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": metadata,
        "spec": {
            "request": base64.b64encode(request_pem.encode()).decode(),
            "signerName": KUBE_PROXY_SIGNER,
            "usages": list(KUBE_PROXY_USAGES),
            "expirationSeconds": expiration_seconds,
        },
    }
