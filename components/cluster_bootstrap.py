"""Once per stack: the RBAC that lets kubelets bootstrap and renew, and the apiserver reach them."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from k8s_workers.config.loader import Cluster
from k8s_workers.render.cluster_objects import cluster_role_bindings, safe_name
from k8s_workers.render.program_rbac import program_rbac


class ClusterBootstrap(pulumi.ComponentResource):
    bindings: list[k8s.rbac.v1.ClusterRoleBinding]

    def __init__(self, name: str, cluster: Cluster, opts: pulumi.ResourceOptions | None = None):
        super().__init__("k8s-workers:index:ClusterBootstrap", name, None, opts)
        self.bindings = []
        manifests = cluster_role_bindings(cluster)
        for manifest in manifests:
            self.bindings.append(
                k8s.rbac.v1.ClusterRoleBinding(
                    safe_name(manifest),
                    metadata=k8s.meta.v1.ObjectMetaArgs(**manifest["metadata"]),
                    role_ref=k8s.rbac.v1.RoleRefArgs(
                        api_group=manifest["roleRef"]["apiGroup"],
                        kind=manifest["roleRef"]["kind"],
                        name=manifest["roleRef"]["name"],
                    ),
                    subjects=[
                        k8s.rbac.v1.SubjectArgs(api_group=s["apiGroup"], kind=s["kind"], name=s["name"])
                        for s in manifest["subjects"]
                    ],
                    # roleRef is immutable: a changed role means a new binding.
                    opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
                )
            )
        if cluster.program_rbac is not None:  # the program's own identities: only an admin's `up` creates these
            for manifest in program_rbac(cluster.program_rbac.deployer, cluster.program_rbac.previewer):
                _rbac_object(manifest, pulumi.ResourceOptions(parent=self, delete_before_replace=True))
        self.register_outputs({"bindings": [m["metadata"]["name"] for m in manifests]})


def _rbac_object(manifest: dict, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """One object of rbac/program-rbac.yaml as its pulumi-kubernetes resource."""
    kind = manifest["kind"]
    args: dict = {"metadata": k8s.meta.v1.ObjectMetaArgs(**manifest["metadata"])}
    if "rules" in manifest:
        args["rules"] = [
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=r["apiGroups"],
                resources=r["resources"],
                verbs=r["verbs"],
                resource_names=r.get("resourceNames"),
            )
            for r in manifest["rules"]
        ]
    else:
        ref, subjects = manifest["roleRef"], manifest["subjects"]
        args["role_ref"] = k8s.rbac.v1.RoleRefArgs(api_group=ref["apiGroup"], kind=ref["kind"], name=ref["name"])
        args["subjects"] = [
            k8s.rbac.v1.SubjectArgs(api_group=x["apiGroup"], kind=x["kind"], name=x["name"]) for x in subjects
        ]
    name = f"program-{kind.lower()}-{safe_name(manifest)}"
    return getattr(k8s.rbac.v1, kind)(name, **args, opts=opts)
