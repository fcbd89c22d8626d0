"""The thin adapter to the Kubernetes API for what pulumi-kubernetes does not do: read and approve
CertificateSigningRequests, patch a Node that the kubelet created, and create and revoke
bootstrap tokens outside Pulumi's view of the cluster (a revoked token must not look like drift).
Decisions are made by `k8s_workers.decisions`; this only talks.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from k8s_workers.decisions.drain import DrainOptions, DrainPlan, plan_drain
from k8s_workers.decisions.node_metadata import Declared, reconcile
from k8s_workers.decisions.serving_csr import NodeIdentity, Verdict, judge_all

APPROVAL_REASON = "K8sWorkersInventoryMatch"
CORDONED_ANNOTATION = "k8s-workers/cordoned"  # set when this program cordoned: only then it uncordons


def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """From a kubeconfig's text or path (what `kubernetes:kubeconfig` holds), else the default
    (KUBECONFIG, ~/.kube/config): the cluster the program's kubernetes provider uses."""
    if kubeconfig and "\n" in kubeconfig:
        return kube_config.new_client_from_config_dict(yaml.safe_load(kubeconfig), context=context)
    return kube_config.new_client_from_config(config_file=kubeconfig or None, context=context)


def list_csrs(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every CSR, as the API's JSON (camelCase) mappings the decisions take."""
    items = client.CertificatesV1Api(api).list_certificate_signing_request().items
    return [api.sanitize_for_serialization(item) for item in items]


def approve(api: client.ApiClient, verdict: Verdict) -> None:
    certificates = client.CertificatesV1Api(api)
    _approve(certificates, certificates.read_certificate_signing_request(verdict.csr), verdict.reason)


def _approve(certificates: client.CertificatesV1Api, csr: Any, why: str) -> None:
    """Add the Approved condition to `csr` (as read) and send it."""
    condition = client.V1CertificateSigningRequestCondition(
        type="Approved", status="True", reason=APPROVAL_REASON, message=f"k8s-workers: {why}"
    )
    csr.status.conditions = [*(csr.status.conditions or []), condition]
    certificates.replace_certificate_signing_request_approval(csr.metadata.name, csr)


def own_username(api: client.ApiClient) -> str:
    """Who this program is to the apiserver (a SelfSubjectReview)."""
    review = client.AuthenticationV1Api(api).create_self_subject_review({"apiVersion": "authentication.k8s.io/v1"})
    return review.status.user_info.username


def issue_kube_proxy_certificate(
    api: client.ApiClient, request_pem: str, expiration_seconds: int, owner: str | None, timeout: float = 60.0
) -> str:
    """kube-proxy's certificate from the signer `kubernetes.io/kube-apiserver-client`: our request
    created, checked, approved, its certificate awaited (bounded) and checked; the request deleted
    after. Raises with the reason when anything is not exactly ours."""
    from k8s_workers.decisions.client_csr import (
        SIGNER,
        SIGNER_FLAGS,
        approval_problems,
        certificate_problems,
        request_problems,
    )
    from k8s_workers.render.cluster_objects import kube_proxy_csr

    if problems := request_problems(request_pem):
        raise RuntimeError(f"kube-proxy's certificate request: {'; '.join(problems)}")
    certificates = client.CertificatesV1Api(api)
    created = certificates.create_certificate_signing_request(kube_proxy_csr(request_pem, expiration_seconds, owner))
    name = created.metadata.name
    try:
        csr = certificates.read_certificate_signing_request(name)
        if problems := approval_problems(api.sanitize_for_serialization(csr), request_pem, own_username(api)):
            raise RuntimeError(f"CertificateSigningRequest {name} not approved: {'; '.join(problems)}")
        _approve(certificates, csr, "kube-proxy's client identity")
        deadline = time.monotonic() + timeout
        while True:
            status = certificates.read_certificate_signing_request(name).status
            failed = [c for c in status.conditions or [] if c.type in ("Denied", "Failed")]
            if failed:
                raise RuntimeError(f"CertificateSigningRequest {name}: {failed[0].type}: {failed[0].message}")
            if status.certificate:
                pem = base64.b64decode(status.certificate).decode()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"CertificateSigningRequest {name} was approved but {SIGNER!r} issued no certificate within "
                    f"{timeout:.0f} s: check {SIGNER_FLAGS}, or set caKey to sign kube-proxy's certificate here"
                )
            time.sleep(1)
        if problems := certificate_problems(pem, request_pem):
            raise RuntimeError(f"CertificateSigningRequest {name}: the certificate issued: {'; '.join(problems)}")
        return pem
    finally:
        try:
            certificates.delete_certificate_signing_request(name)  # its work is done; nothing to keep
        except ApiException as exc:
            if exc.status != 404:
                raise


