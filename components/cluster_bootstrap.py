"""Once per stack: the RBAC that lets kubelets bootstrap and renew, and the apiserver reach them."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from k8s_workers.config.loader import Cluster
from k8s_workers.render.cluster_objects import cluster_role_bindings, safe_name


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
        self.register_outputs({"bindings": [m["metadata"]["name"] for m in manifests]})
