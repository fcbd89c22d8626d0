"""k8s-workers: make every host in the stack's config a worker node of an existing cluster."""

import pulumi

from components.cluster_bootstrap import ClusterBootstrap
from components.credentials import kube_proxy_identity, node_credentials
from components.preflight import check_versions
from components.stack_config import raw_from_pulumi
from components.worker_node import WorkerNode
from k8s_workers.config.loader import ConfigError, load_config
from k8s_workers.decisions.rollout import batches

try:
    config = load_config(raw_from_pulumi())
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None  # every problem at once, no traceback

for warning in config.warnings:
    pulumi.log.warn(warning)

check_versions(config)  # the version-skew policy, before any resource

cluster_bootstrap = ClusterBootstrap("cluster", config.cluster)
kube_proxy = kube_proxy_identity(config)  # one client certificate for every node's kube-proxy
by_name = {node.name: node for node in config.nodes}
workers: dict[str, WorkerNode] = {}
previous: list[pulumi.Resource] = []
# Rolling changes: each batch's disruptions wait for the previous batch's registrations (Ready, uncordoned).
for number, names in enumerate(batches(list(by_name), config.cluster.rollout.max_unavailable), start=1):
    for name in names:
        workers[name] = WorkerNode(
            config.cluster,
            by_name[name],
            node_credentials(config, by_name[name], kube_proxy),
            peers=config.nodes,
            batch=number,
            after=previous,
            # The bindings themselves, not the component: `pulumi up --target` of one node then works.
            opts=pulumi.ResourceOptions(depends_on=cluster_bootstrap.bindings),
        )
    previous = [workers[name].registration for name in names]

pulumi.export(
    "nodes",
    {
        name: {
            "name": worker.name,
            "address": worker.address,
            "bootstrapTokenId": worker.bootstrap_token_id,
            "files": worker.files,
        }
        for name, worker in workers.items()
    },
)