@dataclass
class ApprovalReport:
    approved: list[Verdict] = field(default_factory=list)
    refused: list[Verdict] = field(default_factory=list)  # left alone, with the reason
    waited_for: list[str] = field(default_factory=list)  # nodes that never asked within the time

    def lines(self) -> list[str]:
        out = [f"approved {v.csr} for {v.node}: {v.reason}" for v in self.approved]
        out += [f"left alone {v.csr}{f' ({v.node})' if v.node else ''}: {v.reason}" for v in self.refused]
        out += [f"no serving certificate request from {n} yet" for n in self.waited_for]
        return out


def approve_serving_certificates(
    api: client.ApiClient,
    inventory: Mapping[str, NodeIdentity],
    nodes: set[str],
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ApprovalReport:
    """Approve every pending kubelet-serving CSR of `nodes` that matches the inventory, waiting up
    to `timeout` for each of them to have asked (a kubelet asks once it has joined)."""
    report = ApprovalReport()
    asked: set[str] = set()
    # Requests older than the Node object are an earlier kubelet's (the name was registered
    # before): only one made since counts as this kubelet having asked.
    since = {n: (read_node(api, n) or {}).get("metadata", {}).get("creationTimestamp", "") for n in nodes}
    deadline = time.monotonic() + timeout
    while True:
        csrs = list_csrs(api)
        asked |= {
            requester
            for c in csrs
            if c["spec"].get("signerName") == "kubernetes.io/kubelet-serving"
            and (requester := c["spec"]["username"].removeprefix("system:node:")) in since
            and c["metadata"].get("creationTimestamp", "") >= since[requester]  # RFC 3339 UTC: compares as text
        }
        mine = [c for c in csrs if c["spec"].get("username", "").removeprefix("system:node:") in nodes]
        for verdict in judge_all(mine, inventory):  # what other requesters ask is theirs to answer
            if verdict.approve:
                approve(api, verdict)
                report.approved.append(verdict)
            elif all(v.csr != verdict.csr for v in report.refused):
                report.refused.append(verdict)
        if nodes <= asked or time.monotonic() >= deadline:
            report.waited_for = sorted(nodes - asked)
            return report
        sleep(1.0)


def pending_for(api: client.ApiClient, inventory: Mapping[str, NodeIdentity], nodes: set[str]) -> list[Verdict]:
    """Pending requests of `nodes` the program would approve (renewals due): for previews."""
    return [v for v in judge_all(list_csrs(api), inventory) if v.approve and v.node in nodes]


def read_node(api: client.ApiClient, name: str) -> dict[str, Any] | None:
    try:
        return api.sanitize_for_serialization(client.CoreV1Api(api).read_node(name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def node_metadata_drift(node: Mapping[str, Any] | None, declared: Declared) -> bool:
    """True when the registered Node (as read) lacks a declared label or taint (or carries a removed one)."""
    return node is not None and reconcile(dict(node), declared) is not None


def reconcile_node_metadata(api: client.ApiClient, name: str, declared: Declared, attempts: int = 5) -> bool:
    """Patch the Node to the declared labels and taints; True if it changed. A conflict (someone
    changed the Node since it was read) is read and computed again."""
    core = client.CoreV1Api(api)
    for _ in range(attempts):
        node = read_node(api, name)
        if node is None:
            raise LookupError(f"Node {name} is not registered")
        patch = reconcile(node, declared)
        if patch is None:
            return False
        try:
            core.patch_node(name, patch, _content_type="application/merge-patch+json")
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"Node {name} kept changing under {attempts} attempts to patch its labels and taints")


def create_bootstrap_token(api: client.ApiClient, manifest: dict[str, Any]) -> None:
    """Create the token's Secret, or put it back as declared if one of that name exists."""
    core = client.CoreV1Api(api)
    metadata = manifest["metadata"]
    try:
        core.create_namespaced_secret(metadata["namespace"], manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(metadata["name"], metadata["namespace"], manifest)


def node_bootstrap_tokens(api: client.ApiClient, node: str) -> list[str]:
    """The names of the token Secrets this program made for the node (its annotation says which)."""
    from k8s_workers.render.cluster_objects import BOOTSTRAP_TOKEN_TYPE, MANAGED_BY, NODE_ANNOTATION

    found = client.CoreV1Api(api).list_namespaced_secret(
        "kube-system",
        field_selector=f"type={BOOTSTRAP_TOKEN_TYPE}",
        label_selector=",".join(f"{k}={v}" for k, v in MANAGED_BY.items()),
    )
    return [s.metadata.name for s in found.items if (s.metadata.annotations or {}).get(NODE_ANNOTATION) == node]


def forbidden(exc: BaseException) -> bool:
    """The apiserver refused this identity (its message names the verb and resource)."""
    return isinstance(exc, ApiException) and exc.status == 403


def claimed_nodes(api: client.ApiClient, tokens_optional: bool = False) -> dict[str, set[str]]:
    """node name -> the stacks that marked it as theirs (its Node, this program's token Secrets).
    `tokens_optional`: an identity that may not list Secrets (a preview's) goes by the Nodes alone."""
    from k8s_workers.decisions.ownership import claims
    from k8s_workers.render.cluster_objects import BOOTSTRAP_TOKEN_TYPE, MANAGED_BY, NODE_ANNOTATION, OWNER_ANNOTATION

    core = client.CoreV1Api(api)
    node_owners = {
        n.metadata.name: n.metadata.annotations[OWNER_ANNOTATION]
        for n in core.list_node(_request_timeout=30).items
        if OWNER_ANNOTATION in (n.metadata.annotations or {})
    }
    token_owners: dict[str, set[str]] = {}
    try:
        secrets = core.list_namespaced_secret(
            "kube-system",
            field_selector=f"type={BOOTSTRAP_TOKEN_TYPE}",
            label_selector=",".join(f"{k}={v}" for k, v in MANAGED_BY.items()),
            _request_timeout=30,
        ).items
    except ApiException as exc:
        if not (tokens_optional and forbidden(exc)):
            raise
        secrets = []
    for secret in secrets:
        annotations = secret.metadata.annotations or {}
        if NODE_ANNOTATION in annotations and OWNER_ANNOTATION in annotations:
            token_owners.setdefault(annotations[NODE_ANNOTATION], set()).add(annotations[OWNER_ANNOTATION])
    return claims(node_owners, token_owners)


def refuse_if_claimed(api: client.ApiClient, node: str, owner: str) -> None:
    """Raise if another stack owns the node (k8s_workers/decisions/ownership.py)."""
    from k8s_workers.decisions.ownership import conflicts, refusal

    found = conflicts([node], owner, claimed_nodes(api))
    if found:
        raise RuntimeError(refusal(node, found[node]))


def annotate_node(api: client.ApiClient, node: str, annotations: Mapping[str, str]) -> bool:
    """Put `annotations` on the registered Node (the owner, the services it runs); True if any changed."""
    found = read_node(api, node)
    if found is None:
        return False
    present = found["metadata"].get("annotations") or {}
    missing = {k: v for k, v in annotations.items() if present.get(k) != v}
    if not missing:
        return False
    patch = {"metadata": {"annotations": missing}}
    client.CoreV1Api(api).patch_node(node, patch, _content_type="application/merge-patch+json")
    return True


def recorded_services(node: Mapping[str, Any] | None) -> str | None:
    """The services digest the Node's registration recorded after the last `up` (None: none yet)."""
    from k8s_workers.render.cluster_objects import SERVICES_ANNOTATION

    return ((node or {}).get("metadata", {}).get("annotations") or {}).get(SERVICES_ANNOTATION)


def revoke_node_bootstrap_tokens(api: client.ApiClient, node: str) -> list[str]:
    """Delete every token Secret made for the node (it has joined: it needs none). The names deleted."""
    revoked = []
    for name in node_bootstrap_tokens(api, node):
        try:
            client.CoreV1Api(api).delete_namespaced_secret(name, "kube-system")
            revoked.append(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    return revoked


def revoke_bootstrap_token(api: client.ApiClient, token_id: str) -> bool:
    """Delete the token's Secret: the apiserver stops accepting the token at once. True if it existed."""
    try:
        client.CoreV1Api(api).delete_namespaced_secret(f"bootstrap-token-{token_id}", "kube-system")
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


# ------------------------------------------------------------------ lifecycle: cordon, drain, delete


def cordon(api: client.ApiClient, name: str, why: str) -> None:
    """Mark the Node unschedulable, noting that this program did (a cordon by a person stays theirs)."""
    node = read_node(api, name)
    if node is None or node.get("spec", {}).get("unschedulable"):
        return  # gone, or already cordoned (by whoever): nothing of ours to record
    patch = {"metadata": {"annotations": {CORDONED_ANNOTATION: why}}, "spec": {"unschedulable": True}}
    client.CoreV1Api(api).patch_node(name, patch, _content_type="application/merge-patch+json")


def uncordon_if_ours(api: client.ApiClient, name: str) -> bool:
    node = read_node(api, name)
    if node is None or CORDONED_ANNOTATION not in (node["metadata"].get("annotations") or {}):
        return False
    patch = {"metadata": {"annotations": {CORDONED_ANNOTATION: None}}, "spec": {"unschedulable": None}}
    client.CoreV1Api(api).patch_node(name, patch, _content_type="application/merge-patch+json")
    return True


def cordoned_by_us(node: Mapping[str, Any] | None) -> bool:
    """True when the Node (as read) was cordoned by this program."""
    return node is not None and CORDONED_ANNOTATION in (node["metadata"].get("annotations") or {})


class DrainBlocked(RuntimeError):
    """The drain could not finish: the message names each pod in the way and why."""


def _pods_on(api: client.ApiClient, name: str) -> list[dict[str, Any]]:
    pods = client.CoreV1Api(api).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}").items
    return [api.sanitize_for_serialization(p) for p in pods]


def drain(
    api: client.ApiClient,
    name: str,
    options: DrainOptions,
    sleep: Callable[[float], None] = time.sleep,
) -> DrainPlan:
    """Evict the node's pods through the Eviction API (PodDisruptionBudgets decide), waiting until
    they are gone, at most `options.timeout_seconds`. Raises DrainBlocked naming what is in the way."""
    core = client.CoreV1Api(api)
    plan = plan_drain(_pods_on(api, name), options)
    if plan.refused:
        raise DrainBlocked(f"node {name}: drain refused before any eviction: " + "; ".join(plan.blocking_lines()))
    pending = {p.uid: p for p in plan.evict}
    why: dict[str, str] = {}
    deadline = time.monotonic() + options.timeout_seconds
    while pending:
        for pod in list(pending.values()):
            eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.name, namespace=pod.namespace))
            try:
                core.create_namespaced_pod_eviction(pod.name, pod.namespace, eviction)
            except ApiException as exc:
                if exc.status == 404:
                    pending.pop(pod.uid)
                elif exc.status == 429:  # a PodDisruptionBudget says not now
                    why[pod.uid] = _api_message(exc) or "blocked by a PodDisruptionBudget"
                else:
                    raise
        present = {p["metadata"].get("uid") for p in _pods_on(api, name)}
        pending = {uid: p for uid, p in pending.items() if uid in present}
        if not pending:
            break
        if time.monotonic() >= deadline:
            lines = [f"{p.ref}: {why.get(uid, 'evicted, still terminating')}" for uid, p in pending.items()]
            raise DrainBlocked(
                f"node {name}: not drained after {options.timeout_seconds} s (it stays cordoned): " + "; ".join(lines)
            )
        sleep(1.0)
    return plan


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))
    except ValueError:
        return ""


