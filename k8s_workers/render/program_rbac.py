"""The RBAC this program needs in the cluster, and no more (pure): one identity for `pulumi up`, a
read-only one for previews in pull requests. `rbac/program-rbac.yaml` is this, rendered
(`python -m components rbac`); the table in docs/security.md says why each rule is there.

Limits of RBAC itself, said here once:
- Secrets: `create` and `list` cannot be narrowed to names, so the `up` identity reads every Secret
  in kube-system (bootstrap tokens live there); none elsewhere.
- `approve` on `kubernetes.io/kube-apiserver-client` lets its holder approve a client certificate
  for any name. The program approves only its own kube-proxy request (k8s_workers/decisions/client_csr.py);
  a cluster that will not grant this keeps the CA-key path (`caKey`) and drops the rule.
"""

from __future__ import annotations

from typing import Any

from k8s_workers.decisions.client_csr import SIGNER as KUBE_PROXY_SIGNER
from k8s_workers.render.cluster_objects import BOOTSTRAP_BINDINGS, MANAGED_BY

DEPLOYER = "k8s-workers:deployer"  # ClusterRole and Role names, and the default subject group
PREVIEWER = "k8s-workers:previewer"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
# The built-in roles the stack's bindings grant (components/cluster_bootstrap.py): creating a binding
# to a role takes `bind` on it (or holding all its permissions).
BOUND_ROLES = (
    *(role for _, role, _, _ in BOOTSTRAP_BINDINGS),
    "system:kubelet-api-admin",
    "system:node-proxier",
)

# (apiGroup, resources, verbs, resourceNames, why): the why is docs/security.md's table.
Rule = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str]

DEPLOYER_RULES: tuple[Rule, ...] = (
    ("rbac.authorization.k8s.io", ("clusterrolebindings",), ("get", "list", "watch", "create", "update", "patch", "delete"), (),
     "the stack's bindings: kubelet bootstrap and renewal, the apiserver's kubelet access, kube-proxy"),
    ("rbac.authorization.k8s.io", ("clusterroles",), ("bind",), BOUND_ROLES,
     "to bind exactly those built-in roles, without holding their permissions"),
    ("", ("nodes",), ("get", "list", "patch", "delete"),  (),
     "labels, taints, cordon and uncordon, the owner and services annotations; the Node removed when its host leaves"),
    ("", ("pods",), ("list",), (), "drain: the pods on a node, in every namespace"),
    ("", ("pods/eviction",), ("create",), (), "drain: evictions, so PodDisruptionBudgets hold"),
    ("certificates.k8s.io", ("certificatesigningrequests",), ("get", "list", "create", "delete"), (),
     "kube-proxy's request; the kubelets' serving requests judged; a removed node's requests deleted"),
    ("certificates.k8s.io", ("certificatesigningrequests/approval",), ("update",), (),
     "approve the requests the program judged"),
    ("certificates.k8s.io", ("signers",), ("approve",), (KUBE_PROXY_SIGNER, SERVING_SIGNER),
     "approve only for kube-proxy's client signer and the kubelets' serving signer"),
    ("rbac.authorization.k8s.io", ("clusterroles", "roles", "rolebindings"), ("get",), (DEPLOYER, PREVIEWER),
     "refresh of this RBAC when the stack declares it (`cluster.programRbac`); never a change to it"),
)  # fmt: skip
# In kube-system only (a Role): bootstrap tokens are Secrets there.
DEPLOYER_SECRET_RULES: tuple[Rule, ...] = (
    ("", ("secrets",), ("get", "list", "create", "update", "delete"), (),
     "each node's bootstrap token: created before its install, revoked once it joined"),
)  # fmt: skip
# Previews: what the program and the kubernetes provider read, and nothing secret (no Secrets at
# all: a preview without them skips the token checks and says so).
PREVIEWER_RULES: tuple[Rule, ...] = (
    ("rbac.authorization.k8s.io", ("clusterrolebindings",), ("get", "list", "watch"), (),
     "the stack's bindings, as they are"),
    ("", ("nodes",), ("get", "list"), (), "versions (skew policy), owners, recorded services, drift"),
    ("certificates.k8s.io", ("certificatesigningrequests",), ("get", "list"), (),
     "serving-certificate renewals waiting"),
    ("rbac.authorization.k8s.io", ("clusterroles", "roles", "rolebindings"), ("get",), (DEPLOYER, PREVIEWER),
     "`preview --refresh` of this RBAC when the stack declares it"),
)  # fmt: skip


def _rules(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    out = []
    for group, resources, verbs, names, _why in rules:
        rule: dict[str, Any] = {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
        if names:
            rule["resourceNames"] = list(names)
        out.append(rule)
    return out


def _metadata(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(MANAGED_BY)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _subject(subject: str) -> dict[str, str]:
    """`group:<name>` or `user:<name>` (config and command-line form) as an RBAC subject."""
    kind, _, name = subject.partition(":")
    if kind not in ("group", "user") or not name:
        raise ValueError(f"{subject!r}: a subject is `group:<name>` or `user:<name>`")
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind.capitalize(), "name": name}


def program_rbac(deployer: str = f"group:{DEPLOYER}", previewer: str = f"group:{PREVIEWER}") -> list[dict[str, Any]]:
    """The manifests: the two ClusterRoles, the kube-system Role, and their bindings to the subjects."""
    rbac = "rbac.authorization.k8s.io/v1"

    def binding(kind: str, name: str, subject: str, namespace: str | None = None) -> dict[str, Any]:
        return {
            "apiVersion": rbac,
            "kind": f"{kind}Binding",
            "metadata": _metadata(name, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [_subject(subject)],
        }

    return [
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": _metadata(DEPLOYER), "rules": _rules(DEPLOYER_RULES)},
        binding("ClusterRole", DEPLOYER, deployer),
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": _metadata(DEPLOYER, "kube-system"),
            "rules": _rules(DEPLOYER_SECRET_RULES),
        },
        binding("Role", DEPLOYER, deployer, "kube-system"),
        {"apiVersion": rbac, "kind": "ClusterRole", "metadata": _metadata(PREVIEWER), "rules": _rules(PREVIEWER_RULES)},
        binding("ClusterRole", PREVIEWER, previewer),
    ]


def rbac_table() -> list[str]:
    """docs/security.md's table: each rule and why."""
    lines = ["| identity | API group | resources | verbs | only | why |", "|---|---|---|---|---|---|"]
    for who, rules in (
        ("up", DEPLOYER_RULES),
        ("up (kube-system)", DEPLOYER_SECRET_RULES),
        ("preview", PREVIEWER_RULES),
    ):
        for group, resources, verbs, names, why in rules:
            only = ", ".join(f"`{n}`" for n in names) or "–"
            lines.append(
                f"| {who} | `{group or 'core'}` | {', '.join(resources)} | {', '.join(verbs)} | {only} | {why} |"
            )
    return lines