def delete_node(api: client.ApiClient, name: str) -> bool:
    try:
        client.CoreV1Api(api).delete_node(name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def delete_node_csrs(api: client.ApiClient, name: str, token_id: str) -> list[str]:
    """The node's certificate requests: its kubelet's (client and serving) and its token's."""
    requesters = {f"system:node:{name}", f"system:bootstrap:{token_id}"}
    certificates = client.CertificatesV1Api(api)
    deleted = []
    for csr in list_csrs(api):
        if csr["spec"].get("username") in requesters:
            try:
                certificates.delete_certificate_signing_request(csr["metadata"]["name"])
                deleted.append(csr["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise
    return deleted


@dataclass(frozen=True)
class Registered:
    """A declared node the cluster has: its kubelet's version and the services its last `up` recorded."""

    kubelet_version: str
    services: str | None


def registered(api: client.ApiClient, nodes: set[str]) -> tuple[str, dict[str, Registered]]:
    """The apiserver's version, and each of `nodes` that is registered (one list of the Nodes)."""
    apiserver = client.VersionApi(api).get_code(_request_timeout=10).git_version
    found = {
        n["metadata"]["name"]: Registered(n["status"]["nodeInfo"]["kubeletVersion"], recorded_services(n))
        for n in api.sanitize_for_serialization(client.CoreV1Api(api).list_node(_request_timeout=30).items)
        if n["metadata"]["name"] in nodes and (n.get("status") or {}).get("nodeInfo")
    }
    return apiserver, found


def versions(api: client.ApiClient, nodes: set[str]) -> tuple[str, dict[str, str]]:
    """The apiserver's version and the kubelet version of each of `nodes` that is registered."""
    apiserver, found = registered(api, nodes)
    return apiserver, {name: node.kubelet_version for name, node in found.items()}
